"""Tickets on a pretrained base (weight_init="keep"): the base's Hub repo and commit are recorded,
and apply() with no model loads exactly that commit; against the local Hub of hub_fixtures.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel
from hub_fixtures import deadline
from huggingface_hub import HfApi, ModelCard
from torch import nn

import lt_plugins as lt
from lt_plugins.base_model import BaseModel
from lt_plugins.masking import is_wrapped
from lt_plugins.ticket import Ticket, TicketError

# diffusers passes an argument huggingface_hub ignores, with a warning that is not ours.
pytestmark = pytest.mark.filterwarnings("ignore:The `local_dir_use_symlinks` argument is deprecated")
BASE = "lt-tester/tiny-unet"
INPUTS = (torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([10, 500]))


@pytest.fixture(autouse=True)
def _hard_deadline():
    with deadline(60):
        yield


def tiny_unet(seed: int) -> UNet2DModel:
    """A 'pretrained' UNet: its weights depend on ``seed`` only."""
    torch.manual_seed(seed)
    return UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    )


def upload(model: nn.Module, tmp_path, repo: str = BASE, subfolder: str | None = None) -> str:
    """save_pretrained + upload_folder to ``repo`` (main); returns the new commit sha."""
    folder = tmp_path / f"upload-{len(list(tmp_path.glob('upload-*')))}"
    model.save_pretrained(folder)
    api = HfApi()
    api.create_repo(repo, exist_ok=True)
    return api.upload_folder(repo_id=repo, folder_path=folder, path_in_repo=subfolder).oid


def masked(model: nn.Module) -> nn.Module:
    """``model`` wrapped on its own weights, with scores moved as after a search."""
    model = lt.wrap(model, lt.TicketConfig(density=0.3, weight_init="keep")).eval()
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for scores in lt.score_parameters(model):
            scores.copy_(torch.randn(scores.shape, generator=gen))
    return model


def output(model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(*INPUTS).sample


@pytest.fixture
def hub(hub_upload_server, hub_endpoint):
    """huggingface_hub (and diffusers, timm) pointed at the local upload server, with its token."""
    hub_endpoint(hub_upload_server.endpoint, token=hub_upload_server.token)
    return hub_upload_server


@pytest.fixture
def pinned(hub, tmp_path):
    """(sha of BASE's first commit, a keep-ticket made on the UNet loaded from BASE, its output)."""
    sha = upload(tiny_unet(seed=0), tmp_path)
    model = masked(UNet2DModel.from_pretrained(BASE))
    return sha, Ticket.from_model(model), output(model)


def test_the_ticket_records_the_base_the_model_was_loaded_from(pinned, tmp_path):
    sha, ticket, _ = pinned
    assert ticket.base == BaseModel(BASE, revision=sha)  # from config._name_or_path, main pinned to its commit
    folder = ticket.save_pretrained(tmp_path / "ticket")
    config = json.loads((folder / "ticket_config.json").read_text())
    assert config["base"] == {"repo_id": BASE, "revision": sha, "subfolder": None}
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model == BASE
    assert f"`{BASE}` at commit `{sha}`" in card.text and "model = ticket.apply()" in card.text
    assert Ticket.from_pretrained(folder).base == ticket.base


def test_apply_without_a_model_loads_the_pinned_commit_even_after_main_moved(pinned, hub, tmp_path):
    sha, ticket, expected = pinned
    ticket.save_pretrained(tmp_path / "ticket")
    loaded = Ticket.from_pretrained(tmp_path / "ticket")
    assert torch.equal(output(loaded.apply()), expected)

    moved = upload(tiny_unet(seed=1), tmp_path)  # other weights on main
    assert HfApi().model_info(BASE).sha == moved != sha
    rebuilt = loaded.apply()
    assert torch.equal(output(rebuilt), expected)
    assert torch.equal(lt.masks(rebuilt)["conv_in.weight"], ticket.masks["conv_in.weight"])


def test_a_model_with_other_weights_is_refused_naming_the_base(pinned, tmp_path):
    sha, ticket, _ = pinned
    upload(tiny_unet(seed=1), tmp_path)
    other = UNet2DModel.from_pretrained(BASE)  # main now: not the ticket's commit
    before = {k: v.clone() for k, v in other.state_dict().items()}
    expected = rf"of the model is not the one .* base {BASE}@{sha}.*apply\(\) with no model"
    with pytest.raises(TicketError, match=expected):
        ticket.apply(other)
    assert not is_wrapped(other) and all(torch.equal(before[k], v) for k, v in other.state_dict().items())


def test_push_to_hub_and_back_rebuilds_from_the_base(pinned, hub):
    _, ticket, expected = pinned
    ticket.push_to_hub("lt-tester/tiny-unet-ticket")
    pulled = Ticket.from_pretrained("lt-tester/tiny-unet-ticket")
    assert pulled.base == ticket.base and torch.equal(output(pulled.apply()), expected)


def test_an_explicit_base_pins_its_revision_and_keeps_its_subfolder(hub, tmp_path):
    repo = "lt-tester/tiny-pipeline"
    sha = upload(tiny_unet(seed=2), tmp_path, repo=repo, subfolder="unet")
    model = masked(UNet2DModel.from_pretrained(repo, subfolder="unet"))
    ticket = Ticket.from_model(model, base=BaseModel(repo, revision="main", subfolder="unet"))
    assert ticket.base == BaseModel(repo, revision=sha, subfolder="unet")
    assert torch.equal(output(ticket.apply()), output(model))
    assert Ticket.from_model(model, base=repo).base == BaseModel(repo, revision=sha)  # a plain repo id


def test_a_base_that_cannot_be_resolved(hub):
    model = masked(tiny_unet(seed=0))
    with pytest.raises(TicketError, match=r"Could not resolve revision 'main' of base model 'lt-tester/missing'"):
        Ticket.from_model(model, base="lt-tester/missing")
    model.register_to_config(_name_or_path="lt-tester/missing")  # as if loaded from a repo since deleted
    with pytest.warns(UserWarning, match="names 'lt-tester/missing' as its origin, but the ticket records no base"):
        assert Ticket.from_model(model).base is None


def test_a_keep_ticket_without_a_base_needs_the_model(tmp_path):
    base = tiny_unet(seed=0)  # made here, not loaded: no Hub repo to record
    model = masked(tiny_unet(seed=0))
    ticket = Ticket.from_model(model)
    assert ticket.base is None
    folder = ticket.save_pretrained(tmp_path / "ticket")
    assert json.loads((folder / "ticket_config.json").read_text())["base"] is None
    card = (folder / "README.md").read_text()
    assert "| base | not recorded |" in card and "ticket.apply(base_model)" in card
    loaded = Ticket.from_pretrained(folder)
    with pytest.raises(TicketError, match=r"records no base repo .* pass that model, ticket\.apply\(model\)"):
        loaded.apply()
    assert torch.equal(output(loaded.apply(base)), output(model))


def test_a_seed_ticket_has_no_base():
    model = lt.wrap(tiny_unet(seed=0), lt.TicketConfig(density=0.3))
    for base in (BASE, BaseModel(BASE, revision="a" * 40)):  # refused before any Hub request
        with pytest.raises(TicketError, match="weights come from its seed 0 .* so it has no pretrained base"):
            Ticket.from_model(model, base=base)
    assert Ticket.from_model(model).base is None


def test_version_1_tickets_load_and_a_bad_base_is_refused(tmp_path):
    folder = Ticket.from_model(masked(tiny_unet(seed=0))).save_pretrained(tmp_path / "ticket")
    path = folder / "ticket_config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "base": {"repo_id": BASE, "revision": "main", "subfolder": None}}))
    with pytest.raises(TicketError, match=r"'base' is invalid: must pin the revision to a 40-hex commit sha"):
        Ticket.from_pretrained(folder)
    fixture = Path(__file__).parent / "data" / "tickets" / "v1" / "ticket"  # written before bases were recorded
    assert "base" not in json.loads((fixture / "ticket_config.json").read_text())
    assert Ticket.from_pretrained(fixture).base is None


def test_timm_bases_load_from_the_hub_too(hub, tmp_path):
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    save_for_hf(timm.create_model("test_resnet", num_classes=10), tmp_path / "timm", safe_serialization=True)
    api = HfApi()
    api.create_repo("lt-tester/tiny-resnet")
    sha = api.upload_folder(repo_id="lt-tester/tiny-resnet", folder_path=tmp_path / "timm").oid
    model = lt.wrap(timm.create_model("hf-hub:lt-tester/tiny-resnet", pretrained=True),
                    lt.TicketConfig(density=0.3, weight_init="keep")).eval()
    ticket = Ticket.from_model(model, base="lt-tester/tiny-resnet")
    assert ticket.base == BaseModel("lt-tester/tiny-resnet", revision=sha)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ticket.apply().eval()(x), model(x))
