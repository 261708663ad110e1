"""Hyper-parameter sweep of ticket search and dense training on MNIST: one JSON line per run.

A grid is a JSON list of runs; each run is a dict with ``family`` ("dcgan" | "stylegan"),
``seed``, ``steps`` and ``density`` (null: dense training), and optionally ``scope``, ``lr``, ``ema``
(moment matching's running average, default 0.5), ``model_kwargs``, ``scale_fan``,
``weight_init``, ``score_init``, ``exclude`` (modules left dense), ``batch`` and
``eval_at`` (steps at which FD is also measured). FD: 2,000 generated vs the 10,000 shipped
digits in mnist_feature_net(seed=1) features, as in paper_mnist.py. The grid behind the
README's choices (EMA 0.9, StyleGAN lr 3e-4) is benchmarks/sweeps/h100_2026-11-25.json;
its results are benchmarks/results/sweep_h100.jsonl (one H100, 8 runs at a time).

    python benchmarks/sweep.py benchmarks/sweeps/h100_2026-11-25.json out.jsonl --workers 8
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch


def run(task: dict[str, Any]) -> dict[str, Any]:
    """One search (or dense training) of the grid; returns the task with its FD and seconds."""
    import lt_plugins as lt
    from lt_plugins.commands.search import build_generator, latent_dim_of
    from lt_plugins.data import load_images
    from lt_plugins.features import mnist_feature_net
    from lt_plugins.metrics import evaluate

    torch.set_num_threads(1)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    real = load_images("mnist", image_size=32)
    gen = build_generator(task["family"], 32, 1, task.get("model_kwargs")).to(device)
    latent_dim = latent_dim_of(gen)
    dense = task.get("density") is None
    config = lt.TicketConfig(
        density=1.0 if dense else task["density"], seed=task["seed"], scope=task.get("scope", "layer"),
        weight_init=task.get("weight_init", "signed_constant"), score_init=task.get("score_init", "uniform"),
        scale_fan=task.get("scale_fan"), exclude_modules=task.get("exclude"),
    )
    gen = lt.wrap(gen, config)
    if dense:
        gen = lt.unwrap(gen)
    objective = lt.MomentMatching(mnist_feature_net(device=device), ema_decay=task.get("ema", 0.5))
    metric_net = mnist_feature_net(device=device, seed=1)
    fd = lambda: evaluate(gen, real, metric_net, n=2000, latent_dim=latent_dim, seed=task["seed"])["fd"]  # noqa: E731
    evals: dict[int, float] = {}
    eval_at = set(task.get("eval_at", []))
    search = lt.TicketSearch(
        gen, objective, latent_dim, batch_size=task.get("batch", 64), lr=task.get("lr"), dense=dense,
        seed=task["seed"], device=str(device), progress=False,
        callbacks=[lambda info: evals.update({info.step: fd()}) if info.step in eval_at else None],
    )
    began = time.perf_counter()
    search.run(real, steps=task["steps"])
    return {**task, "fd": fd(), "evals": evals, "seconds": time.perf_counter() - began}


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
