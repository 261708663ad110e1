"""`wrap`, `merge`, `unwrap`: installing score masks as parametrizations, and taking them off.

`wrap` turns every targeted ``module.weight`` into ``weight * mask(scores)`` through
`torch.nn.utils.parametrize`, so any module that reads ``self.weight`` at forward time is
masked -- nn.Conv2d as much as a StyleGAN modulated conv that calls F.conv2d itself.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..adapters import recognise
from ..config import TicketConfig
from ..init import draw_scores
from .parametrization import ScoreMask, is_wrapped, masked_parameters
from .planning import PlannedWeight, plan_weights
from .selection import _GlobalTopK
from .targets import _full_name

logger = logging.getLogger("lt_plugins.masking")

_STATE_ATTR = "_lt_state"


@dataclass
class _WrapState:
    config: TicketConfig
    requires_grad: dict[str, bool]
    # Masked tensor name -> the scale its seeded draw took in place of 1/sqrt(fan_in) (see
    # lt_plugins.init.constructor_scale); tickets record it.
    weight_scales: dict[str, float] = field(default_factory=dict)


def _check_untied(model: nn.Module, plan: list[PlannedWeight]) -> None:
    """Refuse a targeted tensor that another module also holds (tied weights)."""
    owners: dict[int, list[str]] = {}
    for module_name, module in model.named_modules(remove_duplicate=False):
        for param_name, param in module._parameters.items():
            if param is not None:
                owners.setdefault(id(param), []).append(_full_name(module_name, param_name))
    for planned in plan:
        names = sorted(set(owners.get(id(planned.module._parameters[planned.param_name]), [])))
        if len(names) > 1:
            modules = [n.rpartition(".")[0] or n for n in names]
            raise ValueError(
                f"{planned.name} is one tensor shared by {names} (tied weights). A mask on one of them would leave the "
                f"others reading the unmasked tensor. Leave it dense in all of them: exclude_modules={modules}."
            )


def _warn_normalised(model: nn.Module, plan: list[PlannedWeight]) -> None:
    """Name the layers whose weight is reparametrised by weight or spectral norm: they stay dense."""
    planned = {id(p.module) for p in plan}
    normed = []
    for module_name, module in model.named_modules():
        if id(module) in planned:
            continue
        hooked = {"weight_g", "weight_v", "weight_orig"} & set(module._parameters)
        parametrized = parametrize.is_parametrized(module, "weight") and not any(
            isinstance(p, ScoreMask) for p in module.parametrizations["weight"]
        )
        if hooked or parametrized:
            normed.append(module_name or type(module).__name__)
    if normed:
        warnings.warn(
            f"lt.wrap leaves {len(normed)} weight- or spectral-normalised layer(s) dense and unmasked: {normed[:10]}. "
            "To mask them, remove the normalisation before wrapping (torch.nn.utils.remove_weight_norm / "
            "remove_spectral_norm, or parametrize.remove_parametrizations(module, 'weight')).",
            stacklevel=3,
        )


def _compiled_original(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile``d model wraps (masks go on it, under its own parameter names)."""
    original = getattr(model, "_orig_mod", None)
    if isinstance(original, nn.Module) and type(model).__name__ == "OptimizedModule":
        logger.info("lt.wrap: %s is torch.compile'd; wrapping its original module (compile the result again).",
                    type(original).__name__)
        return original
    return model


