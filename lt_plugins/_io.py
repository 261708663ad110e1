"""Files: the package's cache folder and writes that never leave half a file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def cache_dir(*parts: str) -> Path:
    """``$LT_PLUGINS_CACHE`` (default ``~/.cache/lt_plugins``) joined with ``parts``, created.

    Example:
        >>> cache_dir("moments").name
        'moments'
    """
    root = Path(os.environ.get("LT_PLUGINS_CACHE", Path.home() / ".cache" / "lt_plugins"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def set_default_mode(path: str | os.PathLike) -> None:
    """Give a file or folder made by ``tempfile`` (private, 0600/0700) the mode ``open``/``mkdir`` would."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    A crash or an exception inside the block leaves ``path`` as it was.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text(), oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
        ('done', True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    set_default_mode(tmp)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
