"""Tickets: wrap -> from_model -> save -> load -> apply on a fresh instance, bit-identical; families; atomic saves."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
from model_families import FAMILIES, FAMILY_IDS, Family
from torch import nn

import lt_plugins as lt
from lt_plugins import _io
from lt_plugins.adapters import adapter_for, build_model, get_adapter, list_adapters
from lt_plugins.masking import find_targets, is_wrapped, wrap_config
from lt_plugins.ticket import Ticket, TicketError, pack_mask, unpack_mask

BUILTIN = [f for f in FAMILIES if f.name in ("dcgan", "stylegan", "unet")]
BY_NAME = {f.name: f for f in FAMILIES}


def searched(family: Family, **config) -> nn.Module:
    """A wrapped model whose scores moved away from their initial values (as after a search)."""
    model = lt.wrap(family.build(), lt.TicketConfig(**{"density": 0.1, "seed": 5, **config})).eval()
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for scores in lt.score_parameters(model):
            scores.copy_(torch.randn(scores.shape, generator=gen))
    return model


def output(family: Family, model: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return family.output(model, family.inputs())


def fresh(family: Family, rng_seed: int = 987) -> nn.Module:
    """A new instance built under another global RNG state than the original."""
    torch.manual_seed(rng_seed)
    return family.build()


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_round_trip_through_a_folder_is_bit_identical(family, tmp_path):
    model = searched(family)
    initial = lt.masks(lt.wrap(family.build(), wrap_config(model)))
    assert any(not torch.equal(initial[n], m) for n, m in lt.masks(model).items()), "masks are still the initial ones"
    expected = output(family, model)

    Ticket.from_model(model, metrics={"fid": 12.5}).save_pretrained(tmp_path / "ticket")
    ticket = Ticket.from_pretrained(tmp_path / "ticket")
    rebuilt = ticket.apply(fresh(family)).eval()

    assert torch.equal(output(family, rebuilt), expected)
    current = lt.masks(rebuilt)
    assert current.keys() == lt.masks(model).keys()
    assert all(torch.equal(current[n], m) for n, m in lt.masks(model).items())
    assert ticket.metrics == {"fid": 12.5} and ticket.config == wrap_config(model)


@pytest.mark.parametrize("family", BUILTIN, ids=[f.name for f in BUILTIN])
def test_apply_without_a_model_builds_it_from_the_spec(family, tmp_path):
    model = searched(family)
    Ticket.from_model(model).save_pretrained(tmp_path / "t")
    torch.manual_seed(4321)
    rebuilt = Ticket.from_pretrained(tmp_path / "t").apply().eval()
    assert torch.equal(output(family, rebuilt), output(family, model))


def test_merge_returns_a_plain_module_with_the_same_output(tmp_path):
    family = BY_NAME["dcgan"]
    model = searched(family)
    merged = Ticket.from_model(model).apply(fresh(family), merge=True).eval()
    assert not is_wrapped(merged)
    assert torch.equal(output(family, merged), output(family, model))


def test_global_scope_round_trip(tmp_path):
    family = BY_NAME["stylegan"]
    model = searched(family, scope="global", density=0.2)
    Ticket.from_model(model).save_pretrained(tmp_path / "t")
    rebuilt = Ticket.from_pretrained(tmp_path / "t").apply(fresh(family)).eval()
    assert torch.equal(output(family, rebuilt), output(family, model))


def test_state_the_seed_does_not_give_travels_as_values(tmp_path):
    family = BY_NAME["stylegan"]
    model = searched(family)
    with torch.no_grad():  # as if trained: none of these come from the seed
        model.synthesis.const.mul_(3)
        model.synthesis.b8.conv0.noise_strength.fill_(0.7)
        model.mapping.fc0.bias.add_(0.25)
    ticket = Ticket.from_model(model)
    assert {"synthesis.const", "synthesis.b8.conv0.noise_strength", "mapping.fc0.bias"} <= set(ticket.remainder)
    assert not any("parametrizations" in k for k in ticket.remainder)
    ticket.save_pretrained(tmp_path / "t")
    rebuilt = Ticket.from_pretrained(tmp_path / "t").apply().eval()
    assert torch.equal(output(family, rebuilt), output(family, model))


def test_batchnorm_running_statistics_travel(tmp_path):
    family = BY_NAME["dcgan"]
    model = searched(family).train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 32))
    model.eval()
    Ticket.from_model(model).save_pretrained(tmp_path / "t")
    rebuilt = Ticket.from_pretrained(tmp_path / "t").apply().eval()
    assert torch.equal(output(family, rebuilt), output(family, model))


def _other_random_stream(monkeypatch):
    """Simulate a torch whose random stream differs: every drawn weight comes out changed."""
    from lt_plugins.masking import planning

    real = planning.draw_weight

    def drifted(*args, **kwargs):
        return real(*args, **kwargs) * 1.0001

    monkeypatch.setattr(planning, "draw_weight", drifted)  # the one place weights are drawn


def test_fingerprint_mismatch_is_refused_and_portable_tickets_stay_exact(tmp_path, monkeypatch):
    family = BY_NAME["dcgan"]
    model = searched(family)
    expected = output(family, model)
    Ticket.from_model(model).save_pretrained(tmp_path / "plain")
    Ticket.from_model(model, portable=True).save_pretrained(tmp_path / "portable")
    assert (tmp_path / "portable" / "kept_weights.safetensors").is_file()
    assert not (tmp_path / "plain" / "kept_weights.safetensors").exists()
    plain, portable = Ticket.from_pretrained(tmp_path / "plain"), Ticket.from_pretrained(tmp_path / "portable")
    _other_random_stream(monkeypatch)

    target = fresh(family)
    before = copy.deepcopy(target.state_dict())
    with pytest.raises(TicketError, match=r"'main\.0\.weight' regenerated from seed 5") as err:
        plain.apply(target)
    assert "torch" in str(err.value) and "portable" in str(err.value)
    assert not is_wrapped(target) and all(torch.equal(before[k], v) for k, v in target.state_dict().items())

    with pytest.warns(UserWarning, match="portable ticket's stored kept weights are used"):
        rebuilt = portable.apply(fresh(family)).eval()
    assert torch.equal(output(family, rebuilt), expected)


def test_keep_init_needs_the_base_weights_or_a_portable_ticket(tmp_path):
    family = BY_NAME["dcgan"]
    base = fresh(family, rng_seed=1)
    model = searched_keep = lt.wrap(copy.deepcopy(base), lt.TicketConfig(density=0.2, weight_init="keep")).eval()
    expected = output(family, searched_keep)
    ticket = Ticket.from_model(model)
    assert torch.equal(output(family, ticket.apply(copy.deepcopy(base)).eval()), expected)
    with pytest.raises(TicketError, match="weight_init='keep'"):
        ticket.apply()
    portable = Ticket.from_model(model, portable=True)
    with pytest.warns(UserWarning):
        assert torch.equal(output(family, portable.apply().eval()), expected)


class TinyNet(nn.Module):
    """Not a built-in family: rebuilt only from an instance, or with allow_remote_code."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.config = {"width": width}
        self.body = nn.Sequential(nn.Linear(4, width), nn.LayerNorm(width), nn.Linear(width, 3))

    def forward(self, x):
        return self.body(x)


