"""`TicketConfig`: every knob of a ticket, validated, with a JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

SCOPES = ("layer", "global")
WEIGHT_INITS = ("signed_constant", "kaiming_uniform", "kaiming_normal", "keep")
SCORE_INITS = ("uniform", "kaiming_uniform", "magnitude")


def _as_name_list(field_name: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        if not value:
            raise ValueError(
                f"TicketConfig.{field_name}=[] selects nothing; pass None to use the defaults "
                "or list module names, suffixes or regexes."
            )
        return list(value)
    raise ValueError(
        f"TicketConfig.{field_name}={value!r} is not valid; pass a module name, a suffix, a regex, "
        "or a list of them."
    )


@dataclass
class TicketConfig:
    """How a ticket is drawn: density, ranking scope, seed, weight/score init and targets.

    Like PEFT configs, the fields are the documentation (see each field's ``help``).

    Example:
        >>> import lt_plugins as lt
        >>> cfg = lt.TicketConfig(density=0.1, seed=0, exclude_modules=["fc_out"])
        >>> lt.TicketConfig.from_json(cfg.to_json()) == cfg
        True
    """

    density: float = field(
        default=0.1, metadata={"help": "Fraction of each masked weight tensor that is kept, 0 < d <= 1."}
    )
    scope: str = field(
        default="layer",
        metadata={"help": "'layer': keep the top density*n scores of every tensor; "
                  "'global': rank all targeted scores together, so small layers can keep more (at 10% "
                  "on the MNIST DCGAN it beat per-layer by a wide margin; README, Results)."},
    )
    seed: int = field(default=0, metadata={"help": "Seed the frozen weights and the scores are drawn from."})
    weight_init: str = field(
        default="signed_constant",
        metadata={"help": "'signed_constant' (±gain/sqrt(fan_in)), 'kaiming_uniform', 'kaiming_normal', "
                  "or 'keep' to mask the weights the model already holds (a pretrained base)."},
    )
    score_init: str = field(
        default="uniform",
        metadata={"help": "'uniform' (U(-0.1, 0.1), the reference default), 'kaiming_uniform', or 'magnitude' "
                  "(each weight's |value|: the search starts from magnitude pruning, layer by layer or, in "
                  "global scope, over all targeted weights; for a pretrained base, weight_init='keep')."},
    )
    scale_fan: bool | None = field(
        default=None,
        metadata={"help": "True: draw weights with the scale of the kept fan-in, gain/sqrt(density*fan_in), so "
                  "activations keep their size once the mask removes 1-density of the inputs; False: "
                  "gain/sqrt(fan_in). None: the model family's default (False for diffusers UNets, whose "
                  "GroupNorms re-normalise; True otherwise)."},
    )
    target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Modules whose weights are masked: exact names, name suffixes or regexes. None (with "
                  "exclude_modules None): the model family's defaults (lt_plugins.adapters), which for a "
                  "generic nn.Module is every floating `weight` with ndim >= 2 outside embedding tables."},
    )
    exclude_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Modules never masked, matched like target_modules. Setting either list replaces "
                  "the family's defaults: target_modules=None then means every weight."},
    )
    mask_bias: bool = field(default=False, metadata={"help": "Also mask the biases of targeted modules."})
    family: str | None = field(
        default=None,
        metadata={"help": "Model family whose defaults apply (targets, scale_fan, learning rates): 'dcgan', "
                  "'stylegan', 'unet', 'diffusers', 'timm' or 'torch' (generic). None: recognised from the model, "
                  "by class or by structure (mapping + synthesis networks or modulated convolutions: stylegan; "
                  "forward(x, t) with a time embedding: unet; a transposed-convolution stack: dcgan)."},
    )

    def __post_init__(self) -> None:
        d = self.density
        if isinstance(d, bool) or not isinstance(d, (int, float)) or math.isnan(d) or not 0 < d <= 1:
            raise ValueError(
                f"TicketConfig.density={d!r} is not valid; it is the fraction of weights kept and must be "
                "a number with 0 < density <= 1 (e.g. 0.1 keeps 10%)."
            )
        self.density = float(d)
        for name, allowed in (("scope", SCOPES), ("weight_init", WEIGHT_INITS), ("score_init", SCORE_INITS)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"TicketConfig.{name}={getattr(self, name)!r} is not valid; choose one of {list(allowed)}."
                )
        if self.score_init == "magnitude" and self.weight_init == "signed_constant":
            raise ValueError(
                "TicketConfig(score_init='magnitude') ranks weights by size, but signed_constant weights all have "
                "the same size in a layer; use weight_init='keep' (a pretrained base) or "
                "'kaiming_normal'/'kaiming_uniform'."
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"TicketConfig.seed={self.seed!r} is not valid; use an integer in [0, 2**63).")
        if not isinstance(self.mask_bias, bool):
            raise ValueError(f"TicketConfig.mask_bias={self.mask_bias!r} is not valid; use True or False.")
        if self.scale_fan is not None and not isinstance(self.scale_fan, bool):
            raise ValueError(
                f"TicketConfig.scale_fan={self.scale_fan!r} is not valid; use True, False, or None for the "
                "model family's default."
            )
        if self.family is not None and (not isinstance(self.family, str) or not self.family):
            raise ValueError(
                f"TicketConfig.family={str(self.family)[:80]!r} is not valid; name a family (e.g. 'stylegan') or "
                "pass None to recognise it from the model."
            )
        self.target_modules = _as_name_list("target_modules", self.target_modules)
        self.exclude_modules = _as_name_list("exclude_modules", self.exclude_modules)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TicketConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"TicketConfig got unknown fields {unknown}; known fields are {sorted(known)}.")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> TicketConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"TicketConfig JSON is malformed: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"TicketConfig JSON must be an object, got {type(data).__name__}.")
        return cls.from_dict(data)
