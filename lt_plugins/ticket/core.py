"""`Ticket`: mask bits + seed + config, made from a wrapped model, saved and loaded as a folder."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as save_safetensors
from torch import nn

from .._io import wait_for_folder, write_folder
from ..adapters import adapter_for, check_spec, get_adapter
from ..base_model import BaseModel, ticket_base
from ..config import TicketConfig
from ..generate import LatentCall
from ..init import fingerprint
from ..masking import masks as current_masks
from ..masking import masked_parameters, weight_scales, wrap_config, wrapped_root
from . import card, hub
from .format import (
    BIT_ORDER, CARD_NAME, CONFIG_NAME, FORMAT, KEPT_NAME, MASKS_NAME, OLD_SAMPLES_NAME,
    REMAINDER_NAME, SAMPLES_NAME, TICKET_FILES, TicketError, _check_base, _check_metrics, _check_names,
    _describe_objective, _environment, _fail, _get, _kept_limit, _load_tensors, _masks_limit, _parse_base,
    _parse_targets, _read_binary, _read_config, decode_mask, dtype_name, encode_mask, expected_kept, file_entry,
)
from .rebuild import _remainder, apply_ticket
from .sampling import _parse_call, _parse_objective, written_format_version


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
        self.samples = card.thumbnail(samples)
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
            samples: images (N, C, H, W) in [-1, 1], or a PIL image; saved as a small thumbnail of
                the first 4x4 (``samples.webp``, at most 40 kB).
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
        masks = {name: m.to("cpu") for name, m in current_masks(model).items()}
        fingerprints, kept, dtypes = {}, {}, {}
        for name, entry in masked_parameters(model).items():
            weight = entry.original.detach()
            fingerprints[name] = fingerprint(weight)
            dtypes[name] = dtype_name(weight.dtype)
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
        coded = {name: encode_mask(mask) for name, mask in self.masks.items()}
        files: dict[str, bytes] = {
            MASKS_NAME: save_safetensors({name: data for name, (data, _) in coded.items()}),
            REMAINDER_NAME: save_safetensors({n: t.contiguous() for n, t in self.remainder.items()}),
        }
        if self.kept_weights is not None:
            files[KEPT_NAME] = save_safetensors({n: t.contiguous() for n, t in self.kept_weights.items()})
        if self.samples is not None:  # hashed like the rest, so that a swapped image is noticed
            files[SAMPLES_NAME] = card.thumbnail_bytes(self.samples)
        config = {
            "format": FORMAT,
            "format_version": written_format_version(self.call, self.objective),
            "created_with": self.created_with,
            "model": self.spec,
            "ticket_config": self.config.to_dict(),
            "base": self.base.to_dict() if self.base else None,
            "density": self.density,
            "portable": self.portable,
            "masks": {"file": MASKS_NAME, "bit_order": BIT_ORDER, "element_order": "row-major"},
            "targets": [
                {
                    "name": name,
                    "shape": list(mask.shape),
                    "dtype": self.weight_dtypes[name],
                    "kept": int(mask.sum()),
                    "fingerprint": self.fingerprints[name],
                    "coding": coded[name][1],
                    **({"weight_scale": self.weight_scales[name]} if name in self.weight_scales else {}),
                }
                for name, mask in self.masks.items()
            ],
            "generator_call": self.call.describe() if self.call is not None else None,
            "remainder": {"file": REMAINDER_NAME, "tensors": len(self.remainder)},
            "kept_weights": {"file": KEPT_NAME} if self.portable else None,
            "files": {name: file_entry(data) for name, data in files.items()},
            "objective": self.objective,
            "metrics": self.metrics,
        }
        files[CONFIG_NAME] = (json.dumps(config, indent=2, allow_nan=False) + "\n").encode()
        files[CARD_NAME] = card.render_card(self, repo_id, SAMPLES_NAME if self.samples else None).encode()
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
        return _write_ticket_folder(save_directory, self._files(repo_id))

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
        folder = hub.resolve_source(path_or_repo_id, revision, token, cache_dir, local_files_only, force_download)
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
            coding = t["coding"] if data["format_version"] >= 3 else {"name": "packbits"}
            mask = decode_mask(packed[t["name"]], tuple(t["shape"]), t["kept"], coding, t["name"])
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

        samples = card.read_samples(folder, files, SAMPLES_NAME if data["format_version"] >= 3 else OLD_SAMPLES_NAME)
        return cls(
            spec,
            config,
            masks,
            {t["name"]: t["fingerprint"] for t in targets},
            remainder,
            kept_weights=kept,
            objective=_parse_objective(data),
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
        return hub.push_to_hub(self, repo_id, private, token, commit_message, revision)

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
        return apply_ticket(self, model, merge=merge, allow_remote_code=allow_remote_code)


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


def _write_ticket_folder(target: str | os.PathLike, files: dict[str, bytes]) -> Path:
    """`lt_plugins._io.write_folder`, refusing a target that is a file or holds anything but a ticket."""
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
    return write_folder(target, files)
