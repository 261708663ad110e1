"""Checkpoints: resume refuses another run's checkpoint, damage is refused by name, one bad write loses nothing.

Faults are injected for real: bit flips and truncations of a saved checkpoint, wrong structures
saved with torch.save, and kill -9 of a child process in the middle of a save.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from test_search import PixelFeatures, _generator, _real, _scores, _search

import lt_plugins as lt
from lt_plugins.models import DCGANGenerator
from lt_plugins.objectives import MomentMatching
from lt_plugins.checkpoints import (
    CHECKPOINT_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    CheckpointError,
    checkpoint_digest,
    read_checkpoint,
)

STEPS = 6


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A search of STEPS steps interrupted in step 5: checkpoint.pt at step 4, checkpoint.prev.pt at step 2."""
    out = tmp_path_factory.mktemp("saved")

    def stop(info):
        if info.step == 5:  # after the checkpoint of step 4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _search(_generator(), out, checkpoint_every=2, callbacks=[stop]).run(_real(), steps=STEPS)
    return out


@pytest.fixture(scope="module")
def straight() -> list[torch.Tensor]:
    gen = _generator()
    _search(gen).run(_real(), steps=STEPS)
    return _scores(gen)


def _copy(saved: Path, tmp_path: Path, previous: bool = True) -> Path:
    out = tmp_path / "run"
    out.mkdir()
    for name in (CHECKPOINT_NAME, PREVIOUS_CHECKPOINT_NAME) if previous else (CHECKPOINT_NAME,):
        (out / name).write_bytes((saved / name).read_bytes())
    return out


def test_a_checkpoint_records_its_run_and_rotates_the_previous_one(saved):
    state, previous = read_checkpoint(saved / CHECKPOINT_NAME), read_checkpoint(saved / PREVIOUS_CHECKPOINT_NAME)
    assert (state["step"], previous["step"]) == (4, 2)
    run = state["run"]
    assert run["ticket_config"]["density"] == 0.3 and run["ticket_config"]["scope"] == "layer"
    assert (run["batch_size"], run["seed"], run["steps"], run["dense"], run["latent_dim"]) == (16, 0, STEPS, False, 8)
    assert run["objective"]["name"] == "moment_matching" and len(run["objective"]["features_key"]) == 64
    assert run["data"]["shape"] == [128, 1, 16, 16] and len(run["data"]["sha256"]) == 64
    assert state["sha256"] == checkpoint_digest(state)
    assert not list(saved.glob(".*.tmp"))


class OtherFeatures(PixelFeatures):
    def __init__(self):
        super().__init__()
        with torch.no_grad():
            self.conv.weight.mul_(2)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (dict(generator=dict(seed=1)), "ticket_config.seed"),
        (dict(generator=dict(density=0.5)), "ticket_config.density"),
        (dict(generator=dict(scope="global")), "ticket_config.scope"),
        (dict(search=dict(lr=0.01)), "lr"),
        (dict(search=dict(betas=(0.9, 0.999))), "betas"),
        (dict(search=dict(batch_size=8)), "batch_size"),
        (dict(search=dict(seed=3)), "seed: checkpoint 0, this run 3"),
        (dict(search=dict(warmup=0.2)), "warmup: checkpoint 0.05, this run 0.2"),
        (dict(objective=dict(ema_decay=0.9)), "objective.ema_decay"),
        (dict(features=OtherFeatures), "objective.features_key"),
        (dict(real=lambda: _real() * 0.5), "data.sha256"),
        (dict(real=lambda: _real(64)), "data.shape"),
        (dict(steps=STEPS + 2), "steps"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_resume_refuses_another_runs_checkpoint_and_lists_what_differs(saved, tmp_path, change, field):
    out = _copy(saved, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    config = {"seed": 0, "density": 0.3, **change.get("generator", {})}
    gen = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16), lt.TicketConfig(**config))
    objective = MomentMatching(change.get("features", PixelFeatures)(), cache=False, **change.get("objective", {}))
    settings = {"batch_size": 16, **change.get("search", {})}
    search = lt.TicketSearch(gen, objective, 8, progress=False, device="cpu", output_dir=out, **settings)
    real = change.get("real", _real)()
    with pytest.raises(CheckpointError, match="settings differ") as err:
        search.run(real, steps=change.get("steps", STEPS), resume=True)
    assert field in str(err.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing was written


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def test_bit_flips_are_refused_as_damage_or_change_nothing(saved, tmp_path):
    data = (saved / CHECKPOINT_NAME).read_bytes()
    digest = read_checkpoint(saved / CHECKPOINT_NAME)["sha256"]
    rng = random.Random(0)
    refused = 0
    path = tmp_path / CHECKPOINT_NAME
    for bit in sorted(rng.sample(range(8 * len(data)), 60)):
        path.write_bytes(_flip(data, bit))
        try:
            state = read_checkpoint(path)
        except CheckpointError as err:
            assert str(err).startswith("checkpoint damaged: "), err
            refused += 1
        else:  # a flip in bytes the content does not depend on (zip bookkeeping torch does not read)
            assert checkpoint_digest(state) == digest
    assert refused >= 40, refused


@pytest.mark.parametrize("keep", [0, 1, 100, 0.5, -1])
def test_a_truncated_checkpoint_is_refused_as_damage(saved, tmp_path, keep):
    data = (saved / CHECKPOINT_NAME).read_bytes()
    n = keep if isinstance(keep, int) and keep >= 0 else (int(len(data) * keep) if keep > 0 else len(data) - 1)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(data[:n])
    with pytest.raises(CheckpointError, match="^checkpoint damaged: "):
        read_checkpoint(path)


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: [1, 2, 3],
        lambda s: {k: v for k, v in s.items() if k != "generator"},
        lambda s: {**s, "losses": {"a": 1}},
        lambda s: {**s, "step": "4"},
        lambda s: {**s, "generator": [torch.zeros(1)]},
        lambda s: {**s, "step": 5},  # type-correct, but the hash no longer matches
    ],
    ids=["list", "no-generator", "losses-dict", "step-str", "generator-list", "edited-step"],
)
def test_wrong_structures_are_refused_as_damage_not_raw_errors(saved, tmp_path, edit):
    state = torch.load(saved / CHECKPOINT_NAME, weights_only=True)
    path = tmp_path / CHECKPOINT_NAME
    torch.save(edit(state), path)
    with pytest.raises(CheckpointError, match="^checkpoint damaged: "):
        read_checkpoint(path)


