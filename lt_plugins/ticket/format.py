"""The ticket folder's format: file names, mask coding, manifest readers and their checks.

Format 3 codes each mask the cheaper of two ways, recorded per tensor in the manifest
(``targets[i].coding``):

- ``{"name": "packbits"}``: the mask flattened in row-major order and packed 8 bits a byte,
  least significant bit first (``numpy.packbits(..., bitorder="little")``); padding bits zero.
  Formats 1 and 2 store every mask this way.
- ``{"name": "rice", "symbol": s, "k": k}``: the positions of the bits equal to ``s`` (the
  rarer of kept/dropped), as gaps (how many other bits precede each one since the last),
  Golomb-Rice coded with parameter ``2**k``: first every quotient ``gap >> k`` in unary
  (that many ones, then a zero), then every remainder in ``k`` bits, most significant first;
  the bit string packed like ``packbits``. At 10% density that is about 0.476 bits a weight
  (the entropy H(0.1) is 0.469); near 50% coding does not pay, and ``packbits`` is used.

A decoder reads no more bytes than packed bits would take, allocates only what the target's
recorded shape holds (bounded by ``MAX_MODEL_VALUES`` in all), and runs no loop whose length
the file decides: a hostile file can neither blow up memory nor loop.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from ..base_model import BaseModel
from ..config import TicketConfig
from ..errors import LTPluginsError
from ..masking import kept_count

FORMAT = "lt_plugins.ticket"
# 2 added "base", the pretrained base of a weight_init="keep" ticket; version 1 tickets have none.
# 3 codes masks per tensor ("coding": packbits or rice) and stores samples as a small thumbnail.
# 4 may record a latent prior ("generator_call": {"prior": ...}, or a UNet's "objective": {"prior": ...});
# see sampling.written_format_version.
FORMAT_VERSION = 4
CONFIG_NAME = "ticket_config.json"
MASKS_NAME = "masks.safetensors"
REMAINDER_NAME = "remainder.safetensors"
KEPT_NAME = "kept_weights.safetensors"
CARD_NAME = "README.md"
SAMPLES_NAME = "samples.webp"  # format 3: a thumbnail of at most MAX_THUMBNAIL_BYTES
OLD_SAMPLES_NAME = "samples.png"  # formats 1 and 2: the full sample grid
TICKET_FILES = (CONFIG_NAME, MASKS_NAME, REMAINDER_NAME, KEPT_NAME, CARD_NAME, SAMPLES_NAME, OLD_SAMPLES_NAME)
BIT_ORDER = "little"
CODINGS = ("packbits", "rice")
MAX_RICE_K = 31
MAX_CONFIG_BYTES = 64 * 2**20
# Bounds on what a loaded ticket may make this process read or allocate (see docs/reliability.md).
MAX_FILE_BYTES = int(os.environ.get("LT_PLUGINS_MAX_TICKET_FILE_BYTES", 16 * 2**30))
MAX_SAMPLES_BYTES = 32 * 2**20
MAX_SAMPLES_PIXELS = 8192 * 8192
SAFETENSORS_HEADER_ALLOWANCE = 4096  # bytes of safetensors header per tensor, and once for the file
MAX_MODEL_VALUES = int(os.environ.get("LT_PLUGINS_MAX_MODEL_VALUES", 2**31))
MAX_SPEC_ITEMS = 4096  # numbers, strings and containers in a model spec's config


class TicketError(LTPluginsError, ValueError):
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




def _gaps(positions: np.ndarray) -> np.ndarray:
    """How many other bits precede each position since the previous one."""
    return np.diff(positions, prepend=-1) - 1


def _rice_bits(gaps: np.ndarray, k: int) -> int:
    return int((gaps >> k).sum()) + gaps.size * (k + 1)


def _rice_encode(gaps: np.ndarray, k: int) -> np.ndarray:
    """Unary quotients (ones, then a zero), then k-bit remainders, most significant bit first."""
    q = gaps >> k
    unary = np.ones(int(q.sum()) + q.size, dtype=np.uint8)
    unary[np.cumsum(q + 1) - 1] = 0
    remainders = ((gaps[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(np.concatenate([unary, remainders]), bitorder=BIT_ORDER)


def encode_mask(mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, Any]]:
    """A boolean mask as bytes (a 1-D uint8 tensor) and the coding it used: Golomb-Rice of the
    gaps between its rarer bits where that is smaller than packed bits, else `pack_mask`.

    Example:
        >>> mask = torch.zeros(1000, dtype=torch.bool); mask[::10] = True
        >>> data, coding = encode_mask(mask)
        >>> coding, data.numel(), torch.equal(decode_mask(data, (1000,), 100, coding), mask)
        ({'name': 'rice', 'symbol': 1, 'k': 2}, 63, True)
        >>> encode_mask(torch.arange(8) % 2 == 0)[1]
        {'name': 'packbits'}
    """
    flat = mask.detach().to("cpu", torch.bool).contiguous().numpy().reshape(-1)
    kept = int(flat.sum())
    symbol = int(kept <= flat.size - kept)
    gaps = _gaps(np.flatnonzero(flat == bool(symbol)))
    mean = float(gaps.mean()) if gaps.size else 0.0
    near = max(0, int(math.log2(mean + 1)))  # the best k is within one of log2 of the mean gap
    k = min(range(max(0, near - 2), min(MAX_RICE_K, near + 2) + 1), key=lambda j: _rice_bits(gaps, j))
    if (_rice_bits(gaps, k) + 7) // 8 < (flat.size + 7) // 8:
        return torch.from_numpy(_rice_encode(gaps, k)), {"name": "rice", "symbol": symbol, "k": k}
    return pack_mask(mask), {"name": "packbits"}


def check_coding(coding: Any, where: str) -> dict[str, Any]:
    """A target's recorded coding, checked: ``{"name": "packbits"}`` or a rice coding with its symbol and k.

    Example:
        >>> check_coding({"name": "rice", "symbol": 1, "k": 3}, "targets[0].'coding'")
        {'name': 'rice', 'symbol': 1, 'k': 3}
        >>> check_coding({"name": "zip"}, "targets[0].'coding'")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lt_plugins.ticket.format.TicketError: ticket_config.json: targets[0].'coding' must be one of ..."{'name': 'zip'}".
    """
    if not isinstance(coding, dict) or coding.get("name") not in CODINGS:
        raise _fail(where, f"must be one of {[{'name': c} for c in CODINGS]} (with 'symbol' and 'k' for rice), "
                           f"got {str(coding)[:80]!r}.")
    if coding["name"] == "rice":
        symbol, k = coding.get("symbol"), coding.get("k")
        if symbol not in (0, 1) or isinstance(symbol, bool) or not isinstance(k, int) or isinstance(k, bool) \
                or not 0 <= k <= MAX_RICE_K:
            raise _fail(
                where, f"is a rice coding, which needs 'symbol' 0 or 1 and 'k' in 0..{MAX_RICE_K}; got {coding!r}."
            )
    return coding


def decode_mask(
    data: torch.Tensor, shape: tuple[int, ...], kept: int, coding: dict[str, Any], name: str = "mask"
) -> torch.Tensor:
    """Inverse of `encode_mask`, given the mask's shape and kept count; refuses any stream that is
    not exactly what `encode_mask` writes. Reads at most the bytes packed bits would take.

    Example:
        >>> decode_mask(torch.tensor([0b01111], dtype=torch.uint8), (6,), 1, {"name": "rice", "symbol": 1, "k": 0})
        tensor([False, False, False, False,  True, False])
    """
    if coding["name"] == "packbits":
        return unpack_mask(data, shape, name)
    n, symbol, k = math.prod(shape), coding["symbol"], coding["k"]
    count = kept if symbol else n - kept

    def corrupt(problem: str) -> TicketError:
        return TicketError(f"{MASKS_NAME}: the rice-coded mask of {name!r} {problem}; the file is corrupt.")

    if data.dtype != torch.uint8 or data.ndim != 1 or data.numel() > (n + 7) // 8:
        raise corrupt(f"must be at most {(n + 7) // 8} bytes of uint8, got {tuple(data.shape)} {data.dtype}")
    if (n + 8) << (k + 1) >= 1 << 62:
        raise corrupt(f"has k={k}, too large for its {n} weights")
    mask = np.full(n, not symbol, dtype=bool)
    if count == 0:
        if data.numel():
            raise corrupt("holds bytes although it codes no position")
        return torch.from_numpy(mask).reshape(shape)
    bits = np.unpackbits(data.numpy(), bitorder=BIT_ORDER)
    ends = np.flatnonzero(bits == 0)[:count]
    if ends.size < count:
        raise corrupt(f"ends before its {count} gaps")
    start, stop = int(ends[-1]) + 1, int(ends[-1]) + 1 + count * k
    if stop > bits.size or data.numel() != (stop + 7) // 8 or bits[stop:].any():
        raise corrupt(f"is {data.numel()} bytes, but its {count} gaps take {stop} bits (padding must be zero)")
    q = np.diff(ends, prepend=-1) - 1
    if int(q.max()) > n >> k:
        raise corrupt(f"has a gap longer than its {n} weights")
    powers = np.int64(1) << np.arange(k - 1, -1, -1, dtype=np.int64)
    positions = np.cumsum(((q << k) | bits[start:stop].reshape(count, k).astype(np.int64) @ powers) + 1) - 1
    if int(positions[-1]) >= n:
        raise corrupt(f"places a bit at {int(positions[-1])}, past its {n} weights")
    mask[positions] = bool(symbol)
    return torch.from_numpy(mask).reshape(shape)

def expected_kept(config: TicketConfig, sizes: dict[str, int]) -> dict[str, int] | int:
    """What the top-k selection keeps: per tensor (layer scope) or in total (global scope).

    Example:
        >>> expected_kept(TicketConfig(density=0.1), {"a": 100, "b": 3})
        {'a': 10, 'b': 1}
    """
    if config.scope == "global":
        return kept_count(config.density, sum(sizes.values()))
    return {name: kept_count(config.density, n) for name, n in sizes.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``.

    Example:
        >>> dtype_name(torch.bfloat16)
        'bfloat16'
    """
    return str(dtype).removeprefix("torch.")


def file_entry(data: bytes) -> dict[str, Any]:
    """The manifest's record of a file: its size and sha256.

    Example:
        >>> file_entry(b"")["bytes"]
        0
    """
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _environment() -> dict[str, str]:
    from .. import __version__

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
        if data["format_version"] >= 3:
            check_coding(t.get("coding"), f"{where}.'coding'")
        seen.add(name)
    total = sum(math.prod(t["shape"]) for t in targets)
    if total > MAX_MODEL_VALUES:
        raise _fail("'targets'", f"mask {total:,} weights, more than the {MAX_MODEL_VALUES:,} a ticket may hold "
                                 "(LT_PLUGINS_MAX_MODEL_VALUES raises the limit).")
    return targets


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

