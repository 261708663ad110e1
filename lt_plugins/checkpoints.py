"""Search checkpoints: their format, what run wrote them, whether they are intact, and resuming from them.

A checkpoint holds the generator's state, the optimizer, schedule and objective states, the
losses so far, a record of the run's settings (`record_differences` names what differs on a
resume) and the sha256 of its content (`checkpoint_digest`). It is written atomically, the
one before kept as ``checkpoint.prev.pt``; a damaged file is refused as "checkpoint damaged"
and resuming falls back on the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._io import atomic_path
from .errors import LTPluginsError

CHECKPOINT_NAME = "checkpoint.pt"
# 2 added "run" (what the run was) and "sha256" (of the content); see save_checkpoint.
CHECKPOINT_FORMAT = 2
PREVIOUS_CHECKPOINT_NAME = "checkpoint.prev.pt"


class CheckpointError(LTPluginsError, ValueError):
    """A checkpoint that cannot be resumed from: damaged, or written by a run with other settings.

    Example:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


_CHECKPOINT_TYPES = {
    "format": int, "step": int, "steps": int, "dense": bool, "run": dict, "generator": dict, "optimizer": dict,
    "scheduler": dict, "objective": dict, "losses": list, "sha256": str,
}


def data_key(real: torch.Tensor) -> dict[str, Any]:
    """Shape, dtype and a cheap hash of a real image tensor: the sha256 of about 2**20 evenly spaced values.

    Cheap for every run (tens of ms for the shipped MNIST), and exact: no floating-point
    reduction, whose rounding could depend on the thread count. Any change of shape, of
    order, or of values that the sample hits (some in every image, for sets under 2**20 images)
    gives another key.

    Example:
        >>> a = torch.zeros(4, 1, 8, 8)
        >>> data_key(a) == data_key(a.clone()), data_key(a) == data_key(a + 1)
        (True, False)
    """
    if hasattr(real, "fingerprint"):  # an ImageFolder streamed from disk: its files' paths, sizes and times
        return {"shape": list(real.shape), "dtype": "ImageFolder", "sha256": real.fingerprint()}
    flat = real.detach().reshape(-1)
    step = max(1, flat.numel() >> 20)
    digest = hashlib.sha256(flat[::step].to("cpu", torch.float32).contiguous().numpy().tobytes())
    return {"shape": list(real.shape), "dtype": str(real.dtype).removeprefix("torch."), "sha256": digest.hexdigest()}


