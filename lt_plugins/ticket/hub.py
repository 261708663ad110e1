"""Tickets on the Hugging Face Hub: where a ticket is read from (a local folder or a Hub snapshot),
and the upload of a saved ticket in one commit."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._io import wait_for_folder
from .format import TICKET_FILES, TicketError

if TYPE_CHECKING:
    from .core import Ticket

logger = logging.getLogger("lt_plugins.ticket")


def push_to_hub(
    ticket: Ticket,
    repo_id: str,
    private: bool | None = None,
    token: str | bool | None = None,
    commit_message: str | None = None,
    revision: str | None = None,
) -> Any:
    """`Ticket.push_to_hub`: create ``repo_id`` if needed and upload the saved ticket in one commit.

    Example (needs a Hub and a token, so not run here):
        >>> push_to_hub(ticket, "me/dcgan-10pct")  # doctest: +SKIP
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision not in (None, "main"):
        api.create_branch(repo.repo_id, branch=revision, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lt_ticket_") as tmp:
        folder = ticket.save_pretrained(Path(tmp) / "ticket", repo_id=repo.repo_id)
        written = {p.name for p in folder.iterdir()}
        return api.upload_folder(
            repo_id=repo.repo_id,
            folder_path=folder,
            commit_message=commit_message or f"Upload lottery ticket ({ticket.density:.1%} of weights kept)",
            revision=revision,
            delete_patterns=[name for name in TICKET_FILES if name not in written] or None,
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


def resolve_source(
    path_or_repo_id: str | os.PathLike,
    revision: str | None,
    token: str | bool | None,
    cache_dir: Any,
    local_files_only: bool,
    force_download: bool,
) -> Path:
    """The folder to read a ticket from: a local one (never the Hub for a local-looking path) or a Hub snapshot.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> resolve_source(folder, None, None, None, False, False) == Path(folder)
        True
    """
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
        if folder.is_file():  # one stat: a save between its two renames leaves no path at all, never a file
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
