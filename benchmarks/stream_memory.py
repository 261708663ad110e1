"""Peak memory of a search over an image folder: flat in the folder's size when it streams.

Writes 32x32 RGB PNGs (smooth random colour fields, about 1 KB each) to a temporary folder:
a small set and a large one, 5k and 50k by default (the large one re-uses the small one's
files by hard link). Then, each in a fresh process so that its peak RSS is its own:

- streamed: ``lt.load_images(folder, stream=True)`` -> a 10% DCGAN ticket search with
  moment matching on EfficientNet-Lite0 features (real moments computed in one streaming
  pass, cache off, so every run reads the whole folder), then `lt.evaluate` (FD/PRDC
  against every real image);
- loaded: the search alone with ``stream=False`` (the whole folder as one tensor), for
  contrast (no evaluation: one pass fewer over 50k images on a 2-core machine).

It prints peak RSS (ru_maxrss) after the search and after the evaluation, and the seconds.
EfficientNet-Lite0 runs at the images' own 32x32 here (``input_size=None``) to keep the
pass over 50k images short on a CPU; the memory question does not depend on it.

    python benchmarks/stream_memory.py [--sizes 5000 50000] [--steps 20] [--out benchmarks/results/stream_memory.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_folder(folder: Path, n: int, start: int = 0, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed + start)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, n):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((32, 32), Image.BILINEAR)  # smooth: small PNGs
        image.save(folder / f"{i // 1000:03d}_{i:06d}.png")


def child(folder: str, stream: bool, steps: int, eval_samples: int) -> dict[str, object]:
    import torch

    import lt_plugins as lt
    from lt_plugins.features import efficientnet_lite0
    from lt_plugins.models import DCGANGenerator

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    began = time.perf_counter()
    real = lt.load_images(folder, stream=stream)
    features = efficientnet_lite0(input_size=None)
    gen = lt.wrap(DCGANGenerator(nz=64, ngf=32, nc=3, image_size=32), lt.TicketConfig(density=0.1, seed=0))
    search = lt.TicketSearch(gen, lt.MomentMatching(features, cache=False), latent_dim=64, batch_size=64,
                             progress=False)
    search.run(real, steps=steps)
    searched = time.perf_counter()
    rss_search = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row: dict[str, object] = {
        "images": real.shape[0],
        "mode": "streamed" if stream else "loaded",
        "peak_rss_search_mb": round(rss_search, 1),
        "search_s": round(searched - began, 1),
    }
    if stream:
        metrics = lt.evaluate(gen, real, features, n=eval_samples, latent_dim=64)
        row["peak_rss_eval_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        row["eval_s"] = round(time.perf_counter() - searched, 1)
        row["fd"] = round(metrics["fd"], 4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[5000, 50000])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--eval-samples", type=int, default=1000)
    parser.add_argument("--no-loaded", action="store_true", help="skip the in-memory contrast run")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "STREAM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1] == "1", args.steps, args.eval_samples)))
        return
    small, large = sorted(args.sizes)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        began = time.perf_counter()
        write_folder(Path(tmp) / "small", small)
        (Path(tmp) / "large").mkdir()
        for path in (Path(tmp) / "small").iterdir():
            os.link(path, Path(tmp) / "large" / path.name)
        write_folder(Path(tmp) / "large", large, start=small)
        disk = sum(p.stat().st_size for p in (Path(tmp) / "large").iterdir()) / 2**20
        print(f"wrote {large} PNGs ({disk:.0f} MiB) in {time.perf_counter() - began:.0f} s", flush=True)
        runs = [("small", True), ("large", True)] + ([] if args.no_loaded else [("small", False), ("large", False)])
        for name, stream in runs:
            command = [sys.executable, __file__, "--child", str(Path(tmp) / name), "1" if stream else "0",
                       "--steps", str(args.steps), "--eval-samples", str(args.eval_samples)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                sys.exit(f"child {name} stream={stream} failed:\n{result.stderr[-3000:]}")
            row = json.loads(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n{'images':>7} {'mode':>9} {'peak RSS search':>16} {'peak RSS +eval':>15} {'search s':>9} {'eval s':>7}")
    for r in rows:
        evaluated = f"{r['peak_rss_eval_mb']:>12.0f} MB" if "eval_s" in r else f"{'-':>15}"
        print(f"{r['images']:>7} {r['mode']:>9} {r['peak_rss_search_mb']:>13.0f} MB {evaluated} "
              f"{r['search_s']:>9.0f} {r.get('eval_s', '-'):>7}")
    streamed = {r["images"]: r for r in rows if r["mode"] == "streamed"}
    growth = streamed[large]["peak_rss_eval_mb"] - streamed[small]["peak_rss_eval_mb"]
    print(f"\nstreamed: {large // small}x the images -> peak RSS (search + evaluation) {growth:+.0f} MB")
    if args.out:
        args.out.write_text(json.dumps({"steps": args.steps, "eval_samples": args.eval_samples, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
