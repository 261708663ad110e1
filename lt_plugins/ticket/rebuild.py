"""`Ticket.apply`: rebuild the masked network, with every check made before the model is touched."""

from __future__ import annotations

import logging
import math
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..adapters import adapter_for, build_model, get_adapter
from ..adapters.base import class_path
from ..init import fingerprint
from ..masking import find_targets, is_wrapped, load_masks, masked_parameters, plan_weights, unwrap, wrap
from ..masking import masks as current_masks
from ..masking import merge as merge_masks
from .format import CONFIG_NAME, MAX_MODEL_VALUES, MAX_SPEC_ITEMS, TicketError, _check_names, _environment, dtype_name

if TYPE_CHECKING:
    from .core import Ticket

logger = logging.getLogger("lt_plugins.ticket")


def apply_ticket(
    ticket: Ticket, model: nn.Module | None = None, *, merge: bool = False, allow_remote_code: bool = False
) -> nn.Module:
    """`Ticket.apply`: wrap ``model`` (or one built from the spec), check it, load masks and remainder.

    Example:
        >>> import lt_plugins as lt
        >>> gen = lt.wrap(torch.nn.Linear(4, 4), lt.TicketConfig(density=0.5))
        >>> rebuilt = apply_ticket(lt.Ticket.from_model(gen), torch.nn.Linear(4, 4), merge=True)
        >>> int((rebuilt.weight != 0).sum())
        8
    """
    if model is None:
        model = _fresh_model(ticket, allow_remote_code)
    mismatched = _check_model(ticket, model)
    snapshot = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    try:
        _load_into(ticket, model, mismatched)
    except BaseException:
        if is_wrapped(model):
            unwrap(model)
        model.load_state_dict(snapshot)
        raise
    return merge_masks(model) if merge else model