def wrap(
    model: nn.Module, config: TicketConfig | None = None, *, weight_scales: dict[str, float] | None = None
) -> nn.Module:
    """Freeze ``model`` at weights drawn from ``config.seed`` and put a score mask on its targets.

    What ``config`` leaves open -- the targets when neither ``target_modules`` nor
    ``exclude_modules`` is set, ``scale_fan`` when it is None -- comes from ``model``'s family
    (`lt_plugins.adapters`, recognised by class or by structure); the config so resolved is the
    one `wrap_config` returns and tickets record.

    Every targeted weight is re-drawn on the CPU in float32 from a generator keyed by
    (seed, parameter name) -- unless ``weight_init="keep"`` -- then moved to its device. Its
    scale is gain/sqrt(fan_in), except for a weight its layer rescales at run time (equalized
    learning rate: `lt_plugins.init.constructor_scale`), which keeps its constructor's scale,
    so the wrapped model behaves like the dense one at init. ``weight_scales`` is for tickets
    (`lt.Ticket.apply`), which record those scales. Every parameter of the model is frozen;
    the only trainable tensors afterwards are the scores (`score_parameters`), which stay
    float32 whatever the model is cast to. The model is changed in place and returned (for a
    ``torch.compile``d model: its original module). On any error, KeyboardInterrupt included,
    the model is left as it was. Tensors shared by several modules (tied weights) are refused.

    Example:
        >>> import lt_plugins as lt
        >>> gen = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 8))
        >>> gen = lt.wrap(gen, lt.TicketConfig(density=0.1, seed=0))
        >>> round(lt.density(gen).overall, 2)
        0.1
    """
    config = config if config is not None else TicketConfig()
    if not isinstance(config, TicketConfig):
        raise TypeError(f"config must be a lt_plugins.TicketConfig, got {type(config).__name__}.")
    if not isinstance(model, nn.Module):
        raise TypeError(f"wrap() takes an nn.Module, got {type(model).__name__}.")
    model = _compiled_original(model)
    if is_wrapped(model):
        raise ValueError(
            f"{type(model).__name__} is already wrapped with score masks. Call lt.unwrap(model) or "
            "lt.merge(model) first, or wrap a fresh instance."
        )
    adapter, reason = recognise(model, config.family)
    config = adapter.resolve(config, model)
    plan = plan_weights(model, config, weight_scales)
    _check_untied(model, plan)
    _warn_normalised(model, plan)

    total = sum(p.module._parameters[p.param_name].numel() for p in plan)
    # Draw everything before touching the model, so a failure leaves it as it was.
    drawn = []
    for planned in plan:
        param = planned.module._parameters[planned.param_name]
        weight = planned.draw(config)
        scores = draw_scores(config.score_init, param if weight is None else weight, planned.fan, config.seed,
                             planned.name)
        drawn.append((planned, weight, scores.to(param.device)))

    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    originals = {planned.name: planned.module._parameters[planned.param_name].detach().clone() for planned in plan}
    global_topk = _GlobalTopK(config.density) if config.scope == "global" else None
    try:
        with torch.no_grad():
            for planned, new_value, _ in drawn:
                if new_value is not None:
                    planned.module._parameters[planned.param_name].copy_(new_value)
        for param in model.parameters():
            param.requires_grad_(False)
        for planned, _, scores in drawn:
            mask = ScoreMask(scores, config.density, planned.name, global_topk)
            parametrize.register_parametrization(planned.module, planned.param_name, mask, unsafe=True)
        scales = {p.name: p.scale for p in plan if p.scale is not None}
        setattr(model, _STATE_ATTR, _WrapState(config, requires_grad, scales))
    except BaseException:
        _restore(model, plan, originals, requires_grad)
        raise
    logger.info(
        "lt.wrap: %s family (%s); %d tensors masked, %s weights, density %g (%s scope); weight scale: %s",
        adapter.family, reason, len(plan), f"{total:,}", config.density, config.scope,
        _describe_scales(config, plan),
    )
    if adapter.family == "torch" and config.family is None and not isinstance(model, _PLAIN_TORCH):
        logger.warning(
            "lt.wrap: %s is not recognised as a DCGAN, StyleGAN or UNet, so the generic defaults apply (every weight "
            "masked, scale_fan=True, score lr 0.1). If it is one of them, say so: TicketConfig(family='stylegan' | "
            "'unet' | 'dcgan').", type(model).__name__,
        )
    return model


# torch's own building blocks: the generic family is what anyone wrapping them expects.
_PLAIN_TORCH = (nn.Linear, nn.Sequential, nn.modules.conv._ConvNd)


def _describe_scales(config: TicketConfig, plan: list[PlannedWeight]) -> str:
    if config.weight_init == "keep":
        return "the model's own weights (weight_init='keep')"
    rule = "gain/sqrt(density*fan_in)" if config.scale_fan else "gain/sqrt(fan_in)"
    kept = [p for p in plan if p.scale is not None]
    if not kept:
        return rule
    return (f"{rule}; {len(kept)} tensor(s) rescaled at run time keep their constructor's scale "
            f"(e.g. {kept[0].name}: {kept[0].scale})")


