"""`Ticket`: mask bits + seed + config -- saved, loaded, shared on the Hub, and applied with checks.

A ticket folder (the same on disk and on the Hub):

- ``ticket_config.json``: format version, the lt_plugins/torch/python versions and platform
  that made it, the model spec, the `TicketConfig` (seed, init, density, scope, targets),
  the pretrained base of a ticket on one (Hub repo id, commit sha, subfolder; see
  `lt_plugins.base_model`), one entry per masked tensor (name, shape, dtype, kept count,
  sha256 fingerprint of its regenerated weights), the size and sha256 of every binary file,
  objective and metrics.
- ``masks.safetensors``: one uint8 tensor per masked weight, its mask flattened in row-major
  order and packed 8 bits a byte, least significant bit first (``numpy.packbits(...,
  bitorder="little")``); padding bits are zero.
- ``remainder.safetensors``: every other state_dict entry of the model, as values (biases,
  norm parameters, running statistics, learned constants, noise strengths).
- ``kept_weights.safetensors`` (portable tickets only): the values of the kept weights,
  per tensor in mask order, for rebuilds where the seed's random stream differs.
- ``README.md``: a model card; ``samples.png`` when samples were given.

Loading reads JSON and safetensors only (nothing is unpickled) and checks every size, hash,
shape and bit count before a model is touched.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import platform
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.nn.utils import parametrize

from .adapters import adapter_for, build_model, check_spec, get_adapter
from .adapters.base import class_path
from ._io import atomic_folder, wait_for_folder
from .base_model import BaseModel, ticket_base
from .config import TicketConfig
from .generate import LatentCall
from .init import fingerprint
from .masking import ScoreMask, find_targets, is_wrapped, plan_weights, unwrap, weight_scales, wrap, wrap_config
from .masking import wrapped_root
from .masking import masks as current_masks
from .masking import merge as merge_masks

FORMAT = "lt_plugins.ticket"
# 2 added "base", the pretrained base of a weight_init="keep" ticket; version 1 tickets have none.
FORMAT_VERSION = 2
CONFIG_NAME = "ticket_config.json"
MASKS_NAME = "masks.safetensors"
REMAINDER_NAME = "remainder.safetensors"
KEPT_NAME = "kept_weights.safetensors"
CARD_NAME = "README.md"
SAMPLES_NAME = "samples.png"
TICKET_FILES = (CONFIG_NAME, MASKS_NAME, REMAINDER_NAME, KEPT_NAME, CARD_NAME, SAMPLES_NAME)
BIT_ORDER = "little"
# Scores set by apply(): kept weights 1 + floor, dropped ones floor. The floor keeps every
# score positive, so a search continued from an applied ticket has a gradient sign everywhere.
SCORE_FLOOR = 0.01
MAX_CONFIG_BYTES = 64 * 2**20
# Bounds on what a loaded ticket may make this process read or allocate (see docs/reliability.md).
MAX_FILE_BYTES = int(os.environ.get("LT_PLUGINS_MAX_TICKET_FILE_BYTES", 16 * 2**30))
MAX_SAMPLES_BYTES = 32 * 2**20
MAX_SAMPLES_PIXELS = 8192 * 8192
SAFETENSORS_HEADER_ALLOWANCE = 4096  # bytes of safetensors header per tensor, and once for the file
MAX_MODEL_VALUES = int(os.environ.get("LT_PLUGINS_MAX_MODEL_VALUES", 2**31))
MAX_SPEC_ITEMS = 4096  # numbers, strings and containers in a model spec's config

logger = logging.getLogger(__name__)


class TicketError(ValueError):
    """A ticket that cannot be read or does not fit the model: says what differs and what to do.

    Example:
        >>> issubclass(TicketError, ValueError)
        True
    """


# ---------------------------------------------------------------------------------------------
# Packing


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """A boolean mask as a 1-D uint8 tensor: row-major, 8 per byte, least significant bit first.

    Example:
        >>> pack_mask(torch.tensor([True, False, False, False, False, False, False, False, True])).tolist()
        [1, 1]
    """
    bits = mask.detach().to("cpu", torch.bool).contiguous().numpy().reshape(-1)
    return torch.from_numpy(np.packbits(bits, bitorder=BIT_ORDER))


def unpack_mask(packed: torch.Tensor, shape: tuple[int, ...], name: str = "mask") -> torch.Tensor:
    """Inverse of `pack_mask`; refuses a wrong byte count or set padding bits.

    Example:
        >>> unpack_mask(torch.tensor([1, 1], dtype=torch.uint8), (9,)).nonzero().flatten().tolist()
        [0, 8]
    """
    n = math.prod(shape)
    if packed.dtype != torch.uint8 or packed.ndim != 1:
        raise TicketError(
            f"{MASKS_NAME}: {name!r} must be a 1-D uint8 tensor of packed bits, "
            f"got {str(packed.dtype).removeprefix('torch.')} of shape {tuple(packed.shape)}."
        )
    if packed.numel() != (n + 7) // 8:
        raise TicketError(
            f"{MASKS_NAME}: {name!r} holds {8 * packed.numel()} bits ({packed.numel()} bytes), but its shape "
            f"{tuple(shape)} has {n} weights, which need {(n + 7) // 8} bytes. The mask does not belong to "
            "this config: re-save the ticket from the model."
        )
    bits = np.unpackbits(packed.numpy(), bitorder=BIT_ORDER)
    if bits[n:].any():
        raise TicketError(
            f"{MASKS_NAME}: {name!r} has bits set past its {n} weights (padding must be zero); the file is corrupt."
        )
    return torch.from_numpy(bits[:n].astype(bool)).reshape(shape)


def expected_kept(config: TicketConfig, sizes: dict[str, int]) -> dict[str, int] | int:
    """What the top-k selection keeps: per tensor (layer scope) or in total (global scope).

    Example:
        >>> expected_kept(TicketConfig(density=0.1), {"a": 100, "b": 3})
        {'a': 10, 'b': 1}
    """
    if config.scope == "global":
        return max(1, round(config.density * sum(sizes.values())))
    return {name: max(1, round(config.density * n)) for name, n in sizes.items()}


# ---------------------------------------------------------------------------------------------
# Reading a wrapped model


def _masked_entries(model: nn.Module) -> dict[str, tuple[nn.Module, str, str, int]]:
    """name -> (module, parameter name, state_dict prefix of its parametrization, ScoreMask index)."""
    found = {}
    for prefix, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for param_name, plist in module.parametrizations.items():
            for index, p in enumerate(plist):
                if isinstance(p, ScoreMask):
                    name = f"{prefix}.{param_name}" if prefix else param_name
                    base = f"{prefix}.parametrizations.{param_name}" if prefix else f"parametrizations.{param_name}"
                    found[name] = (module, param_name, base, index)
    return found


def _original(module: nn.Module, param_name: str) -> torch.Tensor:
    return module.parametrizations[param_name].original


def _remainder(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every state_dict entry that is not a masked weight or its scores, copied to the CPU."""
    skip = set()
    for module, param_name, base, index in _masked_entries(model).values():
        skip.update({f"{base}.original", f"{base}.{index}.scores"})
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


