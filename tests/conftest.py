import os

# No test may reach the real Hub: a cache miss there hangs ~23 s before failing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
pytest_plugins = ["hub_fixtures"]

import torch  # noqa: E402

# Two threads on a 2-core machine shared with the test runner's own work oversubscribe it:
# tiny models ran up to 80x slower when other jobs shared the machine. One thread keeps them fast.
torch.set_num_threads(1)
