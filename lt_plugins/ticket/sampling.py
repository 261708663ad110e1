"""What a ticket records about sampling its model: the generator call, a latent prior, and the format
version they need.

A GAN's ticket records how its generator is called (``generator_call``: latent shape, an importable
``generate``) and, when the latents are not N(0, 1), their prior; a UNet's records its starting noise's
prior in its ``objective`` (`lt_plugins.objectives.DenoisingObjective`'s ``prior``). A ticket with a
prior is written as format 4, so that an older reader refuses it rather than sample it wrongly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..generate import LatentCall, LatentMixture
from .format import FORMAT_VERSION, _fail


def written_format_version(call: LatentCall | None, objective: Any = None) -> int:
    """The version a ticket is written as: 4 only when it records a latent prior (in its generator call, or
    a UNet's in its objective), else 3. Versions of lt_plugins before priors then still read every ticket
    they can sample right, and refuse (asking for an upgrade) one they would sample with N(0, 1) latents
    instead of its prior."""
    in_objective = isinstance(objective, dict) and objective.get("prior") is not None
    return FORMAT_VERSION if in_objective or (call is not None and call.prior is not None) else 3


def _parse_call(data: dict) -> LatentCall | None:
    """The recorded ``generator_call`` (latent shape, importable generate path), if any."""
    call = data.get("generator_call")
    if call is None:
        return None
    if not isinstance(call, dict) or not isinstance(call.get("latent_shape"), list):
        raise _fail("'generator_call'", "must be an object with a 'latent_shape' list.")
    generate = call.get("generate")
    if generate is not None and not isinstance(generate, str):
        raise _fail("'generator_call'.'generate'", "must be a 'module:function' string or null.")
    prior = parse_prior(call.get("prior"), "'generator_call'.'prior'")
    try:
        return LatentCall(tuple(call["latent_shape"]), generate, prior)
    except (TypeError, ValueError) as err:
        raise _fail("'generator_call'", f"is invalid: {err}") from err


def parse_prior(record: Any, where: str) -> LatentMixture | None:
    """The `LatentMixture` a ticket records at ``where`` (its ``to_dict()``), or None; a malformed record is refused.

    Example:
        >>> parse_prior({"components": 10, "separation": 0.8, "seed": 0}, "'objective'.'prior'").components
        10
    """
    if record is None:
        return None
    fields = [f.name for f in dataclasses.fields(LatentMixture)]
    if not isinstance(record, dict) or set(record) != set(fields):
        raise _fail(where, f"must be an object with exactly the keys {fields}.")
    try:
        return LatentMixture(**record)
    except (TypeError, ValueError) as err:
        raise _fail(where, f"is invalid: {err}") from err


def _parse_objective(data: dict) -> Any:
    """The recorded ``objective``, as written; a prior it records (a UNet's starting noise) must be valid."""
    objective = data.get("objective")
    if isinstance(objective, dict):
        parse_prior(objective.get("prior"), "'objective'.'prior'")
    return objective
