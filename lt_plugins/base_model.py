"""`BaseModel`: where a ticket on a pretrained base (``weight_init="keep"``) gets its weights.

Like PEFT's ``base_model_name_or_path`` and ``revision``: a Hub repo id, a revision and,
for models inside a pipeline repo, a subfolder. A ticket records the revision pinned to a
commit sha, so the weights it was found on cannot move under it.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass
from typing import Any

_COMMIT = re.compile(r"[0-9a-f]{40}")


def is_repo_id(name: Any) -> bool:
    """Whether ``name`` is spelled like a Hub repo id, "owner/name" (a local path may be too).

    Example:
        >>> is_repo_id("google/ddpm-cifar10-32"), is_repo_id("/tmp/my_unet"), is_repo_id(None)
        (True, False, False)
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(name, str) or name.count("/") != 1:
        return False
    try:
        validate_repo_id(name)
    except HFValidationError:
        return False
    return True


@dataclass(frozen=True)
class BaseModel:
    """A pretrained model on the Hub: repo id, revision (branch, tag or commit sha) and subfolder.

    Pass one to `lt_plugins.Ticket.from_model` as ``base=`` (a plain repo id string works
    too); the ticket stores it `pin`-ned to a commit and `lt_plugins.Ticket.apply` loads it
    from there.

    Example:
        >>> base = BaseModel("me/ldm", revision="a" * 40, subfolder="unet")
        >>> base.pinned, str(base)
        (True, "me/ldm@aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa (subfolder 'unet')")
        >>> BaseModel.from_dict(base.to_dict()) == base
        True
    """

    repo_id: str
    revision: str = "main"
    subfolder: str | None = None

    def __post_init__(self) -> None:
        if not is_repo_id(self.repo_id):
            raise ValueError(
                f"Base model {self.repo_id!r} is not a Hub repo id (\"owner/name\"); a ticket records where "
                "its base can be downloaded, so upload the base to the Hub first."
            )
        if not isinstance(self.revision, str) or not self.revision:
            raise ValueError(f"Base model revision {self.revision!r} must be a branch, tag or commit sha.")
        if self.subfolder is not None and (not isinstance(self.subfolder, str) or not self.subfolder):
            raise ValueError(f"Base model subfolder {self.subfolder!r} must be a folder name or None.")

    @property
    def pinned(self) -> bool:
        """Whether ``revision`` is a commit sha (immutable), not a branch or tag."""
        return bool(_COMMIT.fullmatch(self.revision))

    def pin(self) -> BaseModel:
        """This base with its revision resolved to the commit it names now (asks the Hub unless pinned).

        Example:
            >>> BaseModel("me/unet", revision="b" * 40).pin().revision == "b" * 40
            True
        """
        if self.pinned:
            return self
        from huggingface_hub import HfApi

        try:
            sha = HfApi().model_info(self.repo_id, revision=self.revision).sha
        except Exception as err:  # offline, unknown repo or revision, no network: the client's many types
            raise ValueError(
                f"Could not resolve revision {self.revision!r} of base model {self.repo_id!r} to a commit "
                f"({type(err).__name__}: {err}). Pass the commit sha instead: "
                f"BaseModel({self.repo_id!r}, revision='<40-hex sha>')."
            ) from err
        return dataclasses.replace(self, revision=sha)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> BaseModel:
        """A pinned base from its `to_dict` form; a ValueError names what is wrong."""
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, dict) or not {"repo_id", "revision"} <= set(data) <= fields:
            raise ValueError(f"must be an object with 'repo_id', 'revision' and 'subfolder', got {data!r}.")
        base = cls(**data)
        if not base.pinned:
            raise ValueError(f"must pin the revision to a 40-hex commit sha, got {base.revision!r}.")
        return base

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.revision}" + (f" (subfolder {self.subfolder!r})" if self.subfolder else "")


def ticket_base(base: str | BaseModel | None, named: str | None) -> BaseModel | None:
    """The pinned base a ticket on a pretrained base (``weight_init="keep"``) records.

    ``base`` if given, else the repo id the model names itself (``named``, e.g. a diffusers
    ``config._name_or_path``) at the commit its main branch is at now -- with a warning, and no
    base, when that cannot be resolved. None when neither is known.

    Example:
        >>> ticket_base(BaseModel("me/unet", revision="c" * 40), None).revision == "c" * 40
        True
        >>> ticket_base(None, None) is None
        True
    """
    if isinstance(base, str):
        base = BaseModel(base)
    if base is not None:
        if not isinstance(base, BaseModel):
            raise ValueError(f"base must be a Hub repo id or a BaseModel, got {type(base).__name__}.")
        return base.pin()
    if named is None:
        return None
    try:
        return BaseModel(named).pin()
    except ValueError as err:
        warnings.warn(
            f"The model names {named!r} as its origin, but the ticket records no base: {err} "
            "Pass base= to Ticket.from_model to record it.",
            stacklevel=3,
        )
        return None