def _remainder(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every state_dict entry that is not a masked weight or its scores, copied to the CPU."""
    skip = {key for entry in masked_parameters(model).values() for key in (entry.original_key, entry.scores_key)}
    out = {}
    for key, value in model.state_dict().items():
        if key in skip:
            continue
        if not isinstance(value, torch.Tensor):
            raise TicketError(
                f"{type(model).__name__}.state_dict() entry {key!r} is a {type(value).__name__}, not a tensor; "
                "a ticket stores tensors only (safetensors)."
            )
        out[key] = value.detach().to("cpu").clone().contiguous()
    return out


def _fresh_model(ticket: Ticket, allow_remote_code: bool) -> nn.Module:
    """What apply() masks when given no model: the base from the Hub, or a model built from the spec."""
    if ticket.config.weight_init == "keep" and ticket.base is None and not ticket.portable:
        raise TicketError(
            f"This ticket masks the weights of a pretrained {ticket.spec['class']} (weight_init='keep') but records "
            "no base repo to load them from: pass that model, ticket.apply(model). To record the base, make the "
            "ticket with Ticket.from_model(model, base='owner/name')."
        )
    try:
        if ticket.base is not None:
            logger.info("Loading the pretrained base of the ticket: %s", ticket.base)
            return get_adapter(ticket.spec["family"]).load_base(ticket.spec, ticket.base)
        _check_spec_before_building(ticket, allow_remote_code)
        return build_model(ticket.spec, allow_remote_code=allow_remote_code)
    except ValueError as err:
        raise TicketError(str(err)) from err

def _check_model(ticket: Ticket, model: nn.Module) -> set[str]:
    """Every check that can fail, before the model is touched. Returns the tensors whose
    fingerprint differs (only possible for portable tickets; otherwise that raises)."""
    if not isinstance(model, nn.Module):
        raise TicketError(
            f"apply() takes an nn.Module (a fresh instance of {ticket.spec['class']}), got {type(model).__name__}."
        )
    if is_wrapped(model):
        raise TicketError(
            f"{type(model).__name__} is already wrapped with masks; pass a fresh instance (or lt.unwrap it first)."
        )
    adapter = get_adapter(ticket.spec["family"])
    natural = adapter_for(model, ticket.config.family)
    if natural.family != adapter.family:
        raise TicketError(
            f"This ticket is for a {ticket.spec['family']} model ({ticket.spec['class']}); got "
            f"{class_path(model)} ({natural.family} family)."
        )
    diffs = adapter.differences(ticket.spec, model)
    if diffs:
        raise TicketError(f"The model's architecture differs from the ticket's: {'; '.join(diffs)}.")
    try:
        targets = find_targets(model, ticket.config)
    except ValueError as err:
        raise TicketError(f"The ticket's targets do not fit this model: {err}") from err
    params = {
        (f"{m}.{p}" if m else p): (module, p) for m, module, p in targets
    }
    _check_names("Masked tensors of the ticket and of the model", set(ticket.masks), set(params), "the model")
    for name, (module, p) in params.items():
        shape = tuple(module._parameters[p].shape)
        if shape != tuple(ticket.masks[name].shape):
            raise TicketError(
                f"Shape of {name!r} differs: ticket {tuple(ticket.masks[name].shape)}, model {shape}. "
                f"The model was built with another config than the ticket's ({ticket.spec.get('config')})."
            )
        _check_dtype(name, ticket.weight_dtypes[name], module._parameters[p].dtype)
    state = {k: v for k, v in model.state_dict().items() if k not in params}
    _check_names(
        "Dense (unmasked) tensors of the ticket and of the model", set(ticket.remainder), set(state), "the model"
    )
    for key, value in state.items():
        if tuple(value.shape) != tuple(ticket.remainder[key].shape):
            raise TicketError(
                f"Shape of {key!r} differs: ticket {tuple(ticket.remainder[key].shape)}, model {tuple(value.shape)}."
            )
        _check_dtype(key, dtype_name(ticket.remainder[key].dtype), value.dtype)
    if ticket.kept_weights is not None:
        for name, (module, p) in params.items():
            if not module._parameters[p].is_floating_point():
                raise TicketError(f"{name!r} is not a floating tensor in this model; it cannot take kept weights.")

    mismatched = []
    for planned in plan_weights(model, ticket.config, ticket.weight_scales):
        param = planned.module._parameters[planned.param_name]
        drawn = planned.draw(ticket.config)
        here = fingerprint(param if drawn is None else drawn.to(param.dtype))
        if here != ticket.fingerprints[planned.name]:
            mismatched.append((planned.name, here))
    if mismatched and ticket.kept_weights is None:
        raise TicketError(_fingerprint_message(ticket, mismatched, len(params)))
    if mismatched:
        warnings.warn(
            f"{len(mismatched)} of {len(params)} weights regenerated here differ from the ticket's (first: "
            f"{mismatched[0][0]!r}); this portable ticket's stored kept weights are used instead, so the "
            "masked network is still exact.",
            stacklevel=3,
        )
    return {name for name, _ in mismatched}

@staticmethod
def _check_dtype(name: str, theirs: str, ours: torch.dtype) -> None:
    if theirs != dtype_name(ours):
        raise TicketError(
            f"dtype of {name!r} differs: ticket {theirs}, model {dtype_name(ours)}. Apply the ticket to a "
            f"model in {theirs}, then convert the result (e.g. model.to(torch.{dtype_name(ours)}))."
        )

def _fingerprint_message(ticket: Ticket, mismatched: list[tuple[str, str]], total: int) -> str:
    name, here = mismatched[0]
    differ = (
        f"sha256 {here[:16]}... here, {ticket.fingerprints[name][:16]}... in the ticket "
        f"({len(mismatched)} of {total} masked tensors differ)"
    )
    if ticket.config.weight_init == "keep":
        return f"Weight {name!r} of the model is not the one the ticket was made on: {differ}. {_keep_hint(ticket)}"
    theirs_env, ours_env = ticket.created_with, _environment()
    where = (
        f"The ticket was made with torch {theirs_env.get('torch', '?')} on {theirs_env.get('platform', '?')}; "
        f"this is torch {ours_env['torch']} on {ours_env['platform']}."
    )
    if (theirs_env.get("torch"), theirs_env.get("platform")) == (ours_env["torch"], ours_env["platform"]):
        cause = (
            "Torch and platform are the same, so the ticket's seed or fingerprints were changed after saving, "
            "or it was made from weights the seed does not give. Re-save it from the model it came from, or "
            "use a portable ticket (Ticket.from_model(model, portable=True)), which stores the kept weights."
        )
    else:
        cause = (
            "Random streams can differ across torch versions and platforms. To proceed, use a portable "
            "ticket (Ticket.from_model(model, portable=True) stores the kept weight values), or install "
            f"torch {theirs_env.get('torch', '?')}."
        )
    return (
        f"Weight {name!r} regenerated from seed {ticket.config.seed} ({ticket.config.weight_init}) does not match the "
        f"ticket: {differ}. {where} {cause}"
    )

def _keep_hint(ticket: Ticket) -> str:
    if ticket.base is None:
        return (
            "This ticket masks the weights the model already held (weight_init='keep'), so pass the model "
            "with exactly those base weights, or use a portable ticket."
        )
    return (
        f"This ticket masks the pretrained weights of its base {ticket.base} (weight_init='keep'): call apply() "
        "with no model to load that revision from the Hub, or pass a model loaded from exactly that revision."
    )

def _load_into(ticket: Ticket, model: nn.Module, mismatched: set[str]) -> None:
    wrap(model, ticket.config, weight_scales=ticket.weight_scales)
    entries = masked_parameters(model)
    if ticket.kept_weights is not None:
        with torch.no_grad():
            for name, entry in entries.items():
                weight, kept = entry.original, ticket.masks[name].to(entry.original.device)
                weight[kept] = ticket.kept_weights[name].to(weight.device, weight.dtype)
    try:
        load_masks(model, ticket.masks)
    except ValueError as err:
        raise TicketError(f"The ticket's masks do not fit this model: {err}") from err
    result = model.load_state_dict(ticket.remainder, strict=False)
    masked_keys = {key for entry in entries.values() for key in (entry.original_key, entry.scores_key)}
    if result.unexpected_keys or set(result.missing_keys) - masked_keys:
        raise TicketError(
            f"Loading the dense remainder left {sorted(set(result.missing_keys) - masked_keys)[:5]} unset and "
            f"{sorted(result.unexpected_keys)[:5]} unused; the ticket does not fit this model."
        )
    # The checks that prove the rebuild: the very masks, and the very weights.
    now = current_masks(model)
    for name, mask in ticket.masks.items():
        if not torch.equal(now[name].cpu(), mask):
            raise TicketError(f"Internal error: the mask of {name!r} did not reproduce; please report this.")
        if name not in mismatched:
            got = fingerprint(entries[name].original)
            if got != ticket.fingerprints[name]:
                raise TicketError(_fingerprint_message(ticket, [(name, got)], len(ticket.masks)))



def _check_spec_values(value: Any, where: str, budget: list[int]) -> None:
    """Types and ranges of a model spec's config: plain JSON, sizes never negative, finite numbers, bounded."""
    budget[0] -= 1
    if budget[0] < 0:
        raise TicketError(f"model spec config has more than {MAX_SPEC_ITEMS} values; it is not a model config.")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if value < 0:
            raise TicketError(
                f"model spec {where} is {value}: sizes and counts cannot be negative. The ticket's {CONFIG_NAME} "
                "was edited or is corrupt; download or copy it again, or pass the model to apply(model)."
            )
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise TicketError(f"model spec {where} is {value}; a model config holds finite numbers.")
    elif isinstance(value, str):
        if len(value) > 1024:
            raise TicketError(f"model spec {where} is a string of {len(value)} characters; not a model config value.")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_spec_values(item, f"{where}[{i}]", budget)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_spec_values(item, f"{where}.{key}", budget)
    else:
        raise TicketError(f"model spec {where} is a {type(value).__name__}; a model config holds JSON values.")


def _check_spec_before_building(ticket: Ticket, allow_remote_code: bool) -> None:
    """What apply() checks before it builds a model from the ticket's (unhashed) spec.

    The spec's values (types, ranges); then the model is built on the meta device, where no
    memory is allocated, and its size must equal what the ticket's hashed files hold (masked
    weights plus dense remainder) and stay under ``MAX_MODEL_VALUES``: an edited spec can
    never make apply() allocate a model the ticket's files do not describe.
    """
    _check_spec_values(ticket.spec.get("config") or {}, "config", [MAX_SPEC_ITEMS])
    held = sum(m.numel() for m in ticket.masks.values()) + sum(t.numel() for t in ticket.remainder.values())
    if held > MAX_MODEL_VALUES:
        raise TicketError(
            f"This ticket describes a model of {held:,} values, more than the {MAX_MODEL_VALUES:,} apply() builds "
            "(LT_PLUGINS_MAX_MODEL_VALUES raises the limit); pass the model yourself: ticket.apply(model)."
        )
    try:
        with torch.device("meta"):
            shell = build_model(ticket.spec, allow_remote_code=allow_remote_code)
    except ValueError as err:
        raise TicketError(str(err)) from err
    except Exception as err:  # a constructor that cannot run on the meta device: refuse, don't allocate
        if allow_remote_code:
            # The caller trusts this ticket's code; public constructors often compute on their buffers
            # (StyleGAN2-ADA's filters), which the meta device cannot. The real build's shapes are checked.
            return
        raise TicketError(
            f"The model spec {ticket.spec['class']} with config {str(ticket.spec.get('config'))[:200]} cannot be "
            f"built ({type(err).__name__}: {' '.join(str(err).split())[:200]}); pass the model: ticket.apply(model)."
        ) from err
    size = sum(t.numel() for t in shell.state_dict().values())
    if size != held and ticket.spec.get("config") is None:
        raise TicketError(
            f"The ticket records no constructor arguments for {ticket.spec['class']} (the model kept no `config` "
            f"dict), and built with its defaults it has {size:,} values where the ticket's masks and dense remainder "
            f"hold {held:,}: the ticket was searched on one built with other arguments. Build it as its author did "
            "and pass it: ticket.apply(MyModel(...)) (CLI: --model-kwargs '{...}' gives its arguments). A class "
            "that keeps its arguments as `self.config = {...}` is rebuilt from the ticket alone."
        )
    if size != held:
        raise TicketError(
            f"The model spec describes a {ticket.spec['class']} of {size:,} values, but the ticket's masks and dense "
            f"remainder hold {held:,}: {CONFIG_NAME}'s model spec does not belong to this ticket (edited or "
            "corrupt). Download or copy the ticket again, or pass the model: ticket.apply(model)."
        )

