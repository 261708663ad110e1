"""The package's shape: who owns the parametrization layout, what the core imports, how families are found."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from byog_cases import CASES
from model_families import FAMILIES
from torch import nn

import lt_plugins as lt
from lt_plugins.adapters import _registry, recognise
from lt_plugins.masking import load_masks, masked_parameters, score_masks
from lt_plugins.models import DCGANGenerator
from lt_plugins.ticket import Ticket

PACKAGE = Path(lt.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every dotted name a module imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            names.add(base)
            names.update(f"{base}.{a.name}" if node.module else f"{base}{a.name}" for a in node.names)
    return names


def test_no_module_of_the_package_is_over_500_lines():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    long = {name: n for name, n in sizes.items() if n > 500}
    assert not long, f"modules over 500 lines (split them, one job each): {long}"


def test_feature_network_classes_keep_their_public_module():
    """feature_key hashes the class path, and cached real-data moments are keyed by it: the split into
    lt_plugins/features/ must not rename the classes' home."""
    from lt_plugins.features import MNISTFeatureNet, TimmFeatures, VGG19BNFeatures

    assert {c.__module__ for c in (MNISTFeatureNet, TimmFeatures, VGG19BNFeatures)} == {"lt_plugins.features"}


def test_the_ticket_package_asks_masking_for_the_parametrization_layout():
    for path in sorted((PACKAGE / "ticket").glob("*.py")):
        imported = _imports(path)
        assert not {n for n in imported if n.endswith("parametrize")}, f"{path.name} imports torch's parametrize"
        assert not {n for n in imported if n.endswith("ScoreMask")}, f"{path.name} imports ScoreMask"
        strings = [n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)]
        assert not [s for s in strings if isinstance(s, str) and "parametrizations" in s], (
            f"{path.name} spells parametrization keys itself; use lt_plugins.masking.masked_parameters"
        )


def test_importing_the_package_loads_neither_diffusers_nor_timm():
    code = (
        "import sys, lt_plugins, lt_plugins.masking, lt_plugins.ticket\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('diffusers', 'timm')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_wrapping_a_torch_model_loads_neither_diffusers_nor_timm():
    code = (
        "import sys, torch, lt_plugins as lt\n"
        "lt.wrap(torch.nn.Sequential(torch.nn.ConvTranspose2d(8, 4, 4), torch.nn.ConvTranspose2d(4, 1, 4)))\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('diffusers', 'timm')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registration_order_never_decides_a_family(monkeypatch):
    models = [f.build() for f in FAMILIES] + [c.build() for c in CASES] + [nn.Linear(2, 2)]
    found = [recognise(m)[0].family for m in models]
    assert len(set(found)) >= 5, found
    monkeypatch.setattr(_registry, "_ADAPTERS", dict(reversed(_registry._ADAPTERS.items())))
    assert [recognise(m)[0].family for m in models] == found


def test_two_families_claiming_one_class_are_refused(monkeypatch):
    twin = type(_registry.get_adapter("dcgan"))()
    twin.family = "dcgan-twin"
    monkeypatch.setitem(_registry._ADAPTERS, "dcgan-twin", twin)
    with pytest.raises(ValueError, match=r"\['dcgan', 'dcgan-twin'\] all claim DCGANGenerator.*family='dcgan'"):
        recognise(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=8))


def _random_masks(model: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Masks keeping what each tensor's density keeps, at random places (no scores rank them so)."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for name, sm in score_masks(model).items():
        flat = torch.zeros(sm.scores.numel(), dtype=torch.bool)
        flat[torch.randperm(flat.numel(), generator=gen)[: sm.kept]] = True
        out[name] = flat.view_as(sm.scores)
    return out


@pytest.mark.parametrize("fill", ["random", "all-equal"])
def test_load_masks_gives_exactly_the_masks_whatever_the_scores(fill):
    model = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16), lt.TicketConfig(density=0.1, seed=0))
    if fill == "all-equal":  # every score tied: a top-k would have to break ties by position
        with torch.no_grad():
            for scores in lt.score_parameters(model):
                scores.fill_(0.5)
    wanted = _random_masks(model)
    load_masks(model, wanted)
    assert all(torch.equal(lt.masks(model)[n], m) for n, m in wanted.items())
    for name, entry in masked_parameters(model).items():  # the forward uses them too
        masked = entry.module.parametrizations[entry.param_name]
        assert torch.equal(getattr(entry.module, entry.param_name), masked.original * wanted[name])


