"""Tickets saved by earlier lt_plugins versions (formats 1 and 2) still load, apply and give their outputs.

The fixtures under ``tests/data/tickets/v<N>`` were written by ``tests/data/tickets/make_fixture.py``
run on the commit that last wrote that format (v1: a775edb, v2: fec9fc8); ``expected.safetensors``
holds the latents and the images that ticket's generator gave then.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lt_plugins.ticket import Ticket

DATA = Path(__file__).parent / "data" / "tickets"


@pytest.mark.parametrize("version", [1, 2])
def test_old_format_loads_applies_and_gives_its_recorded_images(version, tmp_path):
    folder = shutil.copytree(DATA / f"v{version}" / "ticket", tmp_path / "ticket")
    assert json.loads((folder / "ticket_config.json").read_text())["format_version"] == version
    ticket = Ticket.from_pretrained(folder)
    assert ticket.metrics == {"fd": 12.5} and ticket.samples is not None
    expected = load_file(DATA / f"v{version}" / "expected.safetensors")
    with torch.no_grad():
        images = ticket.apply().eval()(expected["z"])
    assert torch.equal(images, expected["images"])


@pytest.mark.parametrize("version", [1, 2])
def test_an_old_ticket_saved_again_is_format_3_and_gives_the_same_images(version, tmp_path):
    ticket = Ticket.from_pretrained(DATA / f"v{version}" / "ticket")
    folder = ticket.save_pretrained(tmp_path / "again")
    config = json.loads((folder / "ticket_config.json").read_text())
    assert config["format_version"] == 3 and all("coding" in t for t in config["targets"])
    assert (folder / "samples.webp").is_file() and not (folder / "samples.png").exists()
    expected = load_file(DATA / f"v{version}" / "expected.safetensors")
    with torch.no_grad():
        assert torch.equal(Ticket.from_pretrained(folder).apply().eval()(expected["z"]), expected["images"])
