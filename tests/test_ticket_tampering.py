"""Tickets that were edited, cut short or made for another model are refused, clearly, with nothing applied."""

from __future__ import annotations

import copy
import hashlib
import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_ticket import BY_NAME, fresh, searched

import lt_plugins as lt
from lt_plugins import ticket as ticket_module
from lt_plugins.masking import is_wrapped
from lt_plugins.models import DCGANGenerator, StyleGANGenerator
from lt_plugins.ticket import Ticket, TicketError

DCGAN = BY_NAME["dcgan"]


@pytest.fixture
def folder(tmp_path):
    """A 10%-density ticket: its masks are rice coded."""
    model = searched(DCGAN)
    return Ticket.from_model(model).save_pretrained(tmp_path / "ticket")


@pytest.fixture
def packed_folder(tmp_path):
    """A 50%-density ticket: its masks are stored as packed bits (coding does not pay there)."""
    folder = Ticket.from_model(searched(DCGAN, density=0.5)).save_pretrained(tmp_path / "packed")
    codings = {t["coding"]["name"] for t in json.loads((folder / "ticket_config.json").read_text())["targets"]}
    assert codings == {"packbits"}
    return folder


def edit_config(folder, change):
    path = folder / "ticket_config.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def rewrite(folder, name, data: bytes, *, fix_record: bool):
    """Replace a binary file; with ``fix_record`` also its size and hash in the config, as a
    careful forger (or a buggy writer) would, so that the deeper checks are reached."""
    (folder / name).write_bytes(data)
    if fix_record:
        edit_config(folder, lambda c: c["files"].__setitem__(
            name, {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}))


def rewrite_masks(folder, change):
    tensors = load_file(folder / "masks.safetensors")
    change(tensors)
    save_file(tensors, folder / "scratch.safetensors")
    data = (folder / "scratch.safetensors").read_bytes()
    (folder / "scratch.safetensors").unlink()
    rewrite(folder, "masks.safetensors", data, fix_record=True)


def assert_untouched(model, before):
    assert not is_wrapped(model)
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(before[k], after[k]) for k in before)


def refused_at_apply(folder, match, model=None):
    ticket = Ticket.from_pretrained(folder)
    model = model if model is not None else fresh(DCGAN)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(TicketError, match=match) as err:
        ticket.apply(model)
    assert_untouched(model, before)
    return str(err.value)


def test_flipped_seed_is_refused_naming_the_tensor_and_the_environment(folder):
    edit_config(folder, lambda c: c["ticket_config"].__setitem__("seed", c["ticket_config"]["seed"] + 1))
    message = refused_at_apply(
        folder, r"Weight 'main\.0\.weight' regenerated from seed 6 \(signed_constant\) does not match"
    )
    assert f"torch {torch.__version__}" in message and "portable" in message
    assert "4 of 4 masked tensors differ" in message


def test_edited_fingerprint_is_refused(folder):
    edit_config(folder, lambda c: c["targets"][2].__setitem__("fingerprint", "0" * 64))
    message = refused_at_apply(folder, r"'main\.6\.weight'")
    assert "1 of 4 masked tensors differ" in message and "seed or fingerprints were changed" in message


def test_truncated_masks_file_is_refused(folder):
    data = (folder / "masks.safetensors").read_bytes()
    rewrite(folder, "masks.safetensors", data[:-100], fix_record=False)
    with pytest.raises(TicketError, match=r"masks\.safetensors is \d+ bytes, but ticket_config\.json says \d+"):
        Ticket.from_pretrained(folder)
    rewrite(folder, "masks.safetensors", data[:-100], fix_record=True)
    with pytest.raises(TicketError, match="masks.safetensors is not a readable safetensors file"):
        Ticket.from_pretrained(folder)