def _environment() -> dict[str, str]:
    from . import __version__

    return {
        "lt_plugins": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()}-{platform.machine()}",
    }


def _describe_objective(objective: Any) -> Any:
    if objective is None or isinstance(objective, (str, int, float, bool)):
        return objective
    if hasattr(objective, "describe"):
        objective = objective.describe()
    elif not isinstance(objective, (dict, list)):
        return {"name": type(objective).__name__}
    try:
        return json.loads(json.dumps(objective, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TicketError(f"objective {objective!r} cannot be stored as JSON ({err}); pass a dict of plain values.")


def _check_metrics(metrics: Any) -> dict[str, Any]:
    if metrics is None:
        return {}
    if not isinstance(metrics, dict) or not all(isinstance(k, str) for k in metrics):
        raise TicketError(f"metrics must be a dict of name -> value, got {metrics!r}.")
    try:
        return json.loads(json.dumps(metrics, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise TicketError(
            f"metrics {metrics!r} cannot be stored as JSON ({err}); use finite numbers or strings."
        ) from err


def image_grid(samples: Any) -> Any:
    """A PIL image: ``samples`` (N, C, H, W) in [-1, 1] laid out in a square grid, or a PIL image as is.

    Example:
        >>> image_grid(torch.zeros(4, 1, 8, 8)).size
        (22, 22)
    """
    from PIL import Image

    if samples is None or isinstance(samples, Image.Image):
        return samples
    if not isinstance(samples, torch.Tensor):
        raise TicketError(f"samples must be an image tensor (N, C, H, W) or a PIL image, got {type(samples).__name__}.")
    if samples.ndim == 3:
        samples = samples[None]
    if samples.ndim != 4 or samples.shape[1] not in (1, 3) or samples.shape[0] == 0:
        raise TicketError(
            f"samples must be images (N, C, H, W) with C 1 or 3, values in [-1, 1]; got shape {tuple(samples.shape)}."
        )
    from torchvision.utils import make_grid

    images = samples.detach().to("cpu", torch.float32).clamp(-1, 1)
    grid = make_grid(images, nrow=math.ceil(math.sqrt(images.shape[0])), normalize=True, value_range=(-1, 1))
    pixels = grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(pixels)


# ---------------------------------------------------------------------------------------------
# Writing a folder atomically


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _write_folder(target: str | os.PathLike, files: dict[str, bytes]) -> Path:
    """Write ``files`` into a new folder beside ``target``, then swap it into place (`lt_plugins._io.atomic_folder`).

    The folder at ``target`` is at every moment the old ticket or the new one, never half of
    either; a save killed between its two renames leaves the old ticket aside, put back by
    the next save or load, and stale temporary folders are removed by the next save.
    """
    target = Path(target)
    wait_for_folder(target)  # puts back a ticket a killed save left aside, so it is checked below
    if target.exists():
        if not target.is_dir():
            raise TicketError(f"{target} is a file; save a ticket to a folder path.")
        foreign = sorted(p.name for p in target.iterdir() if p.name not in TICKET_FILES)
        if foreign:
            raise TicketError(
                f"{target} holds files that are not part of a ticket ({foreign[:5]}); saving replaces the whole "
                "folder, so choose a new folder or one that holds only a ticket."
            )
    with atomic_folder(target) as staging:
        for name, data in files.items():
            _write_file(staging / name, data)
    return target


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _file_entry(data: bytes) -> dict[str, Any]:
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# ---------------------------------------------------------------------------------------------
# Reading a folder


def _fail(where: str, problem: str) -> TicketError:
    return TicketError(f"{CONFIG_NAME}: {where} {problem}")


def _get(data: dict, key: str, kinds: type | tuple, where: str = "") -> Any:
    if key not in data:
        raise _fail(f"{where}{key!r}", "is missing; the file is not a complete ticket config.")
    value = data[key]
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise _fail(f"{where}{key!r}", f"must be {kinds}, got {value!r}.")
    if not isinstance(value, kinds):
        raise _fail(f"{where}{key!r}", f"has the wrong type ({type(value).__name__}): {value!r}.")
    return value


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise TicketError(f"{folder} has no {CONFIG_NAME}, so it is not a ticket folder (it holds {present[:8]}).")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise TicketError(f"{path} is {path.stat().st_size} bytes, more than a ticket config can be; it is not one.")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TicketError(f"{path} is not valid JSON ({err}); the file is corrupt or was edited by hand.") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TicketError(f"{path} is not a lt_plugins ticket config (expected \"format\": \"{FORMAT}\").")
    version = _get(data, "format_version", int)
    if version > FORMAT_VERSION:
        made = (data.get("created_with") or {}).get("lt_plugins", "a newer version")
        raise TicketError(
            f"{path} has format version {version}, written by lt_plugins {made}; this lt_plugins reads up to "
            f"version {FORMAT_VERSION}. Upgrade: pip install -U lt-plugins."
        )
    if version < 1:
        raise _fail("'format_version'", f"is {version}; versions start at 1.")
    return data


def _read_binary(folder: Path, name: str, files: dict[str, Any], limit: int | None = None) -> bytes:
    """The bytes of ``folder/name``, after its size on disk matched the manifest (and ``limit``): bounded reads."""
    entry = files.get(name)
    if not (isinstance(entry, dict) and isinstance(entry.get("bytes"), int) and isinstance(entry.get("sha256"), str)):
        raise _fail(f"'files'[{name!r}]", "is missing or malformed; it must give the file's bytes and sha256.")
    path = folder / name
    if not path.is_file():
        raise TicketError(f"{folder} has no {name}; the ticket is incomplete (download or copy it again).")
    limit = MAX_FILE_BYTES if limit is None else min(limit, MAX_FILE_BYTES)
    if not 0 <= entry["bytes"] <= limit:
        raise _fail(
            f"'files'[{name!r}]", f"says {entry['bytes']} bytes, more than this ticket's {name} can hold ({limit}); "
            "the config was edited or is corrupt."
        )
    size = path.stat().st_size
    if size != entry["bytes"]:
        raise TicketError(
            f"{name} is {size} bytes, but {CONFIG_NAME} says {entry['bytes']}: the file was cut short or "
            "changed after saving. Download or copy the ticket again."
        )
    with open(path, "rb") as f:
        data = f.read(entry["bytes"] + 1)  # one byte more shows a file that grew since stat
    if len(data) != entry["bytes"]:
        raise TicketError(
            f"{name} is {len(data)} bytes, but {CONFIG_NAME} says {entry['bytes']}: the file was cut short or "
            "changed after saving. Download or copy the ticket again."
        )
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise TicketError(
            f"{name} does not match the sha256 recorded in {CONFIG_NAME}: the file was changed or corrupted "
            "after saving. Download or copy the ticket again."
        )
    return data


def _masks_limit(targets: list[dict[str, Any]]) -> int:
    """The most bytes a masks file for ``targets`` can take: the packed bits plus a generous header."""
    return sum((math.prod(t["shape"]) + 7) // 8 for t in targets) + SAFETENSORS_HEADER_ALLOWANCE * (1 + len(targets))


def _kept_limit(targets: list[dict[str, Any]]) -> int:
    """The most bytes a kept-weights file for ``targets`` can take: 8 bytes a kept value at most, plus headers."""
    return sum(8 * t["kept"] for t in targets) + SAFETENSORS_HEADER_ALLOWANCE * (1 + len(targets))


def _read_samples(folder: Path, files: dict[str, Any]) -> Any:
    """The sample grid as a PIL image, or None: it is optional, and a bad one is dropped with a warning."""
    path = folder / SAMPLES_NAME
    if not path.is_file():
        return None
    from PIL import Image

    try:
        if SAMPLES_NAME in files:
            data = _read_binary(folder, SAMPLES_NAME, files, MAX_SAMPLES_BYTES)
        elif path.stat().st_size <= MAX_SAMPLES_BYTES:  # a ticket saved before samples were hashed
            data = path.read_bytes()
        else:
            raise TicketError(f"it is {path.stat().st_size} bytes, more than {MAX_SAMPLES_BYTES}")
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_SAMPLES_PIXELS:
                raise TicketError(f"it claims {width}x{height} pixels, more than {MAX_SAMPLES_PIXELS}")
            image.load()
            return image.copy()
    except Exception as err:  # decoration, never a reason to refuse a ticket (PIL raises many kinds)
        warnings.warn(f"{path} could not be used ({' '.join(str(err).split())[:200]}); loading the ticket without it.")
        return None


def _load_tensors(name: str, data: bytes) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise TicketError(f"{name} is not a readable safetensors file ({err}).") from err


def _parse_targets(data: dict) -> list[dict[str, Any]]:
    targets = _get(data, "targets", list)
    if not targets:
        raise _fail("'targets'", "is empty; a ticket masks at least one tensor.")
    seen = set()
    for i, t in enumerate(targets):
        where = f"targets[{i}]"
        if not isinstance(t, dict):
            raise _fail(where, f"must be an object, got {t!r}.")
        name = _get(t, "name", str, f"{where}.")
        shape = _get(t, "shape", list, f"{where}.")
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
            raise _fail(f"{where}.'shape'", f"must list non-negative integers, got {shape!r}.")
        kept = _get(t, "kept", int, f"{where}.")
        fp = _get(t, "fingerprint", str, f"{where}.")
        scale = t.get("weight_scale")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < 1e12):
            raise _fail(f"{where}.'weight_scale'", f"must be a positive number, got {str(scale)[:40]!r}.")
        if not isinstance(getattr(torch, str(_get(t, "dtype", str, f"{where}.")), None), torch.dtype):
            raise _fail(f"{where}.'dtype'", f"is not a torch dtype name: {t['dtype']!r}.")
        if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
            raise _fail(f"{where}.'fingerprint'", f"must be a sha256 hex digest, got {fp!r}.")
        if name in seen:
            raise _fail(where, f"repeats the name {name!r}.")
        if not 0 <= kept <= math.prod(shape):
            raise _fail(f"{where}.'kept'", f"is {kept}, outside 0..{math.prod(shape)}.")
        seen.add(name)
    return targets


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
    try:
        return LatentCall(tuple(call["latent_shape"]), generate)
    except (TypeError, ValueError) as err:
        raise _fail("'generator_call'", f"is invalid: {err}") from err


def _parse_base(data: dict) -> BaseModel | None:
    if data["format_version"] < 2:
        return None
    value = _get(data, "base", (dict, type(None)))
    try:
        return None if value is None else BaseModel.from_dict(value)
    except ValueError as err:
        raise _fail("'base'", f"is invalid: {err}") from err


def _check_names(what: str, theirs: set[str], ours: set[str], ours_label: str) -> None:
    missing, extra = sorted(ours - theirs), sorted(theirs - ours)
    if missing or extra:
        parts = []
        if extra:
            parts.append(f"the ticket has {extra[:5]}{' ...' if len(extra) > 5 else ''} that {ours_label} lacks")
        if missing:
            parts.append(f"{ours_label} has {missing[:5]}{' ...' if len(missing) > 5 else ''} that the ticket lacks")
        raise TicketError(f"{what} differ: {'; '.join(parts)}.")


def _check_base(base: Any, config: TicketConfig) -> BaseModel | None:
    if base is None:
        return None
    if config.weight_init != "keep":
        raise TicketError(
            f"This ticket's weights come from its seed {config.seed} ({config.weight_init}), so it has no "
            f"pretrained base; base={str(base)!r} was given. A base is for weight_init='keep'."
        )
    if not isinstance(base, BaseModel) or not base.pinned:
        raise TicketError(f"base must be a BaseModel pinned to a commit sha (BaseModel.pin()), got {base!r}.")
    return base


# ---------------------------------------------------------------------------------------------
# The ticket


class Ticket:
    """A strong lottery ticket: which weights of a seed-drawn network to keep, plus what the seed cannot give.

    Make one from a wrapped model (`from_model`) or load one (`from_pretrained`); `apply`
    rebuilds the masked network, checking that the seed gives the very weights the ticket
    was found on.

    Attributes:
        spec: the model's family, class and constructor config (see `lt_plugins.adapters`).
        config: the `TicketConfig` the model was wrapped with (seed, density, scope, ...).
        base: for a ticket on a pretrained base (``weight_init="keep"``), the `BaseModel` (Hub
            repo id at a pinned commit) whose weights it masks; None when unknown or seed-drawn.
        masks: masked parameter name -> boolean mask (True = kept).
        fingerprints: masked parameter name -> sha256 of its regenerated weights.
        remainder: every other state_dict entry of the model, as values.
        kept_weights: name -> 1-D kept weight values (portable tickets), else None.
        objective, metrics: what the search optimised and how the ticket scored.
        samples: a PIL image of samples, or None.
        created_with: lt_plugins / torch / python versions and platform that made the ticket.

    Example:
        >>> import tempfile, torch, lt_plugins as lt
        >>> from lt_plugins.models import DCGANGenerator
        >>> gen = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=8), lt.TicketConfig(density=0.1)).eval()
        >>> folder = Ticket.from_model(gen).save_pretrained(tempfile.mkdtemp() + "/ticket")
        >>> again = Ticket.from_pretrained(folder).apply().eval()
        >>> z = torch.randn(2, 8)
        >>> torch.equal(again(z), gen(z))
        True
    """

    def __init__(
        self,
        spec: dict[str, Any],
        config: TicketConfig,
        masks: dict[str, torch.Tensor],
        fingerprints: dict[str, str],
        remainder: dict[str, torch.Tensor],
        *,
        kept_weights: dict[str, torch.Tensor] | None = None,
        objective: Any = None,
        metrics: dict[str, Any] | None = None,
        samples: Any = None,
        created_with: dict[str, str] | None = None,
        weight_dtypes: dict[str, str] | None = None,
        base: BaseModel | None = None,
        weight_scales: dict[str, float] | None = None,
        call: LatentCall | None = None,
    ) -> None:
        try:
            self.spec = check_spec(spec)
            adapter = get_adapter(spec["family"])
        except ValueError as err:
            raise TicketError(str(err)) from err
        if not isinstance(config, TicketConfig):
            raise TicketError(f"config must be a TicketConfig, got {type(config).__name__}.")
        # What the config leaves to the family (a hand-written one may): as lt.wrap resolves it.
        self.config = adapter.resolve(config)
        self.base = _check_base(base, config)
        self.masks = {name: m.to("cpu", torch.bool) for name, m in masks.items()}
        self.fingerprints = dict(fingerprints)
        self.remainder = dict(remainder)
        self.kept_weights = None if kept_weights is None else dict(kept_weights)
        self.objective = _describe_objective(objective)
        self.metrics = _check_metrics(metrics)
        self.samples = image_grid(samples)
        self.created_with = dict(created_with) if created_with else _environment()
        # The dtype each masked weight had: fingerprints are of values in that dtype.
        self.weight_dtypes = {name: "float32" for name in self.masks} | dict(weight_dtypes or {})
        # The scales seeded draws took in place of 1/sqrt(fan_in) (layers that rescale at run time).
        self.weight_scales = {name: float(v) for name, v in (weight_scales or {}).items()}
        self.call = call  # how the generator is called (latent shape, generate), when the search knew it
        self.path: Path | None = None  # the folder it was loaded from, if any
        self._validate()

    def _validate(self) -> None:
        if not self.masks:
            raise TicketError("A ticket needs at least one mask.")
        _check_names("Masked tensors and fingerprints", set(self.fingerprints), set(self.masks), "the masks")
        unknown = sorted(set(self.weight_scales) - set(self.masks))
        if unknown or not all(math.isfinite(v) and v > 0 for v in self.weight_scales.values()):
            raise TicketError(f"Weight scales must be positive numbers for masked tensors; got {unknown[:5] or self.weight_scales}.")
        clash = sorted(set(self.remainder) & set(self.masks))
        if clash:
            raise TicketError(f"{clash[:5]} are both masked and stored as dense values; a tensor is one or the other.")
        expected = expected_kept(self.config, {n: m.numel() for n, m in self.masks.items()})
        kept = {n: int(m.sum()) for n, m in self.masks.items()}
        if isinstance(expected, int):
            if sum(kept.values()) != expected:
                raise TicketError(
                    f"The masks keep {sum(kept.values())} weights in all, but global density {self.config.density} "
                    f"of {sum(m.numel() for m in self.masks.values())} keeps {expected}: masks and config disagree."
                )
        else:
            for name, k in expected.items():
                if kept[name] != k:
                    raise TicketError(
                        f"The mask of {name!r} keeps {kept[name]} weights, but density {self.config.density} of its "
                        f"{self.masks[name].numel()} keeps {k}: masks and config disagree."
                    )
        if self.kept_weights is not None:
            _check_names("Masked tensors and kept weights", set(self.kept_weights), set(self.masks), "the masks")
            for name, values in self.kept_weights.items():
                if values.ndim != 1 or values.numel() != kept[name] or not values.is_floating_point():
                    raise TicketError(
                        f"{KEPT_NAME}: {name!r} must hold its {kept[name]} kept values as a 1-D float tensor, got "
                        f"{str(values.dtype).removeprefix('torch.')} of shape {tuple(values.shape)}."
                    )

    # -- properties ---------------------------------------------------------------------------

    @property
    def density(self) -> float:
        """Fraction of the masked weights that are kept.

        Example:
            >>> import lt_plugins as lt
            >>> gen = lt.wrap(torch.nn.Linear(10, 10), lt.TicketConfig(density=0.3))
            >>> Ticket.from_model(gen).density
            0.3
        """
        return sum(int(m.sum()) for m in self.masks.values()) / sum(m.numel() for m in self.masks.values())

    @property
    def portable(self) -> bool:
        """Whether the kept weight values are stored (exact rebuilds on any platform)."""
        return self.kept_weights is not None

    def __repr__(self) -> str:
        return (
            f"Ticket({self.spec['class']}, density={self.density:.4g}, "
            f"{f'base={self.base}' if self.base is not None else f'seed={self.config.seed}'}, "
            f"scope={self.config.scope!r}, tensors={len(self.masks)}, portable={self.portable})"
        )

    # -- from a model -------------------------------------------------------------------------

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        *,
        objective: Any = None,
        metrics: dict[str, Any] | None = None,
        samples: Any = None,
        portable: bool = False,
        base: str | BaseModel | None = None,
        call: LatentCall | None = None,
    ) -> Ticket:
        """The ticket a wrapped model currently holds (its masks, seed, config and dense remainder).

        Args:
            model: a model wrapped with `lt_plugins.wrap`, or a module holding one (the wrapped one is taken).
            call: how the generator is called (`lt_plugins.generate.LatentCall`: latent shape and
                generate function); recorded so that sampling needs neither again. `TicketSearch` passes it.
            base: for a model wrapped with ``weight_init="keep"``, the Hub repo its pretrained
                weights came from: a repo id or a `BaseModel` (repo id, revision, subfolder).
                Default: the repo the model names itself (diffusers ``from_pretrained`` records
                it in ``config._name_or_path``) at its main branch. The revision is pinned to
                its commit sha now, asking the Hub unless it is one. Without a known base the
                ticket still works, but `apply` then needs that very model passed.
            objective: what the search optimised: an objective with ``describe()``, a dict or a string.
            metrics: name -> value, e.g. ``{"fid": 31.2}``; shown on the model card.
            samples: images (N, C, H, W) in [-1, 1], or a PIL image; saved as ``samples.png``.
            portable: also store the kept weight values, so that `apply` is exact even where
                the seed's random stream differs (another torch version or platform).

        Example:
            >>> import lt_plugins as lt
            >>> gen = lt.wrap(torch.nn.Linear(8, 8), lt.TicketConfig(density=0.25, seed=3))
            >>> ticket = Ticket.from_model(gen, metrics={"loss": 0.5})
            >>> ticket.config.seed, int(ticket.masks["weight"].sum())
            (3, 16)
        """
        model = wrapped_root(model)
        config = wrap_config(model)
        adapter = adapter_for(model, config.family)
        if config.weight_init == "keep":  # a seed ticket given a base is refused by the constructor
            try:
                base = ticket_base(base, adapter.base_repo(model))
            except ValueError as err:
                raise TicketError(str(err)) from err
        entries = _masked_entries(model)
        masks = {name: m.to("cpu") for name, m in current_masks(model).items()}
        fingerprints, kept, dtypes = {}, {}, {}
        for name, (module, param_name, _, _) in entries.items():
            weight = _original(module, param_name).detach()
            fingerprints[name] = fingerprint(weight)
            dtypes[name] = _dtype_name(weight.dtype)
            if portable:
                kept[name] = weight[masks[name].to(weight.device)].to("cpu").clone()
        return cls(
            adapter.spec(model),
            config,
            masks,
            fingerprints,
            _remainder(model),
            kept_weights=kept if portable else None,
            objective=objective,
            metrics=metrics,
            samples=samples,
            weight_dtypes=dtypes,
            base=base,
            weight_scales=weight_scales(model),
            call=call,
        )

    # -- save / load --------------------------------------------------------------------------

    def _files(self, repo_id: str | None = None) -> dict[str, bytes]:
        files: dict[str, bytes] = {
            MASKS_NAME: save_safetensors({n: pack_mask(m) for n, m in self.masks.items()}),
            REMAINDER_NAME: save_safetensors({n: t.contiguous() for n, t in self.remainder.items()}),
        }
        if self.kept_weights is not None:
            files[KEPT_NAME] = save_safetensors({n: t.contiguous() for n, t in self.kept_weights.items()})
        if self.samples is not None:  # hashed like the rest, so that a swapped image is noticed
            buffer = io.BytesIO()
            self.samples.save(buffer, format="PNG")
            files[SAMPLES_NAME] = buffer.getvalue()
        config = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_with": self.created_with,
            "model": self.spec,
            "ticket_config": self.config.to_dict(),
            "base": self.base.to_dict() if self.base else None,
            "density": self.density,
            "portable": self.portable,
            "masks": {"file": MASKS_NAME, "packing": "packbits", "bit_order": BIT_ORDER, "element_order": "row-major"},
            "targets": [
                {
                    "name": name,
                    "shape": list(mask.shape),
                    "dtype": self.weight_dtypes[name],
                    "kept": int(mask.sum()),
                    "fingerprint": self.fingerprints[name],
                    **({"weight_scale": self.weight_scales[name]} if name in self.weight_scales else {}),
                }
                for name, mask in self.masks.items()
            ],
            "generator_call": self.call.describe() if self.call is not None else None,
            "remainder": {"file": REMAINDER_NAME, "tensors": len(self.remainder)},
            "kept_weights": {"file": KEPT_NAME} if self.portable else None,
            "files": {name: _file_entry(data) for name, data in files.items()},
            "objective": self.objective,
            "metrics": self.metrics,
        }
        files[CONFIG_NAME] = (json.dumps(config, indent=2, allow_nan=False) + "\n").encode()
        files[CARD_NAME] = self._card(repo_id).encode()
        return files

    def save_pretrained(self, save_directory: str | os.PathLike, *, repo_id: str | None = None) -> Path:
        """Write the ticket folder; atomically: the folder is the old ticket or the new one, never half.

        Args:
            save_directory: the ticket folder; it is replaced if it holds a ticket, refused if it
                holds other files.
            repo_id: Hub repo id written into the model card's loading snippet.

        Example:
            >>> import tempfile, lt_plugins as lt
            >>> ticket = Ticket.from_model(lt.wrap(torch.nn.Linear(4, 4)))
            >>> sorted(p.name for p in ticket.save_pretrained(tempfile.mkdtemp() + "/t").iterdir())
            ['README.md', 'masks.safetensors', 'remainder.safetensors', 'ticket_config.json']
        """
        return _write_folder(save_directory, self._files(repo_id))

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        revision: str | None = None,
        token: str | bool | None = None,
        *,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        force_download: bool = False,
    ) -> Ticket:
        """Load a ticket from a local folder, or from the Hub (through the huggingface_hub cache).

        Args:
            path_or_repo_id: a ticket folder, or a Hub repo id such as ``"me/dcgan-10pct"``.
            revision: branch, tag or commit sha of a Hub repo (default: main).
            token: Hub token; default: ``HF_TOKEN`` or the stored login. False sends none.
            cache_dir: huggingface_hub cache to use instead of the default one.
            local_files_only: only look in the cache, never on the network.
            force_download: download the Hub files again even if cached (e.g. after a
                "changed or corrupted" error from a damaged cache blob).

        A path that looks local -- a ``pathlib.Path``, a string starting with ``./``, ``../``,
        ``/`` or ``~``, one whose parent folder exists here, or any existing path -- is only
        ever read from disk: when it is missing the error names it, and the Hub is never asked.
        Each load logs at INFO level where the ticket came from (the folder, or repo@commit).

        A Hub repo is fetched with ``huggingface_hub.snapshot_download``, which honours
        ``HF_HUB_OFFLINE`` (cached files only), ``HF_ENDPOINT``, ``HF_TOKEN`` and the stored
        login, like diffusers and PEFT. Every file is checked (sizes, hashes, shapes, bit
        counts) before the ticket is returned; nothing is unpickled.

        Example:
            >>> import tempfile, lt_plugins as lt
            >>> folder = Ticket.from_model(lt.wrap(torch.nn.Linear(4, 4))).save_pretrained(tempfile.mkdtemp() + "/t")
            >>> Ticket.from_pretrained(folder).spec["class"]
            'torch.nn.modules.linear.Linear'
        """
        folder = _resolve_source(path_or_repo_id, revision, token, cache_dir, local_files_only, force_download)
        ticket = _load_settled(cls, folder)
        ticket.path = folder
        return ticket

    @classmethod
    def _load(cls, folder: Path) -> Ticket:
        data = _read_config(folder)
        created_with = _get(data, "created_with", dict)
        spec = _get(data, "model", dict)
        try:
            config = TicketConfig.from_dict(_get(data, "ticket_config", dict))
        except (TypeError, ValueError) as err:
            raise _fail("'ticket_config'", f"is invalid: {err}") from err
        targets = _parse_targets(data)
        files = _get(data, "files", dict)
        portable = _get(data, "portable", bool)
        base = _parse_base(data)

        packed = _load_tensors(MASKS_NAME, _read_binary(folder, MASKS_NAME, files, _masks_limit(targets)))
        _check_names(f"{MASKS_NAME} and {CONFIG_NAME} targets", set(packed), {t["name"] for t in targets}, "the config")
        masks = {}
        for t in targets:
            mask = unpack_mask(packed[t["name"]], tuple(t["shape"]), t["name"])
            if int(mask.sum()) != t["kept"]:
                raise TicketError(
                    f"{MASKS_NAME}: the mask of {t['name']!r} keeps {int(mask.sum())} weights, but {CONFIG_NAME} "
                    f"records {t['kept']}; the files do not belong together."
                )
            masks[t["name"]] = mask
        remainder = _load_tensors(REMAINDER_NAME, _read_binary(folder, REMAINDER_NAME, files))
        kept = None
        if portable:
            kept = _load_tensors(KEPT_NAME, _read_binary(folder, KEPT_NAME, files, _kept_limit(targets)))

        samples = _read_samples(folder, files)
        return cls(
            spec,
            config,
            masks,
            {t["name"]: t["fingerprint"] for t in targets},
            remainder,
            kept_weights=kept,
            objective=data.get("objective"),
            metrics=data.get("metrics") or {},
            samples=samples,
            created_with={str(k): str(v) for k, v in created_with.items()},
            weight_dtypes={t["name"]: t["dtype"] for t in targets},
            base=base,
            weight_scales={t["name"]: t["weight_scale"] for t in targets if "weight_scale" in t},
            call=_parse_call(data),
        )

    def push_to_hub(
        self,
        repo_id: str,
        private: bool | None = None,
        token: str | bool | None = None,
        commit_message: str | None = None,
        revision: str | None = None,
    ) -> Any:
        """Create ``repo_id`` if needed and upload the saved ticket in one commit; returns its CommitInfo.

        Uses ``HfApi.create_repo(exist_ok=True)`` and ``upload_folder``; ticket files the new
        ticket does not have (an old ``kept_weights.safetensors``, say) are deleted in the same
        commit. ``token`` defaults to the environment / stored login, as everywhere in
        huggingface_hub. The returned CommitInfo's ``commit_url`` links the commit.

        Example (needs a Hub and a token, so not run here):
            >>> ticket.push_to_hub("me/dcgan-10pct")  # doctest: +SKIP
        """
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision not in (None, "main"):
            api.create_branch(repo.repo_id, branch=revision, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="lt_ticket_") as tmp:
            folder = self.save_pretrained(Path(tmp) / "ticket", repo_id=repo.repo_id)
            written = {p.name for p in folder.iterdir()}
            return api.upload_folder(
                repo_id=repo.repo_id,
                folder_path=folder,
                commit_message=commit_message or f"Upload lottery ticket ({self.density:.1%} of weights kept)",
                revision=revision,
                delete_patterns=[name for name in TICKET_FILES if name not in written] or None,
            )

    # -- apply --------------------------------------------------------------------------------

    def apply(
        self, model: nn.Module | None = None, *, merge: bool = False, allow_remote_code: bool = False
    ) -> nn.Module:
        """Rebuild the masked network: wrap ``model``, check its regenerated weights, load masks and remainder.

        Args:
            model: a fresh (unwrapped) instance of the ticket's architecture. None builds one from
                the spec, for the built-in families and allow-listed diffusers/timm classes; for a
                ticket on a pretrained base, None loads the base from the Hub at the ticket's commit.
            merge: return an ordinary module with the masks baked in (`lt_plugins.merge`).
            allow_remote_code: for a ticket of a class outside the allow-list, import that class
                from its recorded path (only for tickets you trust).

        Everything is checked before the model is changed: architecture, target names and shapes,
        dense remainder names and shapes, and the sha256 of every regenerated weight. On any
        error the model is left as it was. The model is changed in place and returned.

        Example:
            >>> import lt_plugins as lt
            >>> gen = lt.wrap(torch.nn.Linear(8, 8), lt.TicketConfig(density=0.5, seed=1))
            >>> rebuilt = Ticket.from_model(gen).apply(torch.nn.Linear(8, 8))
            >>> torch.equal(lt.masks(rebuilt)["weight"], lt.masks(gen)["weight"])
            True
        """
        if model is None:
            model = self._fresh_model(allow_remote_code)
        mismatched = self._check_model(model)
        snapshot = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        try:
            self._load_into(model, mismatched)
        except BaseException:
            if is_wrapped(model):
                unwrap(model)
            model.load_state_dict(snapshot)
            raise
        return merge_masks(model) if merge else model

    def _fresh_model(self, allow_remote_code: bool) -> nn.Module:
        """What apply() masks when given no model: the base from the Hub, or a model built from the spec."""
        if self.config.weight_init == "keep" and self.base is None and not self.portable:
            raise TicketError(
                f"This ticket masks the weights of a pretrained {self.spec['class']} (weight_init='keep') but records "
                "no base repo to load them from: pass that model, ticket.apply(model). To record the base, make the "
                "ticket with Ticket.from_model(model, base='owner/name')."
            )
        try:
            if self.base is not None:
                logger.info("Loading the pretrained base of the ticket: %s", self.base)
                return get_adapter(self.spec["family"]).load_base(self.spec, self.base)
            _check_spec_before_building(self, allow_remote_code)
            return build_model(self.spec, allow_remote_code=allow_remote_code)
        except ValueError as err:
            raise TicketError(str(err)) from err

    def _check_model(self, model: nn.Module) -> set[str]:
        """Every check that can fail, before the model is touched. Returns the tensors whose
        fingerprint differs (only possible for portable tickets; otherwise that raises)."""
        if not isinstance(model, nn.Module):
            raise TicketError(
                f"apply() takes an nn.Module (a fresh instance of {self.spec['class']}), got {type(model).__name__}."
            )
        if is_wrapped(model):
            raise TicketError(
                f"{type(model).__name__} is already wrapped with masks; pass a fresh instance (or lt.unwrap it first)."
            )
        adapter = get_adapter(self.spec["family"])
        natural = adapter_for(model, self.config.family)
        if natural.family != adapter.family:
            raise TicketError(
                f"This ticket is for a {self.spec['family']} model ({self.spec['class']}); got "
                f"{class_path(model)} ({natural.family} family)."
            )
        diffs = adapter.differences(self.spec, model)
        if diffs:
            raise TicketError(f"The model's architecture differs from the ticket's: {'; '.join(diffs)}.")
        try:
            targets = find_targets(model, self.config)
        except ValueError as err:
            raise TicketError(f"The ticket's targets do not fit this model: {err}") from err
        params = {
            (f"{m}.{p}" if m else p): (module, p) for m, module, p in targets
        }
        _check_names("Masked tensors of the ticket and of the model", set(self.masks), set(params), "the model")
        for name, (module, p) in params.items():
            shape = tuple(module._parameters[p].shape)
            if shape != tuple(self.masks[name].shape):
                raise TicketError(
                    f"Shape of {name!r} differs: ticket {tuple(self.masks[name].shape)}, model {shape}. "
                    f"The model was built with another config than the ticket's ({self.spec.get('config')})."
                )
            self._check_dtype(name, self.weight_dtypes[name], module._parameters[p].dtype)
        state = {k: v for k, v in model.state_dict().items() if k not in params}
        _check_names(
            "Dense (unmasked) tensors of the ticket and of the model", set(self.remainder), set(state), "the model"
        )
        for key, value in state.items():
            if tuple(value.shape) != tuple(self.remainder[key].shape):
                raise TicketError(
                    f"Shape of {key!r} differs: ticket {tuple(self.remainder[key].shape)}, model {tuple(value.shape)}."
                )
            self._check_dtype(key, _dtype_name(self.remainder[key].dtype), value.dtype)
        if self.kept_weights is not None:
            for name, (module, p) in params.items():
                if not module._parameters[p].is_floating_point():
                    raise TicketError(f"{name!r} is not a floating tensor in this model; it cannot take kept weights.")

        mismatched = []
        for planned in plan_weights(model, self.config, self.weight_scales):
            param = planned.module._parameters[planned.param_name]
            drawn = planned.draw(self.config)
            here = fingerprint(param if drawn is None else drawn.to(param.dtype))
            if here != self.fingerprints[planned.name]:
                mismatched.append((planned.name, here))
        if mismatched and self.kept_weights is None:
            raise TicketError(self._fingerprint_message(mismatched, len(params)))
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
        if theirs != _dtype_name(ours):
            raise TicketError(
                f"dtype of {name!r} differs: ticket {theirs}, model {_dtype_name(ours)}. Apply the ticket to a "
                f"model in {theirs}, then convert the result (e.g. model.to(torch.{_dtype_name(ours)}))."
            )

    def _fingerprint_message(self, mismatched: list[tuple[str, str]], total: int) -> str:
        name, here = mismatched[0]
        differ = (
            f"sha256 {here[:16]}... here, {self.fingerprints[name][:16]}... in the ticket "
            f"({len(mismatched)} of {total} masked tensors differ)"
        )
        if self.config.weight_init == "keep":
            return f"Weight {name!r} of the model is not the one the ticket was made on: {differ}. {self._keep_hint()}"
        theirs_env, ours_env = self.created_with, _environment()
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
            f"Weight {name!r} regenerated from seed {self.config.seed} ({self.config.weight_init}) does not match the "
            f"ticket: {differ}. {where} {cause}"
        )

    def _keep_hint(self) -> str:
        if self.base is None:
            return (
                "This ticket masks the weights the model already held (weight_init='keep'), so pass the model "
                "with exactly those base weights, or use a portable ticket."
            )
        return (
            f"This ticket masks the pretrained weights of its base {self.base} (weight_init='keep'): call apply() "
            "with no model to load that revision from the Hub, or pass a model loaded from exactly that revision."
        )

    def _load_into(self, model: nn.Module, mismatched: set[str]) -> None:
        wrap(model, self.config, weight_scales=self.weight_scales)
        entries = _masked_entries(model)
        with torch.no_grad():
            for name, (module, param_name, _, index) in entries.items():
                scores = module.parametrizations[param_name][index].scores
                scores.copy_(self.masks[name].to(scores.device, scores.dtype) + SCORE_FLOOR)
                if self.kept_weights is not None:
                    weight = _original(module, param_name)
                    weight[self.masks[name].to(weight.device)] = self.kept_weights[name].to(weight.device, weight.dtype)
        result = model.load_state_dict(self.remainder, strict=False)
        masked_keys = {f"{base}.{end}" for _, _, base, i in entries.values() for end in ("original", f"{i}.scores")}
        if result.unexpected_keys or set(result.missing_keys) - masked_keys:
            raise TicketError(
                f"Loading the dense remainder left {sorted(set(result.missing_keys) - masked_keys)[:5]} unset and "
                f"{sorted(result.unexpected_keys)[:5]} unused; the ticket does not fit this model."
            )
        # The checks that prove the rebuild: the very masks, and the very weights.
        now = current_masks(model)
        for name, mask in self.masks.items():
            if not torch.equal(now[name].cpu(), mask):
                raise TicketError(f"Internal error: the mask of {name!r} did not reproduce; please report this.")
            if name not in mismatched:
                got = fingerprint(_original(entries[name][0], entries[name][1]))
                if got != self.fingerprints[name]:
                    raise TicketError(self._fingerprint_message([(name, got)], len(self.masks)))

    # -- model card ---------------------------------------------------------------------------

    def _card(self, repo_id: str | None) -> str:
        from huggingface_hub import ModelCard, ModelCardData

        family, cls = self.spec["family"], self.spec["class"]
        short = cls.rpartition(".")[2]
        where = repo_id or "path/to/this/folder"
        builtin = family in ("dcgan", "stylegan", "diffusers", "timm")
        data = ModelCardData(
            library_name="lt-plugins",
            base_model=self.base.repo_id if self.base else None,
            tags=["lottery-ticket", "lt-plugins", "pruning", family],
            metrics=sorted(self.metrics) or None,
        )
        masked, rebuilt, origin = self._card_origin()
        if self.config.weight_init == "keep" and self.base is None:
            apply_line = f"model = ticket.apply(base_model)  # the very {cls} the ticket was made on"
        elif builtin:
            apply_line = "model = ticket.apply()"
        else:
            apply_line = f"model = ticket.apply({short}(...))  # a fresh {cls}"
        objective = self.objective
        if isinstance(objective, dict):
            objective = objective.get("name", json.dumps(objective))
        lines = [
            f"# {short}: a strong lottery ticket at {self.density:.1%} of its weights",
            "",
            f"A binary mask over {masked}. No weight was trained: only which weights to keep was chosen"
            + (f", by minimising `{objective}`." if objective else "."),
            "",
        ]
        if self.samples is not None:
            lines += [f"![samples]({SAMPLES_NAME})", ""]
        lines += [
            "## Use it",
            "",
            "```python",
            "import lt_plugins as lt",
            f'ticket = lt.Ticket.from_pretrained("{where}")',
            apply_line,
            "```",
            "",
            f"`apply` {rebuilt}, checks the sha256 of every masked weight, and masks it.",
            "",
            "## Ticket",
            "",
            "| | |",
            "|---|---|",
            f"| family | {family} |",
            f"| class | `{cls}` |",
            f"| density | {self.density:.4%} ({self.config.scope} scope) |",
            f"| {origin} |",
            f"| weight init | {self.config.weight_init} |",
            f"| masked tensors | {len(self.masks)} ({sum(m.numel() for m in self.masks.values()):,} weights) |",
            f"| portable | {'yes' if self.portable else 'no'} |",
            f"| made with | lt_plugins {self.created_with.get('lt_plugins', '?')}, torch "
            f"{self.created_with.get('torch', '?')}, {self.created_with.get('platform', '?')} |",
            "",
        ]
        if self.metrics:
            lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in sorted(self.metrics.items())]
            lines.append("")
        return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines)))

    def _card_origin(self) -> tuple[str, str, str]:
        """Where the masked weights come from, for the card: what is masked, what apply does, a table row."""
        cls = self.spec["class"]
        if self.config.weight_init != "keep":
            return (
                f"the frozen random weights of `{cls}`, drawn from seed {self.config.seed}",
                "rebuilds the network from the seed",
                f"seed | {self.config.seed}",
            )
        if self.base is None:
            return (
                f"the pretrained weights of a `{cls}` whose Hub repo this ticket does not record: pass that very "
                "model to `apply`",
                "takes the model you pass",
                "base | not recorded",
            )
        at = f"commit `{self.base.revision}`" + (f", subfolder `{self.base.subfolder}`" if self.base.subfolder else "")
        return (
            f"the pretrained weights of `{cls}` from `{self.base.repo_id}` at {at}",
            f"loads the base from the Hub at {at}",
            f"base | `{self.base.repo_id}` at {at}",
        )


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
    if size != held:
        raise TicketError(
            f"The model spec describes a {ticket.spec['class']} of {size:,} values, but the ticket's masks and dense "
            f"remainder hold {held:,}: {CONFIG_NAME}'s model spec does not belong to this ticket (edited or "
            "corrupt). Download or copy the ticket again, or pass the model: ticket.apply(model)."
        )


