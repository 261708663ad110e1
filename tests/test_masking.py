"""wrap / merge / unwrap / masks / density on every family, both scopes."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from model_families import FAMILIES, FAMILY_IDS
from torch import nn

import lt_plugins as lt
from lt_plugins.masking import ThresholdHint, _sample_positions, _topk_mask_without_sync, score_masks, topk_mask


@pytest.fixture(params=FAMILIES, ids=FAMILY_IDS)
def family(request):
    return request.param


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_kept_count_is_exact(family, scope):
    model = lt.wrap(family.build(), lt.TicketConfig(density=0.1, scope=scope, seed=3))
    current = lt.masks(model)
    assert current, "no weight was masked"
    if scope == "layer":
        for name, mask in current.items():
            assert int(mask.sum()) == max(1, round(0.1 * mask.numel())), name
    else:
        total = sum(m.numel() for m in current.values())
        assert lt.density(model).kept == round(0.1 * total)
        assert len({round(v, 3) for v in lt.density(model).per_layer.values()}) > 1


def test_output_changes_with_mask(family):
    model = lt.wrap(family.build(), lt.TicketConfig(density=0.3, seed=0)).eval()
    x = family.inputs()
    before = family.output(model, x)
    with torch.no_grad():
        for scores in lt.score_parameters(model):
            scores.copy_(torch.rand(scores.shape, generator=torch.Generator().manual_seed(7)))
    after = family.output(model, x)
    assert not torch.allclose(before, after)


def test_only_scores_get_gradients(family):
    model = lt.wrap(family.build(), lt.TicketConfig(density=0.2, seed=0))
    family.output(model, family.inputs()).square().mean().backward()
    score_ids = {id(p) for p in lt.score_parameters(model)}
    for name, param in model.named_parameters():
        if id(param) in score_ids:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert not param.requires_grad and param.grad is None, name


def test_merge_keeps_output_and_state_dict_loads_into_fresh_instance(family):
    model = lt.wrap(family.build(), lt.TicketConfig(density=0.1, seed=1)).eval()
    x = family.inputs()
    wrapped_out = family.output(model, x).detach()
    merged = lt.merge(model)
    assert not score_masks(merged)
    torch.testing.assert_close(family.output(merged, x), wrapped_out, rtol=0, atol=0)
    fresh = family.build().eval()
    fresh.load_state_dict(merged.state_dict())
    torch.testing.assert_close(family.output(fresh, x), wrapped_out, rtol=0, atol=0)


def test_unwrap_restores_dense_trainable_model(family):
    original = {n: p.requires_grad for n, p in family.build().named_parameters()}
    model = lt.unwrap(lt.wrap(family.build(), lt.TicketConfig(density=0.1)))
    assert {n: p.requires_grad for n, p in model.named_parameters()} == original
    assert all((p != 0).float().mean() > 0.5 for p in model.parameters() if p.ndim >= 2)


class _TwoLayers(nn.Module):
    def __init__(self, reverse: bool) -> None:
        super().__init__()
        order = ["b", "a"] if reverse else ["a", "b"]
        for name in order:
            torch.manual_seed(1234 if reverse else 99)  # the model's own init must not matter
            setattr(self, name, nn.Linear(32, 32))

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.parametrize("weight_init", ["signed_constant", "kaiming_uniform", "kaiming_normal"])
def test_same_seed_same_weights_whatever_the_construction_order(weight_init):
    def weights(reverse, seed):
        model = lt.wrap(_TwoLayers(reverse), lt.TicketConfig(seed=seed, weight_init=weight_init))
        return {n: p for n, p in model.state_dict().items() if n.endswith("original")}

    first, second = weights(False, 5), weights(True, 5)
    assert list(first) != list(second)  # registration order really differs
    for name in first:
        assert torch.equal(first[name], second[name]), name
    other = weights(False, 6)
    assert all(not torch.equal(first[n], other[n]) for n in first)


def test_signed_constant_scale_follows_kept_fan_in():
    layer = lt.wrap(nn.Linear(100, 10), lt.TicketConfig(density=0.25, seed=0))
    weight = layer.parametrizations.weight.original
    assert torch.allclose(weight.abs(), torch.full_like(weight, math.sqrt(2.0) / math.sqrt(0.25 * 100)))


def test_keep_masks_the_weights_the_model_holds():
    layer = nn.Linear(20, 20)
    before = layer.weight.detach().clone()
    lt.wrap(layer, lt.TicketConfig(weight_init="keep", density=0.5))
    assert torch.equal(layer.parametrizations.weight.original, before)



@pytest.mark.parametrize("scope", ["layer", "global"])
def test_magnitude_scores_start_the_search_at_torch_magnitude_pruning(family, scope):
    import torch.nn.utils.prune as prune

    model = family.build()
    names = list(lt.masks(lt.wrap(copy.deepcopy(model), lt.TicketConfig(weight_init="keep"))))
    params = dict(model.named_parameters())
    sizes = torch.randperm(sum(params[n].numel() for n in names)) + 1.0  # distinct: no tie decides the masks
    with torch.no_grad():
        for name, chunk in zip(names, sizes.split([params[n].numel() for n in names])):
            params[name].copy_((chunk * torch.randn(chunk.shape).sign()).view_as(params[name]))
    reference = copy.deepcopy(model)
    ours = lt.masks(lt.wrap(model, lt.TicketConfig(density=0.3, scope=scope, weight_init="keep",
                                                   score_init="magnitude")))
    modules = dict(reference.named_modules())
    targets = {name: (modules[name.rpartition(".")[0]], name.rpartition(".")[2]) for name in ours}
    pruned = {name: mask.numel() - int(mask.sum()) for name, mask in ours.items()}
    if scope == "layer":
        for name, (module, param) in targets.items():
            prune.l1_unstructured(module, param, amount=pruned[name])
    else:
        prune.global_unstructured(list(targets.values()), prune.L1Unstructured, amount=sum(pruned.values()))
    for name, (module, param) in targets.items():
        assert torch.equal(ours[name], getattr(module, f"{param}_mask").bool()), name


def test_ties_do_not_change_the_kept_count():
    layer = lt.wrap(nn.Linear(64, 64), lt.TicketConfig(density=0.1))
    with torch.no_grad():
        layer.parametrizations.weight[0].scores.fill_(0.5)
    assert int(lt.masks(layer)["weight"].sum()) == round(0.1 * 64 * 64)


def _topk_by_position(values: torch.Tensor, k: int) -> torch.Tensor:
    """Reference: a stable full sort, ties kept in position order."""
    order = torch.sort(values, descending=True, stable=True).indices
    expected = torch.zeros_like(values, dtype=torch.bool)
    expected[order[:k]] = True
    return expected


@pytest.mark.parametrize("n", [1_000, 300_000])
def test_topk_mask_equals_a_full_sort(n):
    g = torch.Generator().manual_seed(0)
    smooth = torch.rand(n, generator=g)
    sample_misleads = torch.rand(n, generator=g)
    sample_misleads[_sample_positions(n)] = 0.0  # the bracket's sample sees only zeros: must fall back, still exact
    ties = torch.randint(0, 4, (n,), generator=g).float()  # thousands of ties at the threshold
    for values in (smooth, sample_misleads, ties, -smooth.sort().values):
        for k in (1, n // 20, n // 2, n - 1):
            assert torch.equal(topk_mask(values, k), _topk_by_position(values, k)), (n, k)


def test_topk_mask_with_a_hint_stays_exact_and_learns_the_threshold():
    g = torch.Generator().manual_seed(1)
    n, k = 200_000, 20_000
    values = torch.rand(n, generator=g)
    hint = ThresholdHint()
    for step in range(6):  # drifting values: the hint brackets the next threshold
        values = values + 0.002 * torch.randn(n, generator=g)
        assert torch.equal(topk_mask(values, k, hint), _topk_by_position(values, k)), step
        assert hint.threshold == float(values.sort().values[n - k])
        assert math.isfinite(hint.expected_band()) or step == 0
    assert hint.expected_band() < 0.01 * n  # the sample's bracket would hold ~3% of the values
    far = ThresholdHint(threshold=5.0, moved=1e-6, crowding=1e9)  # confidently wrong
    assert torch.equal(topk_mask(values, k, far), _topk_by_position(values, k))
    ties = torch.randint(0, 4, (n,), generator=g).float()
    tied = ThresholdHint(threshold=2.0, moved=0.0, crowding=1.0)  # bracket [2, 2]: a band of ties
    assert torch.equal(topk_mask(ties, k, tied), _topk_by_position(ties, k))


def test_masked_weight_follows_scores_and_weight_and_refuses_a_stale_graph():
    layer = lt.wrap(nn.Linear(64, 64, bias=False), lt.TicketConfig(density=0.2, seed=0))
    x = torch.randn(4, 64)
    stale = layer(x).square().sum()
    with torch.no_grad():
        lt.score_parameters(layer)[0].mul_(-1).add_(torch.randn(64, 64))
    assert torch.equal(layer.weight, layer.parametrizations.weight.original * lt.masks(layer)["weight"])
    with pytest.raises(RuntimeError, match="modified by an inplace operation|modified inplace"):
        stale.backward()
    with torch.no_grad():  # e.g. load_state_dict into a wrapped model writes the weight in place
        layer.parametrizations.weight.original.mul_(2)
    assert torch.equal(layer.weight, layer.parametrizations.weight.original * lt.masks(layer)["weight"])


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_a_deep_copy_of_a_wrapped_model_shares_no_cached_mask(scope):
    import copy

    net = lt.wrap(nn.Sequential(nn.Linear(16, 16), nn.Linear(16, 8)), lt.TicketConfig(density=0.3, scope=scope))
    x = torch.randn(4, 16)
    before = net(x)
    twin = copy.deepcopy(net)
    with torch.no_grad():
        for scores in lt.score_parameters(net):
            scores.copy_(torch.randn_like(scores))
    assert not torch.equal(net(x), before)
    assert torch.equal(twin(x), before)
    assert lt.density(twin).kept == lt.density(net).kept


def test_global_mask_follows_another_layers_scores():
    net = lt.wrap(nn.Sequential(nn.Linear(32, 32), nn.Linear(32, 32)), lt.TicketConfig(density=0.3, scope="global"))
    before = net[1].weight.clone()
    with torch.no_grad():
        net[0].parametrizations.weight[0].scores.mul_(100)  # layer 0 takes nearly every slot
    assert lt.density(net).per_layer["1.weight"] < 0.1
    assert torch.equal(net[1].weight, net[1].parametrizations.weight.original * lt.masks(net)["1.weight"])
    assert not torch.equal(net[1].weight, before)


def test_sync_free_topk_used_on_accelerators_is_exact_on_the_cpu_too():
    g = torch.Generator().manual_seed(2)
    n = 50_000
    for values in (torch.rand(n, generator=g), torch.randint(0, 4, (n,), generator=g).float()):
        for k in (1, n // 10, n // 2, n - 1):
            assert torch.equal(_topk_mask_without_sync(values, k), _topk_by_position(values, k)), k


def test_topk_mask_on_cuda_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    values = torch.randint(0, 50, (200_000,)).float()
    for k in (1, 12_345, 199_999):
        assert torch.equal(topk_mask(values.cuda(), k).cpu(), _topk_by_position(values, k))


def test_straight_through_gradient_is_grad_times_weight_times_sign():
    layer = lt.wrap(nn.Linear(6, 3, bias=False), lt.TicketConfig(density=0.5, seed=0))
    x = torch.randn(5, 6)
    layer(x).sum().backward()
    scores = layer.parametrizations.weight[0].scores
    weight = layer.parametrizations.weight.original
    grad_masked_weight = torch.ones(5, 3).T @ x
    torch.testing.assert_close(scores.grad, grad_masked_weight * weight * scores.sign())


def test_scores_get_updated_and_mask_follows():
    layer = lt.wrap(nn.Linear(32, 32), lt.TicketConfig(density=0.1))
    opt = torch.optim.SGD(lt.score_parameters(layer), lr=10.0)
    first = lt.masks(layer)["weight"]
    layer(torch.randn(8, 32)).square().sum().backward()
    opt.step()
    assert not torch.equal(first, lt.masks(layer)["weight"])


def test_target_and_exclude_modules_select_by_name_suffix_and_regex():
    from lt_plugins.models import DCGANGenerator

    def masked(**kw):
        return sorted(lt.masks(lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=16), lt.TicketConfig(**kw))))

    assert masked() == ["main.0.weight", "main.3.weight", "main.6.weight"]
    assert masked(target_modules=["main.3"]) == ["main.3.weight"]
    assert masked(target_modules=r"main\.[03]") == ["main.0.weight", "main.3.weight"]
    assert masked(exclude_modules=["6"]) == ["main.0.weight", "main.3.weight"]
    assert "main.0.bias" not in masked(mask_bias=True)  # DCGAN convs have no bias


def test_mask_bias_masks_biases_too():
    model = lt.wrap(nn.Linear(10, 10), lt.TicketConfig(mask_bias=True, density=0.3))
    assert sorted(lt.masks(model)) == ["bias", "weight"]
    assert int(lt.masks(model)["bias"].sum()) == 3


def test_wrap_and_merge_on_cuda_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    cpu = lt.wrap(nn.Linear(16, 16), lt.TicketConfig(seed=4))
    gpu = lt.wrap(nn.Linear(16, 16).cuda(), lt.TicketConfig(seed=4))
    assert torch.equal(lt.masks(cpu)["weight"], lt.masks(gpu)["weight"].cpu())
    assert torch.equal(cpu.parametrizations.weight.original, gpu.parametrizations.weight.original.cpu())