def test_changed_file_is_refused_by_its_hash(folder):
    data = bytearray((folder / "remainder.safetensors").read_bytes())
    data[-1] ^= 0x01
    rewrite(folder, "remainder.safetensors", bytes(data), fix_record=False)
    with pytest.raises(TicketError, match="remainder.safetensors does not match the sha256"):
        Ticket.from_pretrained(folder)


def test_wrong_bit_count_is_refused(packed_folder):
    folder = packed_folder
    rewrite_masks(folder, lambda t: t.__setitem__("main.3.weight", t["main.3.weight"][:-1].clone()))
    expected = r"'main\.3\.weight' holds 32760 bits .* 32768 weights, which need 4096 bytes"
    with pytest.raises(TicketError, match=expected):
        Ticket.from_pretrained(folder)


@pytest.mark.parametrize("coding", ["rice", "packbits"])
def test_a_changed_kept_count_is_refused(folder, packed_folder, coding):
    folder = folder if coding == "rice" else packed_folder

    def flip_one(t):  # in a rice stream: one unary bit, so one gap one longer
        t["main.9.weight"] = t["main.9.weight"].clone()
        t["main.9.weight"][0] ^= 1 if coding == "packbits" else 2

    rewrite_masks(folder, flip_one)
    with pytest.raises(TicketError, match=r"mask of 'main\.9\.weight' (keeps \d+ weights, but ticket_config\.json|"
                                          r"ends before|is \d+ bytes, but its)"):
        Ticket.from_pretrained(folder)


def test_padding_bits_must_be_zero(tmp_path):
    layer = lt.wrap(torch.nn.Linear(7, 3), lt.TicketConfig(density=0.5))  # 21 weights: 3 padding bits
    folder = Ticket.from_model(layer).save_pretrained(tmp_path / "t")
    assert json.loads((folder / "ticket_config.json").read_text())["targets"][0]["coding"] == {"name": "packbits"}

    def set_padding(t):
        t["weight"] = t["weight"].clone()
        t["weight"][2] |= 0x80

    rewrite_masks(folder, set_padding)
    with pytest.raises(TicketError, match="bits set past its 21 weights"):
        Ticket.from_pretrained(folder)


def test_wrong_shapes_are_refused(folder):
    # Same number of weights, other shape: the file reads, the model does not fit.
    edit_config(folder, lambda c: c["targets"][1].__setitem__("shape", [32, 64, 4, 4]))
    message = refused_at_apply(folder, r"Shape of 'main\.3\.weight' differs")
    assert "ticket (32, 64, 4, 4), model (64, 32, 4, 4)" in message

    # More weights than the coded positions cover: the mask decodes, but keeps fewer than 10% of them.
    edit_config(folder, lambda c: c["targets"][1].__setitem__("shape", [64, 32, 4, 5]))
    with pytest.raises(TicketError, match=r"mask of 'main\.3\.weight' keeps 3277 weights, but density 0\.1 of its "
                                          r"40960 keeps 4096"):
        Ticket.from_pretrained(folder)


def test_more_weights_than_packed_bits_are_refused(packed_folder):
    edit_config(packed_folder, lambda c: c["targets"][1].__setitem__("shape", [64, 32, 4, 5]))
    with pytest.raises(TicketError, match=r"'main\.3\.weight' holds \d+ bits"):
        Ticket.from_pretrained(packed_folder)


def test_masks_that_disagree_with_the_density_are_refused(folder):
    edit_config(folder, lambda c: c["ticket_config"].__setitem__("density", 0.5))
    with pytest.raises(TicketError, match=r"density 0\.5 of its \d+ keeps \d+: masks and config disagree"):
        Ticket.from_pretrained(folder)


def test_bad_json_is_refused(folder):
    (folder / "ticket_config.json").write_text('{"format": "lt_plugins.ticket", "format_version": 1,')
    with pytest.raises(TicketError, match="is not valid JSON"):
        Ticket.from_pretrained(folder)
    (folder / "ticket_config.json").write_text('["a list"]')
    with pytest.raises(TicketError, match="is not a lt_plugins ticket config"):
        Ticket.from_pretrained(folder)