def _update_digest(digest: Any, value: Any) -> None:
    """Feed ``value`` (nested dicts, lists, tensors, scalars) to ``digest`` in one canonical order."""
    if isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode() + b":")
            _update_digest(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[" if isinstance(value, list) else b"(")
        for item in value:
            _update_digest(digest, item)
        digest.update(b"]")
    elif isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"tensor:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def checkpoint_digest(state: dict[str, Any]) -> str:
    """sha256 of a checkpoint's content (every entry but ``"sha256"``), independent of how torch pickles it.

    Example:
        >>> checkpoint_digest({"step": 1, "t": torch.ones(2)}) == checkpoint_digest({"t": torch.ones(2), "step": 1})
        True
    """
    digest = hashlib.sha256()
    _update_digest(digest, {k: v for k, v in state.items() if k != "sha256"})
    return digest.hexdigest()


def _damaged(path: Path, problem: str) -> CheckpointError:
    return CheckpointError(f"checkpoint damaged: {path} {problem}")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The state saved in checkpoint ``path``, after checking its structure and sha256.

    Raises `CheckpointError` starting "checkpoint damaged:" for any damage (bit flips,
    truncation, wrong types, missing entries), never a raw unpickling error.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "checkpoint.pt"
        >>> _ = path.write_bytes(b"PK\x03\x04 not really")
        >>> read_checkpoint(path)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lt_plugins.checkpoints.CheckpointError: checkpoint damaged: ... is not a readable checkpoint (...
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling raises anything: zip, EOF, pickle, unicode errors
        message = " ".join(str(err).split())[:200] or type(err).__name__
        raise _damaged(path, f"is not a readable checkpoint ({message}).") from err
    if not isinstance(state, dict):
        raise _damaged(path, f"holds a {type(state).__name__}, not a checkpoint's dict.")
    if state.get("format") == 1:
        raise CheckpointError(
            f"{path} was written by an older lt_plugins (checkpoint format 1), which records neither its run's "
            "settings nor a hash, so resuming from it cannot be checked: delete it, or use another output folder."
        )
    for key, kind in _CHECKPOINT_TYPES.items():
        if key not in state:
            raise _damaged(path, f"has no {key!r} entry.")
        if not isinstance(state[key], kind) or (kind is int and isinstance(state[key], bool)):
            raise _damaged(path, f"entry {key!r} is a {type(state[key]).__name__}, not a {kind.__name__}.")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} has checkpoint format {state['format']}; this lt_plugins reads format {CHECKPOINT_FORMAT}."
        )
    if state["sha256"] != checkpoint_digest(state):
        raise _damaged(path, "does not match the sha256 it was saved with: its content changed after saving.")
    if not 0 <= state["step"] <= state["steps"] or len(state["losses"]) != state["step"]:
        raise _damaged(
            path, f"is inconsistent: step {state['step']} of {state['steps']}, {len(state['losses'])} losses."
        )
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state["generator"].items()):
        raise _damaged(path, "entry 'generator' is not a state_dict of named tensors.")
    return state


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flat(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def record_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"field: checkpoint X, this run Y"`` for each setting that differs between two run records.

    Example:
        >>> record_differences({"seed": 0, "config": {"density": 0.1}}, {"seed": 1, "config": {"density": 0.1}})
        ['seed: checkpoint 0, this run 1']
    """
    old, new = _flat(saved), _flat(current)
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key, "(not recorded)") != new.get(key, "(not recorded)"):
            show = [repr(v)[:80] for v in (old.get(key, "(not recorded)"), new.get(key, "(not recorded)"))]
            out.append(f"{key}: checkpoint {show[0]}, this run {show[1]}")
    return out


def run_record(search: Any, model: nn.Module, steps: int) -> dict[str, Any]:
    """What the run of ``search`` (a `TicketSearch` or `DenseSearch`) over ``steps`` is, as plain JSON values:
    a checkpoint records it, and a resume with any of them changed is refused (`record_differences`).

    Example:
        >>> import lt_plugins as lt
        >>> from lt_plugins.models import DCGANGenerator
        >>> gen = lt.wrap(DCGANGenerator(nz=8, ngf=8, nc=1, image_size=8))
        >>> search = lt.TicketSearch(gen, lt.MMD(lambda x: [x.flatten(1)]), progress=False)
        >>> record = run_record(search, gen, steps=10)
        >>> record["steps"], record["latent_shape"], record["ticket_config"]["density"]
        (10, [8], 0.1)
    """
    from .distributed import world
    from .masking import wrap_config

    objective = search.objective.describe()
    features = getattr(search.objective, "features", None)
    if isinstance(features, nn.Module):
        from .features import feature_key

        objective = {**objective, "features_key": feature_key(features)}
    latent_shape = search.latent_shape
    record = {
        "ticket_config": None if search.dense else wrap_config(model).to_dict(),
        "dense": search.dense,
        "steps": steps,
        "lr": search.lr,
        "betas": list(search.betas),
        "warmup": search.warmup,
        "batch_size": search.batch_size,
        "processes": world()[1],
        "seed": search.seed,
        "latent_dim": search.latent_dim,
        "latent_shape": None if latent_shape is None else list(latent_shape),
        "objective": objective,
        "data": getattr(search, "_data_key", None),
    }
    prior = search.call.prior if search.call is not None else None
    if prior is not None:  # recorded only when there is one, so checkpoints from before priors still resume
        record["prior"] = prior.to_dict()
    return json.loads(json.dumps(record, default=repr))


def save_checkpoint(path: Path, *, step: int, steps: int, dense: bool, run: dict[str, Any], model: nn.Module,
                    optimizer: Any, scheduler: Any, objective: Any, losses: list[float]) -> None:
    """Write checkpoint ``path`` atomically, keeping the one before as ``checkpoint.prev.pt``.

    The content carries its sha256 (`checkpoint_digest`) and the run record ``run``, so a
    resume can refuse a damaged file or another run's. Stale temporary files of a save killed
    mid-way are removed first.

    Example:
        >>> import tempfile
        >>> model = nn.Linear(2, 1)
        >>> optimizer = torch.optim.Adam(model.parameters())
        >>> scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)
        >>> from lt_plugins.objectives import MMD
        >>> path = Path(tempfile.mkdtemp()) / CHECKPOINT_NAME
        >>> save_checkpoint(path, step=1, steps=3, dense=True, run={}, model=model, optimizer=optimizer,
        ...                 scheduler=scheduler, objective=MMD(lambda x: [x]), losses=[0.5])
        >>> read_checkpoint(path)["step"]
        1
    """
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "steps": steps,
        "dense": dense,
        "run": run,
        "generator": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "objective": objective.state_dict(),
        "losses": list(losses),
    }
    state["sha256"] = checkpoint_digest(state)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if path.exists():
            os.replace(path, path.with_name(PREVIOUS_CHECKPOINT_NAME))


def load_checkpoint(path: Path, *, run: dict[str, Any], steps: int, dense: bool) -> tuple[dict[str, Any], Path] | None:
    """(state, the file it came from) to resume the run recorded as ``run`` from, or None (with a warning) when
    neither ``path`` nor its previous copy exists.

    A damaged ``path`` falls back on the previous copy, with a warning; a checkpoint of another
    run raises `CheckpointError` naming every setting that differs.

    Example:
        >>> import tempfile
        >>> with warnings.catch_warnings(record=True):
        ...     load_checkpoint(Path(tempfile.mkdtemp()) / CHECKPOINT_NAME, run={}, steps=3, dense=False) is None
        True
    """
    previous = path.with_name(PREVIOUS_CHECKPOINT_NAME)
    if not path.exists() and not previous.exists():
        warnings.warn(f"resume=True, but {path} does not exist: the search starts from step 0.", stacklevel=4)
        return None
    try:
        if not path.exists():  # a save was interrupted between its two renames
            raise _damaged(path, "is missing (a save was interrupted).")
        state, used = read_checkpoint(path), path
    except CheckpointError as err:
        if not str(err).startswith("checkpoint damaged"):
            raise
        if not previous.exists():
            raise CheckpointError(
                f"{err} No previous checkpoint ({previous.name}) is left to fall back on: delete {path} to start "
                "over, or use another output folder."
            ) from err
        try:
            state, used = read_checkpoint(previous), previous
        except CheckpointError as second:
            raise CheckpointError(
                f"{err} The previous one is not usable either: {second} Delete both to start over."
            ) from second
        warnings.warn(f"{err} Resuming from the previous checkpoint {previous} (step {state['step']}).",
                      stacklevel=4)
    differences = record_differences(state["run"], run)
    if differences:
        head = f"{used} was written by another run"
        if state["steps"] != steps or state["dense"] != dense:
            head = (f"{used} belongs to a search of {state['steps']} steps (dense={state['dense']}); this one has "
                    f"{steps} steps (dense={dense})")
        raise CheckpointError(
            f"{head}; these settings differ: {'; '.join(differences)}. Resume with the checkpoint's settings, "
            "or search into another output folder (or delete the checkpoint to start over)."
        )
    return state, used


def restore_checkpoint(state: dict[str, Any], used: Path, *, model: nn.Module, optimizer: Any, scheduler: Any,
                       objective: Any) -> None:
    """Load a checkpoint's states into the run's model, optimizer, schedule and objective; `CheckpointError`
    ("checkpoint damaged") when they do not fit.

    Example:
        >>> model = nn.Linear(2, 1)
        >>> optimizer = torch.optim.Adam(model.parameters())
        >>> state = {"generator": nn.Linear(3, 1).state_dict()}
        >>> restore_checkpoint(state, Path("checkpoint.pt"), model=model, optimizer=optimizer, scheduler=None,
        ...                    objective=None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lt_plugins.checkpoints.CheckpointError: checkpoint damaged: checkpoint.pt does not hold this generator's tensors ...
    """
    ours = model.state_dict()
    theirs = state["generator"]
    wrong = sorted(set(ours) ^ set(theirs)) or [k for k in ours if tuple(ours[k].shape) != tuple(theirs[k].shape)]
    if wrong:
        raise _damaged(used, f"does not hold this generator's tensors ({wrong[:3]} differ).")
    try:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        objective.load_state_dict(state["objective"])
    except (KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError) as err:
        raise _damaged(used, f"has an optimizer, schedule or objective state that does not fit ({err}).") from err
    model.load_state_dict(theirs)