def _folder_identity(folder: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(folder)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_mtime_ns


def _load_settled(cls: type[Ticket], folder: Path, attempts: int = 20) -> Ticket:
    """``cls._load(folder)``, read again when a save replaced the folder meanwhile (so never a mix of two)."""
    for _ in range(attempts):
        if not wait_for_folder(folder):
            break
        before = _folder_identity(folder)
        try:
            ticket = cls._load(folder)
        except (TicketError, OSError):  # OSError: a file vanished with the old folder mid-read
            if _folder_identity(folder) != before:
                continue  # a save swapped the folder while it was read: read the new one
            raise
        if _folder_identity(folder) == before:
            return ticket
    raise TicketError(
        f"{folder} kept being replaced while it was read ({attempts} tries): another process is saving tickets "
        "there; load it once that is done."
    )


def looks_local(path_or_repo_id: str | os.PathLike) -> bool:
    """Whether ``path_or_repo_id`` names a path here rather than a Hub repo id.

    A ``pathlib.Path``; a string starting with ``./``, ``../``, ``/`` or ``~``; one whose parent
    folder exists here (``out/ticket`` when ``out`` exists); or any existing path.

    Example:
        >>> looks_local("./out/ticket"), looks_local("/tmp/anything"), looks_local("me/dcgan-10pct")
        (True, True, False)
    """
    if not isinstance(path_or_repo_id, str):
        return True
    text = path_or_repo_id
    if text.startswith(("./", "../", "/", "~", ".\\", "..\\")) or text in (".", "..") or os.path.isabs(text):
        return True
    path = Path(text)
    if path.exists():
        return True
    parent = path.parent
    return str(parent) not in ("", ".") and parent.is_dir()


def _resolve_source(
    path_or_repo_id: str | os.PathLike,
    revision: str | None,
    token: str | bool | None,
    cache_dir: Any,
    local_files_only: bool,
    force_download: bool,
) -> Path:
    """The folder to read a ticket from: a local one (never the Hub for a local-looking path) or a Hub snapshot."""
    if looks_local(path_or_repo_id):
        folder = Path(path_or_repo_id).expanduser()
        if not wait_for_folder(folder):
            text = str(path_or_repo_id)
            why = (
                f"its parent folder {str(Path(text).parent)!r} exists here"
                if isinstance(path_or_repo_id, str) and not text.startswith(("./", "../", "/", "~", ".\\", "..\\"))
                else "it is written as a path"
            )
            raise TicketError(
                f"There is no ticket folder {text!r} here ({folder.absolute()} does not exist). It looks like a local "
                f"path ({why}), so the Hub was not asked: check the path, or save the ticket there first. A Hub repo "
                "id is a string such as 'owner/name' that names no folder here."
            )
        if not folder.is_dir():
            raise TicketError(f"{folder} is a file; pass the ticket's folder or a Hub repo id.")
        if revision is not None:
            warnings.warn(f"revision={revision!r} is ignored: {folder} is a local folder.", stacklevel=3)
        logger.info("Loading the ticket from the folder %s", folder.absolute())
        return folder
    folder = Path(_download(str(path_or_repo_id), revision, token, cache_dir, local_files_only, force_download))
    # snapshot_download returns .../snapshots/<commit sha>
    logger.info("Loading the ticket from the Hub: %s@%s (cached in %s)", path_or_repo_id, folder.name, folder)
    return folder


def _download(
    repo_id: str,
    revision: str | None,
    token: str | bool | None,
    cache_dir: Any,
    local_files_only: bool,
    force_download: bool = False,
) -> str:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return snapshot_download(
            repo_id,
            revision=revision,
            token=token,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            force_download=force_download,
            allow_patterns=list(TICKET_FILES),
            library_name="lt-plugins",
        )
    except HFValidationError as err:
        raise TicketError(f"{repo_id!r} is neither a folder here nor a valid Hub repo id ({err}).") from err
    except Exception as err:
        if hasattr(err, "add_note"):
            err.add_note(f"lt_plugins: there is no folder {repo_id!r} here either, so it was looked up on the Hub.")
        raise