def test_missing_and_malformed_fields_are_refused(folder):
    edit_config(folder, lambda c: c.pop("targets"))
    with pytest.raises(TicketError, match="'targets' is missing"):
        Ticket.from_pretrained(folder)


def test_invalid_ticket_config_is_refused(tmp_path):
    folder = Ticket.from_model(searched(DCGAN)).save_pretrained(tmp_path / "t")
    edit_config(folder, lambda c: c["ticket_config"].__setitem__("scope", "everything"))
    with pytest.raises(TicketError, match=r"'ticket_config' is invalid: .*scope='everything'"):
        Ticket.from_pretrained(folder)


def test_newer_format_version_is_refused(folder):
    newer = ticket_module.FORMAT_VERSION + 1
    edit_config(folder, lambda c: c.update(format_version=newer, created_with={"lt_plugins": "9.0.0"}))
    expected = rf"format version {newer}, written by lt_plugins 9\.0\.0.*pip install -U lt-plugins"
    with pytest.raises(TicketError, match=expected):
        Ticket.from_pretrained(folder)


def test_missing_file_is_refused(folder):
    (folder / "remainder.safetensors").unlink()
    with pytest.raises(TicketError, match="has no remainder.safetensors"):
        Ticket.from_pretrained(folder)
    with pytest.raises(TicketError, match="has no ticket_config.json"):
        Ticket.from_pretrained(folder.parent)


@pytest.mark.parametrize(
    "other, match",
    [
        (
            lambda: DCGANGenerator(nz=64, ngf=16, nc=1, image_size=32),
            r"config\['nz'\]: ticket has 32, model has 64",
        ),
        (lambda: StyleGANGenerator(z_dim=32, w_dim=32, img_resolution=32), r"ticket is for a dcgan model"),
        (lambda: torch.nn.Sequential(torch.nn.Linear(4, 4)), r"ticket is for a dcgan model"),
    ],
    ids=["dcgan-other-config", "stylegan", "generic"],
)
def test_a_model_of_another_architecture_is_refused(folder, other, match):
    refused_at_apply(folder, match, model=other())


def test_generic_ticket_on_another_layout_names_what_differs(tmp_path):
    class Net(torch.nn.Module):
        def __init__(self, depth=2):
            super().__init__()
            self.layers = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(depth)])

    folder = Ticket.from_model(lt.wrap(Net(), lt.TicketConfig(density=0.5))).save_pretrained(tmp_path / "t")
    message = refused_at_apply(folder, "Masked tensors of the ticket and of the model differ", model=Net(depth=3))
    assert "['layers.2.weight'] that the ticket lacks" in message


def test_already_wrapped_model_is_refused(folder):
    model = lt.wrap(fresh(DCGAN), lt.TicketConfig())
    with pytest.raises(TicketError, match="already wrapped"):
        Ticket.from_pretrained(folder).apply(model)


def test_a_failure_while_loading_undoes_everything(folder, monkeypatch):
    def broken(model):
        raise RuntimeError("crash after wrapping (simulated)")

    monkeypatch.setattr(ticket_module.rebuild, "current_masks", broken)
    model = fresh(DCGAN)
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(RuntimeError, match="simulated"):
        Ticket.from_pretrained(folder).apply(model)
    assert_untouched(model, before)
    assert all(p.requires_grad for p in model.parameters())


def test_loading_and_applying_never_unpickle(folder, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("something unpickled")

    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    model = Ticket.from_pretrained(folder).apply().eval()
    assert is_wrapped(model)


def test_a_model_in_another_dtype_is_refused(folder):
    message = refused_at_apply(folder, r"dtype of 'main\.0\.weight' differs: ticket float32, model float64",
                               model=fresh(DCGAN).double())
    assert "then convert the result" in message