def test_generic_models_need_the_instance_or_explicit_consent(tmp_path):
    model = lt.wrap(TinyNet(), lt.TicketConfig(density=0.25, seed=2))
    x = torch.randn(5, 4)
    ticket = Ticket.from_model(model)
    assert ticket.spec == {"family": "torch", "class": f"{TinyNet.__module__}.TinyNet", "config": {"width": 8}}
    ticket.save_pretrained(tmp_path / "t")
    loaded = Ticket.from_pretrained(tmp_path / "t")
    with pytest.raises(TicketError, match=r"not a built-in family.*ticket\.apply\(MyModel"):
        loaded.apply()
    assert torch.equal(loaded.apply(TinyNet())(x), model(x))
    assert torch.equal(loaded.apply(allow_remote_code=True)(x), model(x))


class BareNet(nn.Module):
    """Like most users' code: constructor arguments that the module does not keep."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Linear(width, 3))

    def forward(self, x):
        return self.body(x)


def test_a_class_built_with_arguments_it_does_not_keep_is_refused_by_name(tmp_path):
    model = lt.wrap(BareNet(width=16), lt.TicketConfig(density=0.25, seed=2))
    Ticket.from_model(model).save_pretrained(tmp_path / "t")
    loaded = Ticket.from_pretrained(tmp_path / "t")
    assert loaded.spec["config"] is None
    with pytest.raises(TicketError, match=r"records no constructor arguments for .*BareNet.* 67 values where .* hold 131"):
        loaded.apply(allow_remote_code=True)
    x = torch.randn(5, 4)
    assert torch.equal(loaded.apply(BareNet(width=16))(x), model(x))


def test_properties_card_and_samples(tmp_path):
    family = BY_NAME["dcgan"]
    model = searched(family, density=0.25)
    samples = output(family, model)
    ticket = Ticket.from_model(model, objective={"name": "moment_matching"}, metrics={"fid": 40.1}, samples=samples)
    assert ticket.density == pytest.approx(0.25, abs=1e-3)
    assert ticket.config.density == 0.25 and ticket.objective == {"name": "moment_matching"}
    assert set(ticket.masks) == set(lt.masks(model)) and all(m.dtype == torch.bool for m in ticket.masks.values())
    folder = ticket.save_pretrained(tmp_path / "t", repo_id="me/dcgan-25")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["README.md", "masks.safetensors", "remainder.safetensors", "samples.webp", "ticket_config.json"]

    from huggingface_hub import ModelCard
    from PIL import Image

    card = ModelCard.load(folder / "README.md")
    assert {"lottery-ticket", "lt-plugins", "pruning"} <= set(card.data.tags)
    assert card.data.library_name == "lt-plugins" and card.data.metrics == ["fid"]
    assert 'lt.Ticket.from_pretrained("me/dcgan-25")' in card.text and "model = ticket.apply()" in card.text
    assert "![samples](samples.webp)" in card.text and "| fid | 40.1 |" in card.text
    with Image.open(folder / "samples.webp") as grid:  # 4 images of 32x32, 2 per row, 2 px padding
        assert grid.size == (2 * 34 + 2, 2 * 34 + 2)
    config = json.loads((folder / "ticket_config.json").read_text())
    assert config["format_version"] == 3 and config["base"] is None and config["masks"]["bit_order"] == "little"
    assert {"lt_plugins", "torch", "platform"} <= set(config["created_with"])
    assert Ticket.from_pretrained(folder).samples.size == (70, 70)


def test_mask_packing_is_one_bit_per_weight_lsb_first():
    mask = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0)) < 0.3
    packed = pack_mask(mask)
    assert packed.dtype == torch.uint8 and packed.numel() == (105 + 7) // 8
    assert int(packed[0]) == sum(int(b) << i for i, b in enumerate(mask.flatten()[:8].tolist()))
    assert torch.equal(unpack_mask(packed, (3, 5, 7)), mask)


# -- atomic saves -----------------------------------------------------------------------------


def _fail_on_second_file(monkeypatch):
    real, calls = _io.write_file, []

    def failing(path, data):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        real(path, data)

    monkeypatch.setattr(_io, "write_file", failing)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture
def small_ticket():
    return Ticket.from_model(searched(BY_NAME["dcgan"]))


def test_a_failed_save_leaves_no_folder_behind(small_ticket, tmp_path, monkeypatch):
    _fail_on_second_file(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        small_ticket.save_pretrained(tmp_path / "t")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_keeps_the_existing_ticket_intact(small_ticket, tmp_path, monkeypatch):
    folder = small_ticket.save_pretrained(tmp_path / "t")
    before = _snapshot(folder)
    other = Ticket.from_model(searched(BY_NAME["dcgan"], seed=6), portable=True)
    with monkeypatch.context() as patch:
        _fail_on_second_file(patch)
        with pytest.raises(OSError, match="disk full"):
            other.save_pretrained(folder)
    assert _snapshot(folder) == before and [p.name for p in tmp_path.iterdir()] == ["t"]

    real_rename, renames = _io.os.rename, []

    def rename_fails_when_swapping_in(src, dst):  # the old ticket is moved aside, then this fails
        renames.append(dst)
        if len(renames) == 2:
            raise OSError("rename failed (simulated)")
        real_rename(src, dst)

    with monkeypatch.context() as patch:
        patch.setattr(_io.os, "rename", rename_fails_when_swapping_in)
        with pytest.raises(OSError, match="rename failed"):
            other.save_pretrained(folder)
    assert _snapshot(folder) == before and [p.name for p in tmp_path.iterdir()] == ["t"]

    other.save_pretrained(folder)  # and a save that succeeds replaces it whole
    assert Ticket.from_pretrained(folder).portable and [p.name for p in tmp_path.iterdir()] == ["t"]


def test_save_refuses_a_folder_with_other_files(small_ticket, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(TicketError, match=r"not part of a ticket \(\['checkpoints'\]\)"):
        small_ticket.save_pretrained(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoints"]


# -- adapters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_IDS)
def test_adapter_spec_is_json_and_rebuilds_the_architecture(family):
    model = family.build()
    adapter = adapter_for(model)
    spec = adapter.spec(model)
    assert spec["family"] == {"unet": "diffusers"}.get(family.name, family.name)
    assert json.loads(json.dumps(spec)) == spec
    rebuilt = build_model(spec)
    assert type(rebuilt) is type(model) and adapter.differences(spec, rebuilt) == []
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
    # The family's default targets exist in the model and mask its weights.
    hinted = {f"{m}.{p}" for m, _, p in find_targets(model, adapter.ticket_config())}
    everything = {f"{m}.{p}" for m, _, p in find_targets(model, lt.TicketConfig(target_modules=".*"))}
    assert hinted and hinted <= everything


def test_only_allow_listed_classes_are_built_from_a_spec():
    assert list_adapters()[-1] == "torch"
    with pytest.raises(ValueError, match="not on the diffusers allow-list"):
        build_model({"family": "diffusers", "class": "diffusers.AutoencoderKL", "config": {}})
    with pytest.raises(ValueError, match="not a built-in family"):
        build_model({"family": "torch", "class": "os.system", "config": None})
    with pytest.raises(ValueError, match="Unknown model family 'keras'"):
        build_model({"family": "keras", "class": "x.Y", "config": {}})
    with pytest.raises(ValueError, match="builds lt_plugins.models.dcgan.DCGANGenerator"):
        build_model({"family": "dcgan", "class": "subprocess.Popen", "config": {}})
    with pytest.raises(ValueError, match="not a model name timm knows"):
        build_model({"family": "timm", "class": "x", "config": {"model_name": "no_such_net"}})
    assert get_adapter("stylegan").latent_dim({"config": {"z_dim": 32}}) == 32


def test_sampling_a_built_in_family(tmp_path):
    model = searched(BY_NAME["dcgan"])
    images = get_adapter("dcgan").sample(model, 3, generator=torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 32, 32) and images.abs().max() <= 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = get_adapter("dcgan").sample(model, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, again)


def test_cli_sample_rebuilds_a_unet_from_a_folder(tmp_path, capsys):
    import argparse

    from PIL import Image

    from lt_plugins.commands.hub import add_sample

    Ticket.from_model(searched(BY_NAME["unet"])).save_pretrained(tmp_path / "unet")
    parser = argparse.ArgumentParser()
    add_sample(parser.add_subparsers())
    args = parser.parse_args(["sample", str(tmp_path / "unet"), "--n", "2", "--out", str(tmp_path / "g.png")])
    with Image.open(args.func(args)) as grid:
        assert grid.size == (2 * 18 + 2, 18 + 2)  # two 16x16 samples side by side
    assert "Wrote 2 samples" in capsys.readouterr().out


def test_saved_ticket_is_readable_like_any_new_folder(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        gen = lt.wrap(nn.Linear(8, 8), lt.TicketConfig(density=0.5))
        folder = Ticket.from_model(gen).save_pretrained(tmp_path / "ticket")
    finally:
        os.umask(umask)
    assert folder.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o777 == 0o644 for p in folder.iterdir())


def test_the_card_lists_only_scores_as_hub_metrics_with_formatted_numbers(tmp_path):
    from huggingface_hub import ModelCard

    metrics = {"fd": 12.3456789, "density": 0.28290000000000004, "coverage": 0.5, "feature_key": "ab12cd34",
               "k": 5, "n_fake": 100, "n_real": 200, "seed": 0}
    folder = Ticket.from_model(searched(BY_NAME["dcgan"]), metrics=metrics).save_pretrained(tmp_path / "t")
    card = ModelCard.load(folder / "README.md")
    assert card.data.metrics == ["coverage", "density", "fd"]
    # huggingface_hub parses the model-index back into results (a malformed one would not parse)
    assert sorted((r.metric_type, r.metric_value) for r in card.data.eval_results) == [
        ("coverage", 0.5), ("density", 0.2829), ("fd", 12.35)]
    (result,) = card.data.to_dict()["model-index"][0]["results"]
    assert result["task"]["type"] == "unconditional-image-generation"
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"coverage": 0.5, "density": 0.2829, "fd": 12.35}
    assert "| density | 0.2829 |" in card.text and "0.28290000000000004" not in card.content
    assert "Evaluated with: feature_key ab12cd34, k 5, n_fake 100, n_real 200, seed 0." in card.text
    assert Ticket.from_pretrained(folder).metrics == metrics  # the manifest keeps every value as given
