"""The paper's claim on MNIST: a 10% ticket is no worse than the dense network trained with the same loss.

Same generator (DCGAN, 32×32, nz 100, ngf 32), same moment-matching loss, same number of
steps, several seeds. For each seed: FD of the random-init network, of the densely trained
network and of tickets at several densities, measured on 2,000 samples against the 10,000
shipped MNIST images in the feature space of an MNIST classifier trained from another seed
than the one the loss matches. Prints one table (mean ± std over seeds, seconds per step),
writes results JSON, a plot (FD against density, dense and random init as lines) and a
grid of samples of every variant.

    python benchmarks/paper_mnist.py [--seeds 0 1 2] [--steps 600] [--ema-decay 0.5] [--scope layer] [--workers 1] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from fd_plot import fd_plot
from sheet import sample_sheet

from lt_plugins._io import atomic_path
from lt_plugins.recipes import SearchJob, run_search

DENSITIES = (0.05, 0.1, 0.3, 0.5)


def _device() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):8.2f} ± {std:5.2f}"


def _run_one(job: SearchJob) -> dict:
    report = run_search(job)
    keep = ("fd", "fd_random_init", "seconds_per_step", "samples", "metrics")
    return {k: report[k] for k in keep}


def run(seeds: list[int], steps: int, densities: tuple[float, ...], ema_decay: float, scope: str, work: Path,
        eval_samples: int, partial: Path, workers: int) -> dict:
    """Run every (seed, variant) not yet in ``partial``, ``workers`` at a time; the JSON is rewritten after each run."""
    results: dict[str, dict[str, dict]] = json.loads(partial.read_text()) if partial.exists() else {}
    pending = []
    for seed in seeds:
        variants = [("dense", SearchJob(dense=True))] + [
            (f"{d:g}", SearchJob(density=d, scope=scope, measure_random_init=False)) for d in densities
        ]
        for name, job in variants:
            if str(seed) in results.get(name, {}):
                continue
            job.seed, job.steps, job.progress, job.eval_samples, job.ema_decay = seed, steps, False, eval_samples, ema_decay
            job.out = str(work / f"seed{seed}" / f"{name.replace('.', '_')}_{scope}")
            pending.append((seed, name, job))

    def record(seed: int, name: str, report: dict) -> None:
        results.setdefault(name, {})[str(seed)] = {k: v for k, v in report.items() if k != "fd_random_init"}
        if name == "dense":  # random init: the same seeded weights before training
            results.setdefault("random", {})[str(seed)] = {"fd": report["fd_random_init"]}
        with atomic_path(partial) as tmp:
            tmp.write_text(json.dumps(results, indent=2))
        print(f"seed {seed} {name:>6}: FD {report['fd']:.2f} ({report['seconds_per_step'] * 1e3:.0f} ms/step)", flush=True)

    if workers == 1:
        for seed, name, job in pending:
            record(seed, name, _run_one(job))
    else:  # independent runs in parallel processes, e.g. several on one GPU
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_one, job): (seed, name) for seed, name, job in pending}
            for future in as_completed(futures):
                record(*futures[future], future.result())
    order = ["random", "dense", *(f"{d:g}" for d in densities)]
    return {name: [results[name][str(seed)] for seed in seeds] for name in order}


def table(results: dict, steps: int, seeds: list[int], ema_decay: float, scope: str, eval_samples: int) -> str:
    lines = [f"DCGAN 32x32 on MNIST, moment matching (EMA {ema_decay:g}), {scope} top-k, {steps} steps, seeds {seeds}; "
             f"FD on {eval_samples:,} samples (lower is better), {_device()}",
             f"{'variant':<22}{'FD mean ± std':>18}{'ms/step':>10}"]
    labels = {"random": "random init", "dense": "dense, trained"}
    for name, runs in results.items():
        label = labels[name] if name in labels else f"ticket, {float(name):.0%} kept"
        ms = f"{statistics.mean(r['seconds_per_step'] for r in runs) * 1e3:10.0f}" if "seconds_per_step" in runs[0] else f"{'-':>10}"
        lines.append(f"{label:<22}{_mean_std([r['fd'] for r in runs]):>18}{ms}")
    return "\n".join(lines)


def plot(results: dict, densities: tuple[float, ...], path: Path) -> None:
    from matplotlib.ticker import NullLocator

    with fd_plot(path, "weights kept", size=(5.5, 3.6)) as ax:
        means = [statistics.mean(r["fd"] for r in results[f"{d:g}"]) for d in densities]
        stds = [statistics.stdev([r["fd"] for r in results[f"{d:g}"]]) if len(results[f"{d:g}"]) > 1 else 0
                for d in densities]
        ax.errorbar([d * 100 for d in densities], means, yerr=stds, marker="o", capsize=3,
                    label="ticket (no weight trained)")
        for name, style in (("dense", "--"), ("random", ":")):
            ax.axhline(statistics.mean(r["fd"] for r in results[name]), linestyle=style,
                       color="k" if name == "dense" else "grey",
                       label="dense, trained" if name == "dense" else "random init")
        ax.set_xscale("log")
        ax.set_xticks([d * 100 for d in densities], [f"{d:.0%}" for d in densities])
        ax.xaxis.set_minor_locator(NullLocator())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--densities", type=float, nargs="+", default=list(DENSITIES))
    parser.add_argument("--eval-samples", type=int, default=2000)
    parser.add_argument("--ema-decay", type=float, default=0.5, help="moment matching's running average, every variant")
    parser.add_argument("--scope", choices=("layer", "global"), default="layer", help="the tickets' top-k ranking")
    parser.add_argument("--workers", type=int, default=1,
                        help="runs in parallel processes (several fit on one GPU; on a 2-core CPU keep 1)")
    parser.add_argument("--work", default="benchmarks/out/paper_mnist",
                        help="checkpoints, tickets, sample grids, and the runs so far (an interrupted benchmark "
                             "continues where it stopped)")
    parser.add_argument("--out", default="benchmarks/results", help="where the table, plot and sample sheet go")
    args = parser.parse_args()

    densities = tuple(args.densities)
    work = Path(args.work)
    partial = work / f"runs_{args.steps}steps_ema{args.ema_decay:g}_{args.scope}.json"
    results = run(args.seeds, args.steps, densities, args.ema_decay, args.scope, work, args.eval_samples, partial,
                  args.workers)
    text = table(results, args.steps, args.seeds, args.ema_decay, args.scope, args.eval_samples)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper_mnist.txt").write_text(text + "\n")
    (out / "paper_mnist.json").write_text(json.dumps(results, indent=2))
    plot(results, densities, out / "paper_mnist_fd.png")
    grids = [("dense" if name == "dense" else f"ticket {float(name):.0%}", runs[0]["samples"])
             for name, runs in results.items() if "samples" in runs[0]]
    sample_sheet([("", grids)], out / "paper_mnist_samples.png")  # the first seed's
    ticket10 = statistics.mean(r["fd"] for r in results["0.1"]) if "0.1" in results else float("nan")
    dense = statistics.mean(r["fd"] for r in results["dense"])
    print(f"claim (10% ticket FD <= dense FD): {ticket10:.2f} vs {dense:.2f} -> {'holds' if ticket10 <= dense else 'does not hold'}")


if __name__ == "__main__":
    main()
