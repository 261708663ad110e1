"""Bring your own generator: public-code patterns searched with the package defaults, side by side.

For each fixture of tests/byog_cases.py -- StyleGAN2-ADA's equalized-lr ``G(z, c)``, a 5-D modulated
``G([z])``, the pytorch/examples DCGAN on (N, nz, 1, 1) with its ``weights_init``, a community
``unet(x, t)`` with its own cosine betas -- the network is wrapped with ``lt.TicketConfig(seed=0)``
(density 0.1, the recognised family's targets, scale_fan and lr; only latent_shape / generate given),
then searched: moment matching on mnist_feature_net() for the GANs, the DDPM denoising loss for the
UNet. Measured, not assumed:

- FD of the unsearched ticket and after the search: N generated vs N real MNIST digits in
  mnist_feature_net(seed=1) features (`lt.evaluate`); UNet samples: 8-step DDIM;
- spread across z (per-pixel std of 32 images across latents, mean over pixels) of the dense network
  and of the ticket at init (train mode: an unsearched BatchNorm net's running statistics are its
  constructor's), and of the ticket after the search (eval mode, as it is sampled);
- ms per search step (the loop alone);
- whether the saved ticket, applied to a fresh instance built under another torch RNG state, gives
  bit-identical outputs, and whether ``lt.merge`` of it does too.

Prints one table; writes it to benchmarks/results/byog.txt, the raw numbers to byog.json, and the
sample grids (unsearched, searched) of every fixture to byog_samples.png.

    python benchmarks/byog.py [--steps 150] [--eval-samples 300] [--cases stylegan2-ada ddpm-unet]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from byog_cases import CASES, Case, spread  # noqa: E402
from sheet import sample_sheet  # noqa: E402

import lt_plugins as lt  # noqa: E402
from lt_plugins.data import load_mnist  # noqa: E402
from lt_plugins.search import save_image_grid  # noqa: E402

GRID = 64  # images per sample grid


def rebuilds_bit_identical(case: Case, model: torch.nn.Module, ticket: lt.Ticket, folder: Path) -> dict[str, bool]:
    """Save ``ticket``, load it, apply it to a fresh instance built under another RNG state; compare outputs."""
    expected = case.probe(model)
    ticket.save_pretrained(folder)
    torch.manual_seed(12345)  # the fresh instance's constructor draws other weights, biases and constants
    rebuilt = lt.Ticket.from_pretrained(folder).apply(case.build())
    same = torch.equal(case.probe(rebuilt), expected)
    return {"rebuild": same, "merge": torch.equal(case.probe(lt.merge(rebuilt)), expected)}


def run_case(case: Case, steps: int, n: int, real: torch.Tensor, work: Path) -> dict:
    torch.manual_seed(0)
    dense_spread = spread(case.images(case.build().train()))
    model = case.wrapped()
    result = {"case": case.name, "steps": steps, "batch_size": case.batch_size,
              "spread": {"dense_init": dense_spread, "ticket_init": spread(case.images(model.train()))},
              "fd": {"unsearched": case.fd(model, real, n)}}
    save_image_grid(case.images(model.eval(), GRID), work / f"{case.name}_unsearched.png")
    search = case.search(model.train(), n_samples=GRID)
    ticket = search.run(real, steps=steps)
    result["ms_per_step"] = 1000 * search.result.seconds_per_step
    result["loss"] = {"first": search.result.losses[0], "last20": sum(search.result.losses[-20:]) / 20}
    result["fd"]["searched"] = case.fd(model, real, n)
    result["spread"]["searched"] = spread(case.images(model.eval()))
    save_image_grid(case.images(model, GRID), work / f"{case.name}_searched.png")
    result["bit_identical"] = rebuilds_bit_identical(case, model, ticket, work / f"{case.name}_ticket")
    result["density"] = lt.density(model).overall
    print(f"  {case.name:<15} FD {result['fd']['unsearched']:9.1f} -> {result['fd']['searched']:8.1f}  "
          f"({result['ms_per_step']:.0f} ms/step)", flush=True)
    return result


def table(results: list[dict], steps: int, n: int) -> str:
    yes = lambda b: "yes" if b else "NO"  # noqa: E731
    head = (f"{'fixture':<16}{'FD unsearched':>14}{'FD searched':>12}{'ratio':>7}{'spread dense':>13}"
            f"{'ticket':>7}{'searched':>9}{'ms/step':>8}{'rebuild':>8}{'merge':>6}")
    lines = [f"MNIST 32x32, {steps} steps, batch 64 (UNet 32), seed 0, package defaults (TicketConfig(seed=0): density 0.1,",
             f"the recognised family's targets, scale_fan and lr). FD: {n} generated vs {n} real digits in",
             "mnist_feature_net(seed=1) features (UNet: 8-step DDIM samples). Spread: per-pixel std across 32 latents.", head]
    for r in results:
        f, s, b = r["fd"], r["spread"], r["bit_identical"]
        lines.append(f"{r['case']:<16}{f['unsearched']:>14.1f}{f['searched']:>12.1f}{f['searched'] / f['unsearched']:>7.2f}"
                     f"{s['dense_init']:>13.3f}{s['ticket_init']:>7.3f}{s['searched']:>9.3f}{r['ms_per_step']:>8.0f}"
                     f"{yes(b['rebuild']):>8}{yes(b['merge']):>6}")
    lines.append("spread dense / ticket: at init, train mode; searched: eval mode. rebuild: the saved ticket applied to a "
                 "fresh instance built")
    lines.append("under torch.manual_seed(12345) gives bit-identical outputs; merge: lt.merge of it does too. "
                 "One CPU thread.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150, help="search steps per fixture (default: %(default)s)")
    parser.add_argument("--eval-samples", type=int, default=300, help="generated (and real) images per FD (default: %(default)s)")
    parser.add_argument("--cases", nargs="+", choices=[c.name for c in CASES], default=[c.name for c in CASES])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    parser.add_argument("--out", default="benchmarks/results", help="where byog.txt, .json and _samples.png go")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    real = load_mnist(image_size=32)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results = [run_case(case, args.steps, args.eval_samples, real, work) for case in CASES if case.name in args.cases]
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        sample_sheet([(r["case"], [(name, work / f"{r['case']}_{name}.png") for name in ("unsearched", "searched")])
                      for r in results], out / "byog_samples.png")
    text = table(results, args.steps, args.eval_samples) + f"\nTotal wall time {time.perf_counter() - began:.0f} s."
    print(text)
    (out / "byog.txt").write_text(text + "\n")
    (out / "byog.json").write_text(json.dumps({"steps": args.steps, "eval_samples": args.eval_samples,
                                               "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                                               "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
