"""Format 3's mask coding: Golomb-Rice gaps near the entropy, packed bits where that does not pay,
fast on a real generator's masks, and a decoder that refuses every stream it did not write."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch

import lt_plugins as lt
from lt_plugins.models import DCGANGenerator
from lt_plugins.ticket import Ticket, TicketError, decode_mask, encode_mask


def random_mask(n: int, kept: int, seed: int = 0) -> torch.Tensor:
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:kept]] = True
    return mask


def entropy(p: float) -> float:
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


@pytest.mark.parametrize("n,kept", [(1, 1), (1, 0), (9, 4), (100, 0), (100, 100), (1000, 1), (1000, 999),
                                    (4096, 410), (4097, 2048), (50_000, 45_000)])
def test_every_mask_round_trips(n, kept):
    mask = random_mask(n, kept, seed=n + kept).reshape(-1, 1) if n % 2 else random_mask(n, kept, seed=n)
    data, coding = encode_mask(mask)
    assert data.dtype == torch.uint8 and data.numel() <= (n + 7) // 8
    assert torch.equal(decode_mask(data, tuple(mask.shape), int(mask.sum()), coding), mask)


@pytest.mark.parametrize("density,limit", [(0.1, 0.5), (0.01, 1.1 * entropy(0.01)), (0.9, 0.5)])
def test_sparse_and_dense_masks_code_near_the_entropy(density, limit):
    n = 1 << 20
    data, coding = encode_mask(random_mask(n, round(density * n)))
    assert coding["name"] == "rice" and coding["symbol"] == int(density < 0.5)
    bits = 8 * data.numel() / n
    assert entropy(density) <= bits <= limit


def test_half_density_stores_packed_bits():
    data, coding = encode_mask(random_mask(1 << 16, 1 << 15))
    assert coding == {"name": "packbits"} and data.numel() == (1 << 16) // 8


def test_the_dcgan64_masks_code_and_decode_well_under_a_second():
    gen = lt.wrap(DCGANGenerator(nz=100, ngf=64, nc=3, image_size=64), lt.TicketConfig(density=0.1, seed=0))
    with torch.no_grad():
        for scores in lt.score_parameters(gen):
            scores.normal_(generator=torch.Generator().manual_seed(1))
    masks = lt.masks(gen)
    n = sum(m.numel() for m in masks.values())
    began = time.perf_counter()
    coded = {name: encode_mask(m) for name, m in masks.items()}
    decoded = {name: decode_mask(data, tuple(masks[name].shape), int(masks[name].sum()), coding)
               for name, (data, coding) in coded.items()}
    seconds = time.perf_counter() - began
    assert all(torch.equal(decoded[name], masks[name]) for name in masks)
    assert 8 * sum(d.numel() for d, _ in coded.values()) / n <= 0.5 and n > 3_500_000
    assert seconds < 0.6, f"{seconds:.2f} s to code and decode {n:,} weights"


RICE = {"name": "rice", "symbol": 1, "k": 3}


def coded(n=1000, kept=100):
    mask = random_mask(n, kept)
    data, coding = encode_mask(mask)
    assert coding["name"] == "rice"
    return mask, data, coding


def test_a_stream_cut_short_or_padded_is_refused():
    mask, data, coding = coded()
    with pytest.raises(TicketError, match="ends before its 100 gaps|but its 100 gaps take"):
        decode_mask(data[: data.numel() // 2], (1000,), 100, coding)
    with pytest.raises(TicketError, match="but its 100 gaps take"):
        decode_mask(torch.cat([data, torch.zeros(1, dtype=torch.uint8)]), (1000,), 100, coding)
    with pytest.raises(TicketError, match="holds bytes although it codes no position"):
        decode_mask(data, (1000,), 0, coding)


def test_set_padding_bits_and_positions_past_the_end_are_refused():
    mask, data, coding = coded()
    bits = 8 * data.numel()
    used = next(b for b in range(bits, 0, -1) if (int(data[(b - 1) // 8]) >> ((b - 1) % 8)) & 1)
    if used < bits:
        padded = data.clone()
        padded[-1] |= 0x80
        with pytest.raises(TicketError, match="padding must be zero"):
            decode_mask(padded, (1000,), 100, coding)
    with pytest.raises(TicketError, match="past its 900 weights|longer than its 900"):
        decode_mask(data, (900,), 100, coding)


def test_a_hostile_shape_is_refused_before_anything_is_allocated(tmp_path):
    folder = Ticket.from_model(lt.wrap(torch.nn.Linear(64, 64), lt.TicketConfig(density=0.1))).save_pretrained(
        tmp_path / "t")
    path = folder / "ticket_config.json"
    config = json.loads(path.read_text())
    config["targets"][0]["shape"] = [2**20, 2**20]  # 10 bytes that claim a trillion weights
    path.write_text(json.dumps(config))
    began = time.perf_counter()
    with pytest.raises(TicketError, match="more than the .* a ticket may hold"):
        Ticket.from_pretrained(folder)
    assert time.perf_counter() - began < 1


def test_a_bad_coding_record_is_refused(tmp_path):
    folder = Ticket.from_model(lt.wrap(torch.nn.Linear(64, 64), lt.TicketConfig(density=0.1))).save_pretrained(
        tmp_path / "t")
    path = folder / "ticket_config.json"
    config = json.loads(path.read_text())
    for bad in ({"name": "zip"}, {**RICE, "k": 99}, {**RICE, "symbol": 2}, None):
        config["targets"][0]["coding"] = bad
        path.write_text(json.dumps(config))
        with pytest.raises(TicketError, match=r"targets\[0\]\.'coding'"):
            Ticket.from_pretrained(folder)


def test_a_search_made_dcgan64_ticket_is_25x_smaller_than_fp32_samples_included(tmp_path):
    from safetensors.torch import save as save_safetensors

    from lt_plugins.objectives import MomentMatching

    class PixelFeatures(torch.nn.Module):  # a fixed random conv: features to match moments of
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 4, 3, stride=2)

        def forward(self, x):
            a = torch.relu(self.conv(x))
            return [a, a.mean((2, 3))]

    gen = lt.wrap(DCGANGenerator(nz=100, ngf=64, nc=3, image_size=64), lt.TicketConfig(density=0.1, seed=0))
    real = torch.rand(16, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    search = lt.TicketSearch(gen, MomentMatching(PixelFeatures(), cache=False), latent_shape=(100, 1, 1),
                             batch_size=8, progress=False, device="cpu")
    ticket = search.run(real, steps=2)
    assert ticket.samples is not None
    folder = ticket.save_pretrained(tmp_path / "t")
    sizes = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert 0 < sizes["samples.webp"] <= 40_000
    fp32 = len(save_safetensors({k: v.float().contiguous() for k, v in lt.merge(ticket.apply()).state_dict().items()}))
    assert fp32 / sum(sizes.values()) >= 25, sizes
