"""A 2-process CPU search next to 1 process for the same global batch: speed, communication, memory.

Launched side by side in one run, each in fresh processes with one thread per process:

  1 process, global batch G          the reference
  1 process, batch G/2               the work one rank of a 2-process run does, without talking
  2 processes × G/2 (torchrun)       what `accelerate launch --num_processes 2` runs
  2 processes × G/2, per-rank BN     the same with sync_batchnorm=False

Communication overhead per step = (2 processes × G/2) − (1 process × G/2): the time a rank spends
in collectives and waiting for the other. The python-level collectives (global-batch BatchNorm,
fake-feature moments, the finite-loss check) are also timed directly; DDP's gradient all-reduce
runs in C++ and is only in the difference. On a 2-core machine the point is correctness and
overhead, not speed-up. No CUDA figures: see docs/multi_gpu.md.

    python benchmarks/multiprocess.py [--global-batch 64] [--steps 40] [--warmup 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


class Features(nn.Module):
    """A fixed random two-layer conv feature net (deterministic, nothing to download)."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.a, self.b = nn.Conv2d(1, 16, 3, stride=2), nn.Conv2d(16, 32, 3, stride=2)
        with torch.no_grad():
            for conv in (self.a, self.b):
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) / conv.weight[0].numel() ** 0.5)
                conv.bias.zero_()

    def forward(self, x):
        a = torch.relu(self.a(x))
        b = torch.relu(self.b(a))
        return [a, b, b.mean((2, 3))]


def worker(args: argparse.Namespace) -> None:
    """One process of one configuration: time the steps, write a JSON report per rank."""
    import torch.distributed as dist

    import lt_plugins as lt
    from lt_plugins.models import DCGANGenerator
    from lt_plugins.distributed import end_processes

    collective = {"calls": 0, "seconds": 0.0}
    all_reduce = dist.all_reduce

    def timed_all_reduce(*a, **kw):  # every python-level all-reduce of the package goes through here
        began = time.perf_counter()
        try:
            return all_reduce(*a, **kw)
        finally:
            collective["calls"] += 1
            collective["seconds"] += time.perf_counter() - began

    dist.all_reduce = timed_all_reduce
    real = torch.rand(512, 1, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    gen = lt.wrap(DCGANGenerator(nz=32, ngf=16, nc=1, image_size=32), lt.TicketConfig(density=0.1, seed=0))
    stamps: list[float] = []
    counts: list[tuple[int, float]] = []

    def stamp(info) -> None:
        stamps.append(time.perf_counter())
        counts.append((collective["calls"], collective["seconds"]))

    search = lt.TicketSearch(gen, lt.MomentMatching(Features(), cache=False), 32, batch_size=args.batch,
                             device="cpu", progress=False, sync_batchnorm=not args.per_rank_bn, callbacks=[stamp])
    search.run(real, steps=args.warmup + args.steps)
    timed = slice(args.warmup, None)
    durations = [b - a for a, b in zip(stamps[timed], stamps[timed][1:])]
    calls = [b[0] - a[0] for a, b in zip(counts[timed], counts[timed][1:])]
    waits = [b[1] - a[1] for a, b in zip(counts[timed], counts[timed][1:])]
    rank = dist.get_rank() if dist.is_initialized() else 0
    report = {
        "rank": rank,
        "seconds_per_step": statistics.median(durations),
        "collectives_per_step": statistics.median(calls) if calls else 0,
        "collective_seconds_per_step": statistics.median(waits) if waits else 0.0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loss": search.result.losses[-1],
    }
    Path(args.report).with_suffix(f".rank{rank}.json").write_text(json.dumps(report))
    end_processes()


def launch(name: str, processes: int, batch: int, args: argparse.Namespace, folder: Path, per_rank_bn: bool = False) -> dict:
    report = folder / name.replace(" ", "_").replace("/", "")
    flags = ["--worker", "--batch", str(batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
             "--report", str(report)] + (["--per-rank-bn"] if per_rank_bn else [])
    if processes == 1:
        command = [sys.executable, __file__, *flags]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   __file__, *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    ranks = [json.loads(report.with_suffix(f".rank{r}.json").read_text()) for r in range(processes)]
    return {"name": name, "processes": processes, "batch": batch, "ranks": ranks,
            "seconds_per_step": max(r["seconds_per_step"] for r in ranks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="timed steps (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--report", help=argparse.SUPPRESS)
    parser.add_argument("--per-rank-bn", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        torch.set_num_threads(1)
        return worker(args)

    g = args.global_batch
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = [
            launch("1 process", 1, g, args, folder),
            launch("1 process, half batch", 1, g // 2, args, folder),
            launch("2 processes", 2, g // 2, args, folder),
            launch("2 processes, per-rank BN", 2, g // 2, args, folder, per_rank_bn=True),
        ]
    print(f"DCGAN 32x32 (nz 32, ngf 16, 10% of weights), moment matching on a 3-map conv net; "
          f"global batch {g}; median of {args.steps} steps after {args.warmup}; 1 thread per process; "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__}, gloo")
    print(f"{'configuration':<27}{'procs':>6}{'batch/proc':>11}{'ms/step':>9}{'steps/s':>9}"
          f"{'py collectives/step':>20}{'ms in them':>11}{'peak RSS/proc MiB':>19}")
    for row in rows:
        r0 = row["ranks"][0]
        rss = " / ".join(f"{r['peak_rss_mib']:.0f}" for r in row["ranks"])
        print(f"{row['name']:<27}{row['processes']:>6}{row['batch']:>11}{row['seconds_per_step'] * 1e3:>9.1f}"
              f"{1 / row['seconds_per_step']:>9.1f}{r0['collectives_per_step']:>20.0f}"
              f"{r0['collective_seconds_per_step'] * 1e3:>11.2f}{rss:>19}")
    one, half, two, per_rank = (row["seconds_per_step"] for row in rows)
    print(f"communication overhead per step (2 processes − 1 process at half batch): {(two - half) * 1e3:.1f} ms "
          f"({(two - half) / two:.0%} of a 2-process step)")
    print(f"global-batch BatchNorm costs {(two - per_rank) * 1e3:.1f} ms/step over per-rank BatchNorm")
    print(f"2 processes vs 1 process on the same global batch: {one / two:.2f}x the steps/s")


if __name__ == "__main__":
    main()
