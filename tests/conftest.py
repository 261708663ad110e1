import os

# No test may reach the real Hub: a cache miss there hangs ~23 s before failing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
pytest_plugins = ["hub_fixtures"]

import torch  # noqa: E402

# Two threads on a 2-core machine shared with the test runner's own work oversubscribe it:
# tiny models ran up to 80x slower when other jobs shared the machine. One thread keeps them fast.
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture
def untrained_feature_net(monkeypatch, tmp_path):
    """An untrained MNIST feature network in place of the shipped one, and a private cache: for tests of
    the CLI's plumbing, not of the network (``pytestmark = pytest.mark.usefixtures("untrained_feature_net")``)."""
    import lt_plugins.features as features

    def fake(device=None, cache_dir=None, seed=0, robust=False):
        with torch.random.fork_rng():
            torch.manual_seed(seed + 1000 * robust)  # the robust network of a seed is another network
            return features.MNISTFeatureNet().to(device).eval().requires_grad_(False)

    monkeypatch.setattr(features, "mnist_feature_net", fake)
    monkeypatch.setenv("LT_PLUGINS_CACHE", str(tmp_path / "cache"))