def test_load_masks_in_global_scope_and_the_way_back_to_searching():
    model = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16), lt.TicketConfig(density=0.2, scope="global"))
    layer = lt.masks(model)
    wanted = {n: m.roll(1, dims=-1) for n, m in layer.items()}  # same total, other places
    load_masks(model, wanted)
    assert all(torch.equal(lt.masks(model)[n], m) for n, m in wanted.items())
    with torch.no_grad():  # writing the scores releases the pins; the scores still rank the same weights
        for scores in lt.score_parameters(model):
            scores.mul_(1.0)
    assert not any(sm.pinned for sm in score_masks(model).values())
    assert all(torch.equal(lt.masks(model)[n], m) for n, m in wanted.items())
    with torch.no_grad():
        for scores in lt.score_parameters(model):
            scores.normal_(generator=torch.Generator().manual_seed(3))
    assert any(not torch.equal(lt.masks(model)[n], m) for n, m in wanted.items())


def test_load_masks_survives_a_move_and_a_cast():
    model = lt.wrap(nn.Linear(16, 8), lt.TicketConfig(density=0.25))
    wanted = _random_masks(model)
    load_masks(model, wanted)
    model.to("cuda" if torch.cuda.is_available() else "cpu").double()
    assert score_masks(model)["weight"].pinned and score_masks(model)["weight"].scores.dtype == torch.float32
    assert torch.equal(lt.masks(model)["weight"].cpu(), wanted["weight"])


def test_load_masks_refuses_what_does_not_fit():
    model = lt.wrap(nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 4)), lt.TicketConfig(density=0.5))
    good = _random_masks(model)
    with pytest.raises(ValueError, match=r"missing \['1.weight'\]"):
        load_masks(model, {"0.weight": good["0.weight"]})
    with pytest.raises(ValueError, match=r"'1.weight' must be a bool tensor .* of shape \(4, 8\); got bool of shape \(8, 4\)"):
        load_masks(model, {**good, "1.weight": good["1.weight"].T})
    with pytest.raises(ValueError, match=r"'0.weight' keeps 64 weights, but density 0.5 of its 64 keeps 32"):
        load_masks(model, {**good, "0.weight": torch.ones(8, 8, dtype=torch.bool)})
    assert not any(sm.pinned for sm in score_masks(model).values())  # refused before any mask changed


def test_a_ticket_is_applied_through_load_masks():
    model = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16), lt.TicketConfig(density=0.1, seed=1))
    ticket = Ticket.from_model(model)
    ticket.masks = _random_masks(model, seed=2)  # masks no scores of this seed would rank first
    rebuilt = ticket.apply(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16))
    assert all(sm.pinned for sm in score_masks(rebuilt).values())
    assert all(torch.equal(lt.masks(rebuilt)[n], m) for n, m in ticket.masks.items())


@pytest.mark.parametrize("root", [False, True], ids=["nested", "root-module"])
def test_masked_parameters_keys_are_the_state_dict_keys(root):
    model = lt.wrap(nn.Linear(4, 4) if root else DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16))
    entries = masked_parameters(model)
    state = model.state_dict()
    layout = {k for k in state if k.startswith("parametrizations.") or ".parametrizations." in k}
    assert {k for e in entries.values() for k in (e.original_key, e.scores_key)} == layout
    for entry in entries.values():
        assert state[entry.original_key].data_ptr() == entry.original.data_ptr()
        assert torch.equal(state[entry.scores_key], entry.score_mask.scores)
    assert list(entries) == list(lt.masks(model))
