"""How small a ticket is: mask bits per masked weight and whole-ticket bytes vs the fp32 state_dict.

Part 1, per family (density 0.1, scores perturbed as after a search): the bits that
``masks.safetensors`` spends per masked weight, and those of the coded masks alone without
the file's per-tensor header (format 3 codes masks near the entropy, target <= 0.5 at 10%;
an fp32 weight is 32), and the bytes of the whole saved ticket (JSON,
masks, dense remainder, model card), without samples and with 64 samples (stored as a
thumbnail, at most 40 kB), next to the dense model's fp32 state_dict saved as safetensors
(target >= 25x on the 3.6M-weight 64x64 DCGAN, samples included).

Part 2: the mask coding on the DCGAN's masks against the bounds -- the binary entropy H(p)
and log2 C(n, k) per tensor (a layer-scope mask keeps exactly k of n) -- and against general
purpose compressors on the packed bits, with the time to code and decode.

    python benchmarks/ticket_size.py [--density 0.1] [--skip-coders] > benchmarks/results/ticket_size.txt
"""

from __future__ import annotations

import argparse
import contextlib
import io
import lzma
import math
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_safetensors
from torch import nn

import lt_plugins as lt
from lt_plugins.generate import LatentCall, latent_sample, ticket_generator
from lt_plugins.models import DCGANGenerator, StyleGANGenerator
from lt_plugins.ticket import Ticket, decode_mask, encode_mask


def _unet() -> nn.Module:
    from diffusers import UNet2DModel

    # A DDPM-style 32x32 UNet, a little smaller than the CIFAR-10 one.
    return UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=2, block_out_channels=(64, 128, 128, 128),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )


