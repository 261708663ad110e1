"""Files: the package's cache folder and its tensor files, and writes that never leave half a file or half a folder behind."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import load_file, save_file


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


def read_cached_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor] | None:
    """The tensors of cache file ``path`` (safetensors, on the CPU), or None when it is absent.

    A file that does not read (truncated by a full disk, written by another program) is a
    cache miss with a warning, never an error: the caller recomputes and overwrites it.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.safetensors"
        >>> read_cached_tensors(path) is None
        True
        >>> write_cached_tensors(path, {"x": torch.ones(2)})
        >>> read_cached_tensors(path)["x"].tolist()
        [1.0, 1.0]
    """
    if not os.path.exists(path):
        return None
    try:
        return load_file(str(path))  # CPU first: safetensors refuses "cpu:0", the device of gloo ranks
    except Exception as error:
        warnings.warn(f"ignoring unreadable cache file {path} ({error}); recomputing it.", stacklevel=2)
        return None


def write_cached_tensors(
    path: str | os.PathLike, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` to cache file ``path`` (safetensors) atomically; `read_cached_tensors` reads it."""
    with atomic_path(path) as tmp:
        save_file({name: t.detach().cpu().contiguous() for name, t in tensors.items()}, str(tmp), metadata=metadata)


# ---------------------------------------------------------------------------------------------
# Folders replaced in one step. A save writes a hidden ``.NAME.*.saving`` folder, moves the old
# folder aside into a hidden ``.NAME.*.old`` one, renames the new one in, then deletes the aside
# copy. A live save holds a lock (flock) on both hidden folders, so that a later save or load can
# tell what a killed save left behind (unlocked) from what one in progress is using.

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; hidden folders count as abandoned after an hour
    fcntl = None

_ASIDE_SUFFIX, _STAGING_SUFFIX, _KEPT = ".old", ".saving", "kept"
_ABANDONED_AFTER_S = 3600.0  # without flock only


def _lock(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@contextlib.contextmanager
def _claim(path: Path) -> Iterator[bool]:
    """Yield True, holding its lock, when no live save holds ``path`` (a killed one left it); else False."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        if fcntl is None:
            yield time.time() - os.stat(fd).st_mtime > _ABANDONED_AFTER_S
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _hidden(target: Path, suffix: str) -> list[Path]:
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*{suffix}"))


def recover_folder(target: str | os.PathLike) -> bool:
    """Finish what a save killed mid-way left beside ``target``; True while a live save is still at work.

    Puts back the old folder when the save died between its two renames (``target`` missing,
    the old one aside), and removes abandoned temporary folders. What a live save holds is
    left alone.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "ticket"
        >>> aside = target.parent / ".ticket.x1.old" / "kept"
        >>> aside.mkdir(parents=True)
        >>> recover_folder(target), target.is_dir(), sorted(p.name for p in target.parent.iterdir())
        (False, True, ['ticket'])
    """
    target = Path(target)
    if not target.parent.is_dir():
        return False
    busy = False
    for aside in _hidden(target, _ASIDE_SUFFIX):
        with _claim(aside) as claimed:
            if not claimed:
                busy = True
                continue
            if (aside / _KEPT).is_dir() and not target.exists():
                with contextlib.suppress(OSError):  # another process may have put it back first
                    os.rename(aside / _KEPT, target)
            shutil.rmtree(aside, ignore_errors=True)
    for staging in _hidden(target, _STAGING_SUFFIX):
        with _claim(staging) as claimed:
            if claimed:
                shutil.rmtree(staging, ignore_errors=True)
            else:
                busy = True
    return busy


def wait_for_folder(target: str | os.PathLike, timeout: float = 5.0) -> bool:
    """Whether ``target`` exists, after recovering a killed save and waiting out one in progress.

    Example:
        >>> import tempfile, pathlib
        >>> wait_for_folder(pathlib.Path(tempfile.mkdtemp()) / "missing")
        False
    """
    target = Path(target)
    stop = time.monotonic() + timeout
    while not target.exists():
        if not recover_folder(target) or time.monotonic() > stop:
            return target.exists()
        time.sleep(0.01)
    return True


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform / file system lets a folder be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``target``; on success it replaces ``target``.

    At every moment ``target`` is the old folder or the new one; a crash between the two
    renames leaves the old one aside, and the next `recover_folder` (every save and every
    load through `wait_for_folder`) puts it back. Abandoned hidden folders are removed then.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out"
        >>> for text in ("old", "new"):
        ...     with atomic_folder(target) as tmp:
        ...         _ = (tmp / "a.txt").write_text(text)
        >>> (target / "a.txt").read_text(), sorted(p.name for p in target.parent.iterdir())
        ('new', ['out'])
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=_STAGING_SUFFIX, dir=target.parent))
    set_default_mode(staging)
    staging_fd = _lock(staging)
    try:
        yield staging
        _fsync_dir(staging)
        if not target.exists():
            os.rename(staging, target)
        else:
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=_ASIDE_SUFFIX, dir=target.parent))
            aside_fd = _lock(aside)
            try:
                os.rename(target, aside / _KEPT)
                try:
                    os.rename(staging, target)
                except BaseException:
                    os.rename(aside / _KEPT, target)
                    raise
            finally:
                if target.exists():  # else the old folder stays aside for recover_folder, rather than lost
                    shutil.rmtree(aside, ignore_errors=True)
                os.close(aside_fd)
        _fsync_dir(target.parent)
    finally:
        os.close(staging_fd)
        shutil.rmtree(staging, ignore_errors=True)


def write_file(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` and fsync it, so that a folder renamed into place after holds it whole.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
        >>> write_file(path, b"abc"); path.read_bytes()
        b'abc'
    """
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_folder(target: str | os.PathLike, files: dict[str, bytes]) -> Path:
    """Write ``files`` (name -> bytes) into a new folder beside ``target``, then swap it into place.

    The folder at ``target`` is at every moment the old one or the new one, never half of
    either (`atomic_folder`); a save killed between its two renames leaves the old folder
    aside, put back by the next save or load, and stale temporary folders are removed by the
    next save.

    Example:
        >>> import tempfile, pathlib
        >>> folder = write_folder(pathlib.Path(tempfile.mkdtemp()) / "f", {"a.txt": b"1"})
        >>> sorted(p.name for p in folder.iterdir())
        ['a.txt']
    """
    target = Path(target)
    with atomic_folder(target) as staging:
        for name, data in files.items():
            write_file(staging / name, data)
    return target