def _restore(model: nn.Module, plan: list[PlannedWeight], originals: dict[str, torch.Tensor],
             requires_grad: dict[str, bool]) -> None:
    """Undo a `wrap` that stopped half way: parametrizations, weight values, trainability."""
    for planned in plan:
        if parametrize.is_parametrized(planned.module, planned.param_name):
            parametrize.remove_parametrizations(planned.module, planned.param_name, leave_parametrized=False)
        with torch.no_grad():
            planned.module._parameters[planned.param_name].copy_(originals[planned.name])
    for name, param in model.named_parameters():
        param.requires_grad_(requires_grad.get(name, param.requires_grad))
    if _STATE_ATTR in model.__dict__:
        delattr(model, _STATE_ATTR)


def wrapped_root(model: nn.Module) -> nn.Module:
    """The module `wrap` was called on: ``model`` itself, or the first submodule that was wrapped
    (a user's wrapper module may hold the wrapped generator anywhere inside it).

    Example:
        >>> import lt_plugins as lt
        >>> inner = lt.wrap(nn.Linear(4, 4))
        >>> wrapped_root(nn.Sequential(nn.Identity(), inner)) is inner
        True
    """
    for module in model.modules():
        if _STATE_ATTR in module.__dict__:
            return module
    raise ValueError(
        f"{type(model).__name__} is not wrapped and holds no wrapped module; call lt.wrap(generator, config) first."
    )


def weight_scales(model: nn.Module) -> dict[str, float]:
    """Masked tensor name -> the scale its seeded draw took in place of 1/sqrt(fan_in) (see `wrap`).

    Example:
        >>> import lt_plugins as lt
        >>> weight_scales(lt.wrap(nn.Linear(4, 4)))
        {}
    """
    return dict(getattr(wrapped_root(model), _STATE_ATTR).weight_scales)


def wrap_config(model: nn.Module) -> TicketConfig:
    """The TicketConfig ``model`` was wrapped with, with its family's defaults filled in.

    Example:
        >>> import lt_plugins as lt
        >>> from diffusers import UNet2DModel
        >>> unet = UNet2DModel(sample_size=8, block_out_channels=(8, 8), norm_num_groups=4,
        ...                    down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2)
        >>> wrap_config(lt.wrap(unet, lt.TicketConfig(density=0.2))).scale_fan
        False
    """
    return getattr(wrapped_root(model), _STATE_ATTR).config


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a class of its own before its parametrizations are removed.

    torch makes one ``Parametrized<Class>`` per parametrized module and removing a parametrization
    deletes the property from that class; ``copy.deepcopy`` shares the class between the copy and
    the original, so merging a copy used to strip ``weight`` from the original as well.
    """
    cls = type(module)
    namespace = {k: v for k, v in cls.__dict__.items() if k not in ("__dict__", "__weakref__")}
    module.__class__ = type(cls.__name__, cls.__bases__, namespace)


def _remove_masks(model: nn.Module, keep_masked_values: bool) -> nn.Module:
    state = getattr(model, _STATE_ATTR, None)
    if state is None:
        raise ValueError(f"{type(model).__name__} is not wrapped; there are no masks to remove.")
    entries = list(masked_parameters(model).values())
    for module in {id(e.module): e.module for e in entries}.values():
        _own_class(module)
    for entry in entries:
        parametrize.remove_parametrizations(entry.module, entry.param_name, leave_parametrized=keep_masked_values)
    for name, param in model.named_parameters():
        param.requires_grad_(state.requires_grad.get(name, param.requires_grad))
    delattr(model, _STATE_ATTR)
    return model


def merge(model: nn.Module) -> nn.Module:
    """Bake the masks into plain weights and remove the parametrizations (in place).

    The result is an ordinary module of the original class: its state_dict loads into a
    fresh, never-wrapped instance.

    Example:
        >>> import lt_plugins as lt
        >>> gen = lt.wrap(nn.Linear(8, 8), lt.TicketConfig(density=0.5))
        >>> x = torch.randn(2, 8)
        >>> y = gen(x)
        >>> torch.equal(lt.merge(gen)(x), y)
        True
    """
    return _remove_masks(model, keep_masked_values=True)


def unwrap(model: nn.Module) -> nn.Module:
    """Remove the masks and keep the dense (seeded) weights; trainability is restored (in place).

    Example:
        >>> import lt_plugins as lt
        >>> gen = lt.unwrap(lt.wrap(nn.Linear(8, 8)))
        >>> gen.weight.requires_grad
        True
    """
    return _remove_masks(model, keep_masked_values=False)
