"""How small a ticket is: mask bits per masked weight and whole-ticket bytes vs the fp32 state_dict.

Part 1, per built-in family (density 0.1, scores perturbed as after a search): bits that
``masks.safetensors`` spends per masked weight (target <= 1.1; an fp32 weight is 32) and
the bytes of the whole saved ticket (JSON, masks, dense remainder, model card) next to the
dense model's fp32 state_dict saved as safetensors (target <= 1/25 on the 3.5M-weight DCGAN).

Part 2: how close entropy coders get to the information in a 10%-density mask. A layer-scope
mask keeps exactly k of n weights, so it holds log2 C(n, k) bits, about n * H(0.1) =
0.469 bits per weight. Tried on the DCGAN's masks: zlib / bz2 / lzma on the packed bits,
Elias-gamma and Golomb-Rice codes of the gaps between kept weights, and a binary range coder
with the static probability k/n (which the decoder knows from the ticket config). Each coder
is checked to decode back to the masks.

    python benchmarks/ticket_size.py [--density 0.1] [--skip-coders]
"""

from __future__ import annotations

import argparse
import bz2
import lzma
import math
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save as save_safetensors
from torch import nn

import lt_plugins as lt
from lt_plugins.models import DCGANGenerator, StyleGANGenerator
from lt_plugins.ticket import Ticket


def _unet() -> nn.Module:
    from diffusers import UNet2DModel

    # A DDPM-style 32x32 UNet, a little smaller than the CIFAR-10 one.
    return UNet2DModel(
        sample_size=32, in_channels=3, out_channels=3, layers_per_block=2, block_out_channels=(64, 128, 128, 128),
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    )


MODELS = {
    "DCGAN 64x64 nz100 ngf64": lambda: DCGANGenerator(nz=100, ngf=64, nc=3, image_size=64),
    "StyleGAN 32x32 (defaults)": lambda: StyleGANGenerator(),
    "StyleGAN 64x64 RGB ch256": lambda: StyleGANGenerator(
        z_dim=128, w_dim=128, img_resolution=64, img_channels=3, channel_base=8192, channel_max=256
    ),
    "UNet2DModel 32x32 DDPM-like": _unet,
}


def searched(model: nn.Module, density: float) -> nn.Module:
    model = lt.wrap(model, lt.TicketConfig(density=density, seed=0))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for scores in lt.score_parameters(model):
            scores.copy_(torch.randn(scores.shape, generator=gen))
    return model


def ticket_sizes(name: str, build, density: float) -> tuple[dict, dict[str, torch.Tensor]]:
    model = searched(build(), density)
    ticket = Ticket.from_model(model)
    with tempfile.TemporaryDirectory() as tmp:
        folder = ticket.save_pretrained(Path(tmp) / "t")
        files = {p.name: p.stat().st_size for p in folder.iterdir()}
    dense = lt.merge(model).state_dict()
    fp32 = {k: v.float().contiguous() if v.is_floating_point() else v for k, v in dense.items()}
    dense_bytes = len(save_safetensors(fp32))
    masked = sum(m.numel() for m in ticket.masks.values())
    total = sum(files.values())
    row = {
        "model": name,
        "masked": masked,
        "params": sum(v.numel() for v in dense.values() if v.is_floating_point()),
        "mask_bits": 8 * files["masks.safetensors"] / masked,
        "remainder": files["remainder.safetensors"],
        "ticket": total,
        "dense": dense_bytes,
        "ratio": dense_bytes / total,
        "files": files,
    }
    return row, ticket.masks


# -- coders -----------------------------------------------------------------------------------


def gaps(mask: np.ndarray) -> np.ndarray:
    """Zeros before each kept weight (the run lengths a gap coder codes)."""
    ones = np.flatnonzero(mask)
    return np.diff(np.concatenate([[-1], ones])) - 1


def elias_gamma_bits(values: np.ndarray) -> int:
    """Length of the Elias-gamma code of values+1 (exact: 2*floor(log2(v+1)) + 1 bits each)."""
    return int((2 * np.floor(np.log2(values + 1)) + 1).sum())


