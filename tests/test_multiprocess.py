"""Multi-process search: 2 gloo ranks on CPU under torchrun, as `accelerate launch` runs it on GPUs.

Every rank holds the same scores and masks (layer and global scope, MMD); 2 processes × batch
B give the single-process answer for batch 2B (BatchNorm included, through global-batch
statistics; MMD's value and gradient); the search command reports and saves once; a search killed under 2 processes resumes and ends where an uninterrupted one
does; only rank 0 writes files or shows the progress bar; the launches exit cleanly.

Three real launches (``tests/multiprocess_worker.py``: search, killed, resume) run once
for the module; the tests read what each rank saved.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import multiprocess_worker as worker

WORLD = 2
WORKER = Path(__file__).with_name("multiprocess_worker.py")
LAUNCH_TIMEOUT_S = 180  # a launch takes ~10 s; the machine is shared, so leave room

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed with gloo"
)


def _rank_log(out: Path, scenario: str, rank: int, stream: str = "stderr") -> str:
    """What rank ``rank`` printed (torchrun --redirects writes one file per rank and stream)."""
    files = list((out / f"logs_{scenario}").glob(f"*/attempt_0/{rank}/{stream}.log"))
    return files[0].read_text(errors="replace") if files else ""


def _launch(scenario: str, out: Path, *program: str, **env_vars: str) -> subprocess.CompletedProcess:
    """torchrun ``program`` (default: the worker's ``scenario``) on WORLD ranks; logs under ``out``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "LT_PLUGINS_CACHE": str(out / "cache"), **env_vars}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}",
        "--redirects", "3", "--log-dir", str(out / f"logs_{scenario}"), *(program or (str(WORKER), scenario, str(out))),
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)


def _explain(scenario: str, out: Path, proc: subprocess.CompletedProcess) -> str:
    ranks = "\n".join(f"--- rank {r} stderr ---\n{_rank_log(out, scenario, r)[-3000:]}" for r in range(WORLD))
    return f"torchrun {scenario} exited {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}\n{ranks}"


