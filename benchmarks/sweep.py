"""Hyper-parameter sweep of ticket search and dense training on MNIST: one JSON line per run.

A grid is a JSON list of runs; each run is a dict with ``family`` ("dcgan" | "stylegan"),
``seed``, ``steps`` and ``density`` (null: dense training), and optionally any other field of
`lt_plugins.recipes.SearchJob` -- ``scope``, ``lr``, ``ema``
(moment matching's running average, default 0.5), ``model_kwargs``, ``scale_fan``,
``weight_init``, ``score_init``, ``exclude`` (modules left dense), ``batch`` and
``eval_at`` (steps at which FD is also measured). FD: 2,000 generated vs the 10,000 shipped
digits in mnist_feature_net(seed=1) features, as in paper_mnist.py. The grid behind the
README's choices (EMA 0.9, StyleGAN lr 3e-4) is benchmarks/sweeps/h100_2026-11-25.json;
its results are benchmarks/results/sweep_h100.jsonl (one H100, 8 runs at a time).

    python benchmarks/sweep.py benchmarks/sweeps/h100_2026-11-25.json out.jsonl --workers 8

`benchmarks/sweep_curves.py out.jsonl curves.png` tabulates and plots FD against step.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch


# Grid keys that are not SearchJob's field names.
_RENAMED = {"ema": "ema_decay", "batch": "batch_size", "exclude": "exclude_modules"}


def run(task: dict[str, Any]) -> dict[str, Any]:
    """One search (or dense training) of the grid; returns the task with its FD and seconds."""
    from lt_plugins.recipes import SearchJob, run_search

    torch.set_num_threads(1)
    fields = {_RENAMED.get(key, key): value for key, value in task.items()}
    dense = fields.pop("density", None) is None
    with tempfile.TemporaryDirectory() as out:
        job = SearchJob(**fields, dense=dense, density=1.0 if dense else task["density"], out=out,
                        checkpoint_every=task["steps"], measure_random_init=False, progress=False)
        report = run_search(job)
    return {**task, "fd": report["fd"], "evals": report["fd_at_step"], "seconds": report["seconds"]}


def _run_safely(task: dict[str, Any]) -> dict[str, Any]:
    try:
        return run(task)
    except Exception:  # one bad point must not end the sweep; its error goes into the results
        return {**task, "error": traceback.format_exc()[-2000:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", help="JSON list of runs")
    parser.add_argument("out", help="JSON lines, appended to as runs finish")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes (several fit on one GPU)")
    args = parser.parse_args()
    grid = json.loads(Path(args.grid).read_text())
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool, \
            open(args.out, "a") as out:
        for future in as_completed([pool.submit(_run_safely, task) for task in grid]):
            result = future.result()
            out.write(json.dumps(result) + "\n")
            out.flush()
            shown = ("family", "density", "lr", "ema", "steps", "seed", "fd", "seconds", "error")
            print(json.dumps({k: result.get(k) for k in shown}), flush=True)


if __name__ == "__main__":
    main()