def rice_encode(values: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Golomb-Rice code with parameter 2**k: unary quotient (ones, then a zero), k remainder bits."""
    q = values >> k
    lengths = q + 1 + k
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    bits = np.zeros(int(lengths.sum()), dtype=np.uint8)
    unary = np.repeat(starts, q) + (np.arange(q.sum()) - np.repeat(np.cumsum(q) - q, q))
    bits[unary] = 1
    for j in range(k):  # remainder, most significant bit first
        bits[starts + q + 1 + j] = (values >> (k - 1 - j)) & 1
    return bits, len(values)


def rice_decode(bits: np.ndarray, count: int, k: int) -> np.ndarray:
    out, pos, data = np.empty(count, dtype=np.int64), 0, bits.tolist()
    for i in range(count):
        q = 0
        while data[pos]:
            q += 1
            pos += 1
        pos += 1
        r = 0
        for _ in range(k):
            r = (r << 1) | data[pos]
            pos += 1
        out[i] = (q << k) | r
    return out


def best_rice_k(values: np.ndarray) -> int:
    return min(range(12), key=lambda k: int(((values >> k) + 1 + k).sum()))


class RangeCoder:
    """A 32-bit binary range coder (carry-less, Subbotin style) with a fixed 16-bit probability."""

    TOP, BOTTOM = 1 << 24, 1 << 16

    @staticmethod
    def encode(bits: list[int], p_one: int) -> bytes:
        low, rng, out = 0, 0xFFFFFFFF, bytearray()
        top, bottom, mask = RangeCoder.TOP, RangeCoder.BOTTOM, 0xFFFFFFFF
        for bit in bits:
            split = (rng >> 16) * p_one
            if bit:
                rng = split
            else:
                low += split
                rng -= split
            while True:
                if (low ^ (low + rng)) & mask >= top:
                    if rng >= bottom:
                        break
                    rng = -low & (bottom - 1)
                out.append((low >> 24) & 0xFF)
                low = (low << 8) & mask
                rng = (rng << 8) & mask
        for _ in range(4):
            out.append((low >> 24) & 0xFF)
            low = (low << 8) & mask
        return bytes(out)

    @staticmethod
    def decode(data: bytes, n: int, p_one: int) -> list[int]:
        low, rng, code, pos = 0, 0xFFFFFFFF, 0, 0
        top, bottom, mask = RangeCoder.TOP, RangeCoder.BOTTOM, 0xFFFFFFFF
        for _ in range(4):
            code = ((code << 8) | data[pos]) & mask
            pos += 1
        out = []
        for _ in range(n):
            split = (rng >> 16) * p_one
            if (code - low) & mask < split:
                out.append(1)
                rng = split
            else:
                out.append(0)
                low = (low + split) & mask
                rng -= split
            while True:
                if (low ^ (low + rng)) & mask >= top:
                    if rng >= bottom:
                        break
                    rng = -low & (bottom - 1)
                code = ((code << 8) | (data[pos] if pos < len(data) else 0)) & mask
                pos += 1
                low = (low << 8) & mask
                rng = (rng << 8) & mask
        return out


def coder_table(masks: dict[str, torch.Tensor]) -> list[tuple[str, float, float]]:
    flat = {n: m.flatten().numpy().astype(bool) for n, m in masks.items()}
    n_total = sum(m.size for m in flat.values())
    packed = b"".join(np.packbits(m, bitorder="little").tobytes() for m in flat.values())
    rows = []

    def add(name, n_bits, seconds):
        rows.append((name, n_bits / n_total, seconds))

    for name, compress in (
        ("zlib -9 on packed bits", lambda b: zlib.compress(b, 9)),
        ("bz2 -9 on packed bits", lambda b: bz2.compress(b, 9)),
        ("lzma -9e on packed bits", lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME)),
    ):
        t0 = time.perf_counter()
        add(name, 8 * len(compress(packed)), time.perf_counter() - t0)

    t0 = time.perf_counter()
    add("Elias-gamma gaps", sum(elias_gamma_bits(gaps(m)) for m in flat.values()), time.perf_counter() - t0)

    t0, n_bits = time.perf_counter(), 0
    for m in flat.values():
        g = gaps(m)
        k = best_rice_k(g)
        bits, count = rice_encode(g, k)
        assert np.array_equal(rice_decode(bits, count, k), g), "Golomb-Rice round trip failed"
        n_bits += bits.size + 4  # + the 4-bit parameter k per tensor
    add("Golomb-Rice gaps (best k per tensor)", n_bits, time.perf_counter() - t0)

    t0, n_bits = time.perf_counter(), 0
    for m in flat.values():
        p_one = min(max(1, round(m.mean() * 65536)), 65535)  # k/n: known to the decoder from the config
        data = RangeCoder.encode(m.astype(np.uint8).tolist(), p_one)
        assert RangeCoder.decode(data, m.size, p_one) == m.astype(np.uint8).tolist(), "range coder round trip failed"
        n_bits += 8 * len(data)
    add("range coder, static p = k/n", n_bits, time.perf_counter() - t0)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--skip-coders", action="store_true", help="Only part 1.")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

    print(f"Part 1: ticket size at density {args.density}\n")
    header = (
        f"{'model':30} {'masked w':>10} {'mask bits/w':>11} {'remainder B':>11} {'ticket B':>10} "
        f"{'fp32 dict B':>12} {'dense/ticket':>12}"
    )
    print(header + "\n" + "-" * len(header))
    dcgan_masks = None
    for name, build in MODELS.items():
        row, masks = ticket_sizes(name, build, args.density)
        dcgan_masks = dcgan_masks or masks
        print(
            f"{row['model']:30} {row['masked']:>10,} {row['mask_bits']:>11.4f} {row['remainder']:>11,} "
            f"{row['ticket']:>10,} {row['dense']:>12,} {row['ratio']:>11.1f}x"
        )
    print("\ntargets: mask bits/weight <= 1.1; DCGAN dense/ticket >= 25x")

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
    print(f"\nPart 2: entropy coders on the DCGAN masks ({n:,} weights, density {p})\n")
    print(f"{'coder':40} {'bits/weight':>11} {'vs bound':>9} {'seconds':>8}")
    print("-" * 71)
    print(f"{'bound: binary entropy H(p)':40} {h:>11.4f} {'':>9} {'':>8}")
    print(f"{'bound: log2 C(n, k) per tensor, exact':40} {exact / n:>11.4f} {'':>9} {'':>8}")
    print(f"{'packed bits (the ticket format)':40} {1.0:>11.4f} {1.0 / h:>8.3f}x {'':>8}")
    for name, bits, seconds in coder_table(dcgan_masks):
        print(f"{name:40} {bits:>11.4f} {bits / h:>8.3f}x {seconds:>8.2f}")


if __name__ == "__main__":
    main()