def _results(out: Path, scenario: str) -> list[dict]:
    return [torch.load(out / f"{scenario}_rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def launched(tmp_path_factory) -> dict:
    """The three launches, in order, and what they left behind."""
    out = tmp_path_factory.mktemp("multiprocess")
    done: dict = {"out": out, "procs": {}}
    for scenario in ("search", "killed", "resume"):
        proc = done["procs"][scenario] = _launch(scenario, out)
        if scenario == "killed":
            assert proc.returncode != 0, _explain(scenario, out, proc)
            checkpoint = torch.load(out / "runs" / "killed" / "checkpoint.pt", weights_only=True)
            done["killed_at"] = {"checkpoint_step": checkpoint["step"], "losses": len(checkpoint["losses"]),
                                 "finished": (out / "runs" / "killed" / "samples.png").exists()}
        else:
            assert proc.returncode == 0, _explain(scenario, out, proc)
            done[scenario] = _results(out, scenario)
    return done


@pytest.fixture(scope="module")
def one_process() -> dict:
    """The same searches in this one process, on the global batch (WORLD × BATCH latents per step)."""
    real, found = worker.real_images(), {}
    for key, scope, steps, kw in (("layer", "layer", worker.STEPS, {}), ("global", "global", worker.STEPS, {}),
                                  ("per_rank_bn", "layer", 3, {})):
        gen = worker.make_generator(scope)
        search = worker.make_search(gen, WORLD * worker.BATCH, progress=False, **kw)
        search.run(real, steps=steps)
        found[key] = worker.snapshot(gen, search)
    return found


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("scope", ["layer", "global", "mmd"])
def test_every_rank_holds_bit_identical_scores_and_masks(launched, scope):
    rank0, rank1 = (r[scope] for r in launched["search"])
    assert rank0["losses"] and rank0["losses"] == rank1["losses"]
    for a, b in zip(rank0["scores"], rank1["scores"], strict=True):
        assert torch.equal(a, b)
    _assert_same(rank0["masks"], rank1["masks"])
    _assert_same(rank0["buffers"], rank1["buffers"])  # BatchNorm running statistics too
    assert sum(int(m.sum()) for m in rank0["masks"].values()) > 0


def test_every_rank_returns_the_same_ticket(launched):
    rank0, rank1 = launched["search"]
    _assert_same(rank0["ticket_masks"], rank1["ticket_masks"])
    _assert_same(rank0["ticket_masks"], rank0["layer"]["masks"])


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_two_processes_give_the_one_process_result_on_the_global_batch(launched, one_process, scope):
    two, one = launched["search"][0][scope], one_process[scope]
    # Only summation order differs (all-reduce vs one sum, global-batch BatchNorm vs F.batch_norm);
    # Adam turns the 1e-7 differences into at most ~1e-5 after 8 steps of lr 0.05.
    for a, b in zip(two["scores"], one["scores"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    _assert_same(two["masks"], one["masks"])
    torch.testing.assert_close(torch.tensor(two["losses"]), torch.tensor(one["losses"]), rtol=1e-5, atol=1e-7)
    for name, value in one["buffers"].items():
        torch.testing.assert_close(two["buffers"][name], value, rtol=1e-5, atol=1e-6)


def test_mmd_under_two_processes_is_the_one_process_mmd_of_the_global_batch(launched):
    # Compared as value and gradient: a search would let Adam's first, sign-like step turn
    # float-level differences of near-zero gradients into whole mask flips.
    value, grads = worker.mmd_value_and_gradient(WORLD * worker.BATCH)
    for rank_value, rank_grads in (r["mmd_gradient"] for r in launched["search"]):
        assert rank_value == pytest.approx(value, rel=1e-5)
        for a, b in zip(rank_grads, grads, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_real_moments_of_sharded_data_equal_the_single_process_ones(launched, one_process):
    computed = launched["search"][0]["layer"]["real_moments"]  # cache miss: each rank read half the images
    cached = launched["search"][1]["global"]["real_moments"]  # then read back from rank 0's cache file
    for moments in (computed, cached):
        for (mean, var), (mean1, var1) in zip(moments, one_process["layer"]["real_moments"], strict=True):
            torch.testing.assert_close(mean, mean1, rtol=1e-6, atol=1e-7)
            torch.testing.assert_close(var, var1, rtol=1e-6, atol=1e-7)


def test_per_process_batchnorm_is_opt_in_and_differs_from_one_process(launched, one_process):
    rank0, rank1 = (r["per_rank_bn"] for r in launched["search"])
    _assert_same(rank0["masks"], rank1["masks"])  # scores are still all-reduced by DDP ...
    assert any(not torch.equal(rank0["buffers"][k], rank1["buffers"][k]) for k in rank0["buffers"])  # ... BN stats not
    drift = max(float((a - b).abs().max()) for a, b in zip(rank0["scores"], one_process["per_rank_bn"]["scores"]))
    assert drift > 1e-2  # sync_batchnorm=False is a different function of the scores, not a rounding difference


def test_killed_search_resumes_under_two_processes_and_matches_the_uninterrupted_run(launched):
    assert "SIGKILL" in launched["procs"]["killed"].stderr
    assert launched["killed_at"] == {"checkpoint_step": worker.CHECKPOINT_EVERY, "losses": worker.CHECKPOINT_EVERY,
                                     "finished": False}
    straight = launched["search"][0]["layer"]
    for resumed in (r["layer"] for r in launched["resume"]):
        assert resumed["losses"] == straight["losses"]
        for a, b in zip(resumed["scores"], straight["scores"], strict=True):
            assert torch.equal(a, b)
        _assert_same(resumed["masks"], straight["masks"])
        _assert_same(resumed["buffers"], straight["buffers"])


def test_only_rank_0_writes_files(launched):
    out = launched["out"]
    for scenario in ("search", "resume"):
        rank0, rank1 = launched[scenario]
        assert rank1["writes"] == [], scenario
        assert rank0["writes"], scenario
    written = {Path(p).relative_to(out).as_posix() for p in launched["search"][0]["writes"] if ".tmp" not in p}
    assert {"runs/straight/checkpoint.pt", "runs/straight/samples.png", "runs/straight/samples/step_000003.png"} <= written
    assert any(p.startswith("cache/moments/") for p in written)
    assert not list((out / "runs").rglob(".*.tmp"))


def test_progress_bar_shows_once(launched):
    out = launched["out"]
    assert "ticket search: 100%" in _rank_log(out, "search", 0)
    assert "ticket search" not in _rank_log(out, "search", 1)


def test_launches_exit_cleanly_and_leave_the_model_unpatched(launched):
    for scenario in ("search", "resume"):
        proc = launched["procs"][scenario]
        assert proc.returncode == 0
        assert "SIGABRT" not in proc.stderr and "Signal 6" not in proc.stderr
        for rank in launched[scenario]:
            assert all(snap["patched_forwards"] == [] for key, snap in rank.items() if isinstance(snap, dict)
                       and "patched_forwards" in snap)


def test_search_follows_the_launchers_bf16_setting(tmp_path):
    proc = _launch("bf16", tmp_path, ACCELERATE_MIXED_PRECISION="bf16")
    assert proc.returncode == 0, _explain("bf16", tmp_path, proc)
    rank0, rank1 = _results(tmp_path, "bf16")
    assert rank0["mixed_precision"] == "bf16"
    assert all(torch.isfinite(torch.tensor(r["layer"]["losses"])).all() for r in (rank0, rank1))
    _assert_same(rank0["layer"]["masks"], rank1["layer"]["masks"])
    for a, b in zip(rank0["layer"]["scores"], rank1["layer"]["scores"], strict=True):
        assert torch.equal(a, b)
    assert rank0["plain_forward_after_run"] and rank1["plain_forward_after_run"]  # Accelerate's autocast wrapper removed


def test_search_command_under_two_processes_reports_and_saves_once(tmp_path):
    from lt_plugins import Ticket

    run = tmp_path / "run"
    proc = _launch(
        "cli", tmp_path, "-m", "lt_plugins.cli", "search", "--steps", "3", "--checkpoint-every", "2",
        "--image-size", "16", "--model-kwargs", '{"nz": 8, "ngf": 8}', "--eval-samples", "40", "--eval-at", "2",
        "--no-progress", "--out", str(run),
    )
    assert proc.returncode == 0, _explain("cli", tmp_path, proc)
    printed = [_rank_log(tmp_path, "cli", rank, "stdout") for rank in range(WORLD)]
    assert "FD ticket (10% of weights)" in printed[0] and "FD on the way: step 2" in printed[0]
    assert "FD" not in printed[1]
    ticket = Ticket.from_pretrained(run / "ticket")
    assert ticket.density == pytest.approx(0.1, abs=1e-3) and "fd" in ticket.metrics
    assert sorted(p.name for p in (run / "search" / "samples").iterdir()) == ["step_000002.png", "step_000003.png"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="Accelerate's default state is only wrong without a GPU")
def test_accelerate_state_made_without_cpu_true_is_a_clear_error(tmp_path):
    proc = _launch("state_without_cpu", tmp_path)
    assert proc.returncode == 0, _explain("state_without_cpu", tmp_path, proc)
    for result in _results(tmp_path, "state_without_cpu"):
        assert "torch.distributed runs 2 processes but Accelerate sees 1" in result["error"]
        assert "cpu=True" in result["error"]


def test_end_processes_is_a_no_op_in_one_process():
    from lt_plugins.distributed import end_processes

    end_processes()
    assert not dist.is_initialized()
