"""FD during the searches of a sweep: a table and a plot, one curve per variant, mean ± std over seeds.

Reads the JSON lines `sweep.py` writes. A variant is every setting of a run but its seed;
its points are the FDs at the run's ``eval_at`` steps and at its last step. Runs whose grid
entries differ only in seed are averaged; a step some seeds lack is left out.

    python benchmarks/sweep_curves.py benchmarks/results/sweep_cpu_long.jsonl curves.png
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

# Fields that are results, or the seed, not settings.
_NOT_SETTINGS = {"seed", "fd", "evals", "seconds", "error", "eval_at"}


def variant_label(run: dict[str, Any]) -> str:
    """A short name for a run's settings, e.g. 'dcgan 10% global lr 0.1 ema 0.9 6000 steps'."""
    density = run.get("density")
    parts = [run["family"], "dense" if density is None else f"{density:.0%}"]
    parts += [run["scope"]] if run.get("scope", "layer") != "layer" else []
    parts += [f"{key} {run[key]}" for key in sorted(run) if key not in _NOT_SETTINGS | {"family", "density", "scope"}]
    return " ".join(str(p) for p in parts)


def curves(runs: list[dict[str, Any]]) -> dict[str, dict[int, list[float]]]:
    """Variant label -> step -> FDs of the seeds that reached it."""
    found: dict[str, dict[int, list[float]]] = {}
    for run in runs:
        if "error" in run and run["error"]:
            continue
        points = {int(step): fd for step, fd in run.get("evals", {}).items()}
        points[int(run["steps"])] = run["fd"]
        for step, fd in points.items():
            found.setdefault(variant_label(run), {}).setdefault(step, []).append(fd)
    return found


def table(found: dict[str, dict[int, list[float]]]) -> str:
    steps = sorted({step for points in found.values() for step in points})
    width = max(len(label) for label in found)
    lines = [f"{'variant':<{width}}" + "".join(f"{f'step {s}':>18}" for s in steps)]
    for label, points in found.items():
        cells = []
        for step in steps:
            fds = points.get(step, [])
            spread = f" ± {statistics.stdev(fds):5.1f}" if len(fds) > 1 else ""
            cells.append(f"{statistics.mean(fds):7.1f}{spread} ({len(fds)})" if fds else "-")
        lines.append(f"{label:<{width}}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines)


def plot(found: dict[str, dict[int, list[float]]], path: Path) -> None:
    from fd_plot import fd_plot  # beside this script; matplotlib only when plotting

    with fd_plot(path, "step", legend_size=7) as ax:
        for label, points in found.items():
            steps = sorted(points)
            means = [statistics.mean(points[s]) for s in steps]
            stds = [statistics.stdev(points[s]) if len(points[s]) > 1 else 0.0 for s in steps]
            ax.errorbar(steps, means, yerr=stds, marker="o", capsize=3, label=label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="JSON lines written by sweep.py")
    parser.add_argument("plot", help="PNG to write")
    args = parser.parse_args()
    runs = [json.loads(line) for line in Path(args.results).read_text().splitlines() if line.strip()]
    found = curves(runs)
    print(table(found))
    plot(found, Path(args.plot))
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
