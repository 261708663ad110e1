"""Hyper-parameter sweep of ticket search and dense training on MNIST: one JSON line per run.

A grid is a JSON list of runs; each run is a dict with ``family`` ("dcgan" | "stylegan"),
``seed``, ``steps`` and ``density`` (null: dense training), and optionally any other field of
`lt_plugins.recipes.SearchJob` -- ``scope``, ``lr``, ``ema``
(moment matching's running average, default 0.5), ``normalise``, ``model_kwargs``, ``scale_fan``,
``weight_init``, ``score_init``, ``exclude`` (modules left dense), ``batch`` and
``eval_at`` (steps at which FD is also measured). Each row gives FD, the recognisable share and the
rarest class (`lt.recognisability`); a rerun skips the runs already in ``out``. FD: 2,000 generated vs the 10,000 shipped
digits in mnist_feature_net(seed=1) features, as in paper_mnist.py. The grid behind the
README's choices (EMA 0.9, StyleGAN lr 3e-4) is benchmarks/sweeps/h100_2026-11-25.json;
its results are benchmarks/results/sweep_h100.jsonl (one H100, 8 runs at a time).

    python benchmarks/sweep.py benchmarks/sweeps/h100_2026-11-25.json out.jsonl --workers 8

`benchmarks/sweep_curves.py out.jsonl curves.png` tabulates and plots FD against step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import shutil
import tempfile
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable

import torch


# Grid keys that are not SearchJob's field names.
_RENAMED = {"ema": "ema_decay", "batch": "batch_size", "exclude": "exclude_modules"}


def run(task: dict[str, Any]) -> dict[str, Any]:
    """One search (or dense training) of the grid; returns the task with its FD, recognisable
    share, rarest class, recall, coverage and seconds. A ``samples`` key names where its final sample grid is copied."""
    from lt_plugins.recipes import SearchJob, run_search

    torch.set_num_threads(1)
    fields = {_RENAMED.get(key, key): value for key, value in task.items() if key != "samples"}
    dense = fields.pop("density", None) is None
    with tempfile.TemporaryDirectory() as out:
        job = SearchJob(**fields, dense=dense, density=1.0 if dense else task["density"], out=out,
                        checkpoint_every=task["steps"], measure_random_init=False, progress=False)
        report = run_search(job)
        if "samples" in task:
            Path(task["samples"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(report["samples"], task["samples"])
    metrics = report["metrics"]
    return {**task, "fd": report["fd"], "recognisable": metrics.get("recognisable"),
            "rarest_class": metrics.get("rarest_class"), "recall": metrics.get("recall"),
            "coverage": metrics.get("coverage"), "evals": report["fd_at_step"], "seconds": report["seconds"]}


def _run_safely(task: dict[str, Any], runner: Callable[[dict[str, Any]], dict[str, Any]] = run) -> dict[str, Any]:
    try:
        return runner(task)
    except Exception:  # one bad point must not end the sweep; its error goes into the results
        return {**task, "error": traceback.format_exc()[-2000:]}


def finished(path: str | Path) -> list[dict[str, Any]]:
    """The runs already in a results file (none when it does not exist), errors left out."""
    path = Path(path)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return [row for row in rows if "error" not in row]


def run_grid(grid: list[dict[str, Any]], out: str | Path, workers: int = 1,
             runner: Callable[[dict[str, Any]], dict[str, Any]] = run) -> list[dict[str, Any]]:
    """Run every task of ``grid`` not already finished in ``out`` (so an interrupted sweep resumes),
    appending one JSON line per run as it ends; return every finished row of the grid. ``runner``
    turns a task into its row (default `run`, a `SearchJob`); with ``workers > 1`` it must be a
    module-level function, as processes receive it by name."""
    done = finished(out)
    todo = [task for task in grid if _row_of(task, done) is None]
    with contextlib.ExitStack() as stack, open(out, "a") as f:
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")))
            results = (future.result() for future in as_completed([pool.submit(_run_safely, t, runner) for t in todo]))
        else:  # in this process: no interpreter start per run
            results = (_run_safely(task, runner) for task in todo)
        for result in results:
            f.write(json.dumps(result) + "\n")
            f.flush()
            shown = ("family", "density", "lr", "ema", "normalise", "steps", "seed", "fd", "recognisable",
                     "rarest_class", "seconds", "error")
            print(json.dumps({k: result.get(k) for k in shown if k in result}), flush=True)
    rows = finished(out)
    return [row for row in (_row_of(task, rows) for task in grid) if row is not None]


def _row_of(task: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last result row of ``task`` (a row holds its task's keys and values), or None."""
    return next((row for row in reversed(rows) if all(row.get(k) == v for k, v in task.items())), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", help="JSON list of runs")
    parser.add_argument("out", help="JSON lines, appended to as runs finish; runs already there are skipped")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel processes (several fit on one GPU)")
    args = parser.parse_args()
    run_grid(json.loads(Path(args.grid).read_text()), args.out, args.workers)


if __name__ == "__main__":
    main()