def _byog() -> dict:
    """The bring-your-own-generator fixtures of tests/byog_models.py, with how each is called."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import byog_models as byog

    return {
        "byog StyleGAN2-ADA pattern": (byog.EqualizedStyleGAN2, LatentCall((32,), lambda G, z: G(z, None))),
        "byog rosinality pattern": (byog.Rosinality5DStyleGAN2, LatentCall((32,), lambda G, z: G([z])[0])),
        "byog pytorch/examples DCGAN": (byog.make_tutorial_dcgan, LatentCall((100, 1, 1))),
    }


MODELS = {
    "DCGAN 64x64 nz100 ngf64": (lambda: DCGANGenerator(nz=100, ngf=64, nc=3, image_size=64), None),
    "StyleGAN 32x32 (defaults)": (StyleGANGenerator, None),
    "StyleGAN 64x64 RGB ch256": (lambda: StyleGANGenerator(
        z_dim=128, w_dim=128, img_resolution=64, img_channels=3, channel_base=8192, channel_max=256
    ), None),
    "UNet2DModel 32x32 DDPM-like": (_unet, None),
    **_byog(),
}


def searched(model: nn.Module, density: float) -> nn.Module:
    model = lt.wrap(model, lt.TicketConfig(density=density, seed=0))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for scores in lt.score_parameters(model):
            scores.copy_(torch.randn(scores.shape, generator=gen))
    return model


def _folder_bytes(ticket: Ticket) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = ticket.save_pretrained(Path(tmp) / "t")
        return {p.name: p.stat().st_size for p in folder.iterdir()}


def ticket_sizes(name: str, build, call: LatentCall | None, density: float) -> tuple[dict, dict[str, torch.Tensor]]:
    model = searched(build(), density).eval()
    bare = Ticket.from_model(model, call=call)
    generator, call = ticket_generator(bare, model)
    with contextlib.redirect_stderr(io.StringIO()):  # a DDIM sampler's progress bar
        samples = latent_sample(generator, call, 64, torch.Generator().manual_seed(0), "cpu")
    files = _folder_bytes(bare)
    with_samples = _folder_bytes(Ticket.from_model(model, samples=samples, call=call))
    dense = lt.merge(model).state_dict()
    fp32 = {k: v.float().contiguous() if v.is_floating_point() else v for k, v in dense.items()}
    dense_bytes = len(save_safetensors(fp32))
    masked = sum(m.numel() for m in bare.masks.values())
    row = {
        "model": name,
        "masked": masked,
        "mask_bits": 8 * files["masks.safetensors"] / masked,
        "coded_bits": 8 * sum(encode_mask(m)[0].numel() for m in bare.masks.values()) / masked,
        "remainder": files["remainder.safetensors"],
        "ticket": sum(files.values()),
        "samples": with_samples.get("samples.webp", 0),
        "ticket_samples": sum(with_samples.values()),
        "dense": dense_bytes,
    }
    return row, bare.masks


def coder_table(masks: dict[str, torch.Tensor]) -> list[tuple[str, float, float]]:
    flat = {n: m.flatten().numpy().astype(bool) for n, m in masks.items()}
    n_total = sum(m.size for m in flat.values())
    packed = b"".join(np.packbits(m, bitorder="little").tobytes() for m in flat.values())
    rows = []
    for name, compress in (
        ("zlib -9 on packed bits", lambda b: zlib.compress(b, 9)),
        ("lzma -9e on packed bits", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    ):
        t0 = time.perf_counter()
        rows.append((name, 8 * len(compress(packed)) / n_total, time.perf_counter() - t0))
    t0 = time.perf_counter()
    coded = {name: encode_mask(m) for name, m in masks.items()}
    for name, (data, coding) in coded.items():
        mask = masks[name]
        assert torch.equal(decode_mask(data, tuple(mask.shape), int(mask.sum()), coding), mask), "round trip failed"
    seconds = time.perf_counter() - t0
    bits = 8 * sum(data.numel() for data, _ in coded.values()) / n_total
    rows.append(("ticket format 3 (Golomb-Rice gaps), code+decode", bits, seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--skip-coders", action="store_true", help="Only part 1.")
    args = parser.parse_args()
    torch.set_num_threads(1)

    print(f"Part 1: ticket size at density {args.density} (bytes; fp32 = the dense state_dict as safetensors)\n")
    header = (
        f"{'model':28} {'masked w':>10} {'mask bits/w':>11} {'coded bits/w':>12} {'remainder':>10} {'ticket':>10} "
        f"{'fp32':>11} "
        f"{'fp32/ticket':>11} {'samples':>8} {'+samples':>10} {'fp32/+samples':>13}"
    )
    print(header + "\n" + "-" * len(header))
    dcgan_masks = None
    for name, (build, call) in MODELS.items():
        row, masks = ticket_sizes(name, build, call, args.density)
        dcgan_masks = dcgan_masks or masks
        print(
            f"{row['model']:28} {row['masked']:>10,} {row['mask_bits']:>11.4f} {row['coded_bits']:>12.4f} "
            f"{row['remainder']:>10,} "
            f"{row['ticket']:>10,} {row['dense']:>11,} {row['dense'] / row['ticket']:>10.1f}x {row['samples']:>8,} "
            f"{row['ticket_samples']:>10,} {row['dense'] / row['ticket_samples']:>12.1f}x"
        )
    print("\ntargets: mask bits/weight <= 0.5; DCGAN 64x64 fp32/ticket >= 25x with samples")

    if args.skip_coders:
        return
    p = args.density
    n = sum(m.numel() for m in dcgan_masks.values())
    h = -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    exact = sum(
        (math.lgamma(m.numel() + 1) - math.lgamma(int(m.sum()) + 1) - math.lgamma(m.numel() - int(m.sum()) + 1))
        / math.log(2)
        for m in dcgan_masks.values()
    )
    print(f"\nPart 2: mask coders on the DCGAN 64x64 masks ({n:,} weights, density {p}, one thread)\n")
    print(f"{'coder':50} {'bits/weight':>11} {'vs H(p)':>8} {'seconds':>8}")
    print("-" * 80)
    print(f"{'bound: binary entropy H(p)':50} {h:>11.4f} {'':>8} {'':>8}")
    print(f"{'bound: log2 C(n, k) per tensor, exact':50} {exact / n:>11.4f} {'':>8} {'':>8}")
    print(f"{'packed bits (formats 1 and 2)':50} {1.0:>11.4f} {1.0 / h:>7.3f}x {'':>8}")
    for name, bits, seconds in coder_table(dcgan_masks):
        print(f"{name:50} {bits:>11.4f} {bits / h:>7.3f}x {seconds:>8.3f}")


if __name__ == "__main__":
    main()