def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one_and_ends_as_straight(saved, tmp_path, straight):
    out = _copy(saved, tmp_path)
    data = (out / CHECKPOINT_NAME).read_bytes()
    (out / CHECKPOINT_NAME).write_bytes(data[: len(data) // 2])
    gen = _generator()
    search = _search(gen, out, checkpoint_every=2)
    with pytest.warns(UserWarning, match=r"checkpoint damaged: .*Resuming from the previous checkpoint .*\(step 2\)"):
        search.run(_real(), steps=STEPS, resume=True)
    for a, b in zip(straight, _scores(gen)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert read_checkpoint(out / CHECKPOINT_NAME)["step"] == STEPS  # the run went on and saved again


def test_without_an_intact_checkpoint_resume_says_so(saved, tmp_path):
    out = _copy(saved, tmp_path, previous=False)
    (out / CHECKPOINT_NAME).write_bytes(b"\0" * 64)
    with pytest.raises(CheckpointError, match="checkpoint damaged: .*No previous checkpoint"):
        _search(_generator(), out).run(_real(), steps=STEPS, resume=True)
    (out / PREVIOUS_CHECKPOINT_NAME).write_bytes(b"PK")
    with pytest.raises(CheckpointError, match="The previous one is not usable either: checkpoint damaged"):
        _search(_generator(), out).run(_real(), steps=STEPS, resume=True)


def test_a_format_1_checkpoint_is_refused_with_what_to_do(saved, tmp_path):
    state = torch.load(saved / CHECKPOINT_NAME, weights_only=True)
    path = tmp_path / CHECKPOINT_NAME
    torch.save({k: v for k, v in state.items() if k not in ("run", "sha256")} | {"format": 1}, path)
    with pytest.raises(CheckpointError, match="older lt_plugins .*delete it"):
        read_checkpoint(path)


CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads({threads})  # as the parent runs (conftest): float sums depend on the thread count
    from test_search import _generator, _real, _search
    import lt_plugins.search as search_module

    mode, out = sys.argv[1], sys.argv[2]
    saves = {{"n": 0}}
    real_save, real_replace = torch.save, os.replace

    def save(state, path):  # the third save dies half-way through writing its temporary file
        saves["n"] += 1
        if mode == "mid-write" and saves["n"] == 3:
            with open(path, "wb") as f:
                f.write(b"PK\\x03\\x04" + b"x" * 1000)
                f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(state, path)

    def replace(src, dst):  # the third save dies between its two renames
        real_replace(src, dst)
        if mode == "between-renames" and saves["n"] == 3 and str(dst).endswith("checkpoint.prev.pt"):
            os.kill(os.getpid(), signal.SIGKILL)

    search_module.torch.save = save
    search_module.os.replace = replace
    _search(_generator(), out, checkpoint_every=1).run(_real(), steps=6)
    """
)


@pytest.mark.parametrize("mode", ["mid-write", "between-renames"])
def test_kill_9_in_the_middle_of_a_save_loses_nothing(tmp_path, straight, mode):
    out = tmp_path / "run"
    script = CHILD.format(tests=str(Path(__file__).parent), threads=torch.get_num_threads())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", script, mode, str(out)], env=env, capture_output=True, timeout=300)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    names = {p.name for p in out.iterdir()}
    if mode == "mid-write":
        assert CHECKPOINT_NAME in names and any(n.endswith(".tmp") for n in names)  # a stale temporary file
        assert read_checkpoint(out / CHECKPOINT_NAME)["step"] == 2
    else:
        assert CHECKPOINT_NAME not in names and read_checkpoint(out / PREVIOUS_CHECKPOINT_NAME)["step"] == 2
    gen = _generator()
    search = _search(gen, out, checkpoint_every=1)
    if mode == "mid-write":
        search.run(_real(), steps=STEPS, resume=True)
    else:
        with pytest.warns(UserWarning, match="is missing"):
            search.run(_real(), steps=STEPS, resume=True)
    for a, b in zip(straight, _scores(gen)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # cleaned up by the next save


def test_resume_without_a_checkpoint_says_it_starts_from_step_0(tmp_path):
    with pytest.warns(UserWarning, match="does not exist: the search starts from step 0"):
        _search(_generator(), tmp_path).run(_real(), steps=1, resume=True)
