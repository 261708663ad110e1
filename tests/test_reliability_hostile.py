"""Hostile ticket files: reads are bounded by the manifest, apply() checks the spec before building, and a bad
sample image never blocks loading. Every file here is written for real, as an attacker would."""

from __future__ import annotations

import json
import resource
import struct
import time
import zlib

import pytest
import torch
from test_ticket import BY_NAME, searched
from test_ticket_tampering import edit_config, rewrite

from lt_plugins.ticket import Ticket, TicketError


@pytest.fixture
def folder(tmp_path):
    model = searched(BY_NAME["dcgan"])
    return Ticket.from_model(model, samples=torch.rand(4, 1, 8, 8) * 2 - 1).save_pretrained(tmp_path / "ticket")


@pytest.fixture(scope="module")
def unet_folder(tmp_path_factory):
    model = searched(BY_NAME["unet"])
    return Ticket.from_model(model).save_pretrained(tmp_path_factory.mktemp("unet") / "ticket")


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_huge_sparse_mask_file_is_refused_by_its_size_before_it_is_read(folder):
    with open(folder / "masks.safetensors", "r+b") as f:
        f.truncate(3 * 2**30 // 2)  # 1.5 GB, sparse: costs no disk, would cost memory if read
    began, peak = time.perf_counter(), _peak_rss_mib()
    with pytest.raises(TicketError, match=r"masks.safetensors is 1610612736 bytes, but ticket_config.json says"):
        Ticket.from_pretrained(folder)
    assert time.perf_counter() - began < 2 and _peak_rss_mib() - peak < 200


def test_a_manifest_claiming_more_than_the_targets_need_is_refused_before_reading(folder):
    with open(folder / "masks.safetensors", "r+b") as f:
        f.truncate(3 * 2**30 // 2)
    edit_config(folder, lambda c: c["files"]["masks.safetensors"].__setitem__("bytes", 3 * 2**30 // 2))
    peak = _peak_rss_mib()
    with pytest.raises(TicketError, match="more than this ticket's masks.safetensors can hold"):
        Ticket.from_pretrained(folder)
    assert _peak_rss_mib() - peak < 200


def _spec_edit(folder, **config):
    edit_config(folder, lambda c: c["model"]["config"].update(config))


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"nz": -1}, "model spec config.nz is -1: sizes and counts cannot be negative"),
        ({"ngf": 9}, "does not belong to this ticket"),
        ({"nz": float("inf")}, None),  # json.dumps writes Infinity; Python's json reads it back
        ({"nc": "x" * 5000}, "a string of 5000 characters"),
        ({"ngf": [[[0] * 20] * 20] * 20}, "more than 4096 values"),
    ],
    ids=["negative", "other-size", "infinite", "long-string", "too-many-values"],
)
def test_apply_checks_the_spec_before_building_anything(folder, config, says):
    _spec_edit(folder, **config)
    ticket = Ticket.from_pretrained(folder)
    with pytest.raises(TicketError, match=says or "finite numbers"):
        ticket.apply()


def test_a_spec_inflated_to_gigabytes_is_refused_without_allocating_them(unet_folder, tmp_path):
    import shutil

    folder = tmp_path / "inflated"
    shutil.copytree(unet_folder, folder)
    _spec_edit(folder, block_out_channels=[2048] * 2)  # about 1 GB of float32 weights if built
    ticket = Ticket.from_pretrained(folder)
    began, peak = time.perf_counter(), _peak_rss_mib()
    with pytest.raises(TicketError, match="does not belong to this ticket"):
        ticket.apply()
    assert time.perf_counter() - began < 20 and _peak_rss_mib() - peak < 300


def test_the_cli_reports_a_bad_spec_in_one_line(folder, capsys):
    from lt_plugins.cli import main

    _spec_edit(folder, nz=-1)
    assert main(["sample", str(folder), "--n", "2", "--device", "cpu", "--out", str(folder.parent / "g.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lt-plugins: error: model spec config.nz is -1") and err.count("\n") == 1
    assert "Traceback" not in err


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_samples_are_hashed_and_a_swapped_image_is_dropped_with_a_warning(folder):
    entry = json.loads((folder / "ticket_config.json").read_text())["files"]["samples.png"]
    assert entry["bytes"] == (folder / "samples.png").stat().st_size
    assert Ticket.from_pretrained(folder).samples is not None
    rewrite(folder, "samples.png", _png_header(16, 16), fix_record=False)
    with pytest.warns(UserWarning, match="samples.png could not be used .*changed after saving.*loading the ticket without it"):
        ticket = Ticket.from_pretrained(folder)
    assert ticket.samples is None and ticket.masks


@pytest.mark.parametrize("recorded", [True, False], ids=["forged-manifest", "unrecorded"])
def test_a_decompression_bomb_header_never_blocks_loading(folder, recorded):
    rewrite(folder, "samples.png", _png_header(30000, 30000), fix_record=recorded)
    if not recorded:  # a ticket saved before samples were hashed
        edit_config(folder, lambda c: c["files"].pop("samples.png"))
    began, peak = time.perf_counter(), _peak_rss_mib()
    with pytest.warns(UserWarning, match="30000x30000 pixels|900000000 pixels"):
        ticket = Ticket.from_pretrained(folder)
    assert ticket.samples is None and time.perf_counter() - began < 2 and _peak_rss_mib() - peak < 200
    ticket.apply()  # and the ticket itself is fine


def test_samples_are_optional_and_an_oversized_file_is_not_read(folder):
    (folder / "samples.png").unlink()
    assert Ticket.from_pretrained(folder).samples is None
    with open(folder / "samples.png", "wb") as f:
        f.truncate(2**30)
    edit_config(folder, lambda c: c["files"]["samples.png"].__setitem__("bytes", 2**30))
    with pytest.warns(UserWarning, match="samples.png could not be used .*more than"):
        assert Ticket.from_pretrained(folder).samples is None


def test_a_kept_weights_file_larger_than_its_kept_values_need_is_refused_before_reading(tmp_path):
    model = searched(BY_NAME["dcgan"])
    folder = Ticket.from_model(model, portable=True).save_pretrained(tmp_path / "portable")
    assert Ticket.from_pretrained(folder).portable
    with open(folder / "kept_weights.safetensors", "r+b") as f:
        f.truncate(2**30)
    edit_config(folder, lambda c: c["files"]["kept_weights.safetensors"].__setitem__("bytes", 2**30))
    with pytest.raises(TicketError, match="more than this ticket's kept_weights.safetensors can hold"):
        Ticket.from_pretrained(folder)
