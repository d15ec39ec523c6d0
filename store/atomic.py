"""Atomic file and folder writes: a temp beside the target, fsync, then ``os.replace``.

A full disk (ENOSPC), a file-size limit (EFBIG) or any other write error leaves the target as it
was (absent, or its previous complete content), removes every temp file, and raises a CoiError
that says so. Nothing is ever half-written where a reader looks.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from store.errors import CoiError

FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
# mkstemp/mkdtemp create 0600/0700 entries; an export should read like any file the user writes.
FILE_MODE, DIR_MODE = 0o644, 0o755


def write_error(target: str | Path, exc: BaseException, *, nothing: str = "nothing was written") -> CoiError:
    """The plain error for a failed write: disk full (or size limit) or another OS error."""
    if getattr(exc, "errno", None) in FULL_ERRNOS or "full" in str(exc).lower():
        what = "the disk is full (or a file size limit was reached)"
    else:
        what = f"the write failed ({exc})"
    return CoiError(
        f"Could not write {target}: {what}; {nothing}.",
        "Free some disk space or pick another folder, then try again.",
    )


def is_write_failure(exc: BaseException) -> bool:
    """True for OS-level write errors (disk full, size limit, I/O), not for programming errors."""
    return isinstance(exc, OSError)


@contextmanager
def staged_files(paths: list[Path], *, nothing: str = "nothing was written") -> Iterator[list[TextIO]]:
    """Text files to write ``paths`` through; all are renamed into place only if the block completes.

    Raises:
        CoiError: on an OSError while writing (disk full, size limit, ...); the temps are removed.
    """
    temps: list[str] = []
    handles: list[TextIO] = []
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.fchmod(fd, FILE_MODE)
            temps.append(tmp)
            handles.append(_open_temp(fd))
        yield handles
        for f in handles:
            f.flush()
            os.fsync(f.fileno())
            f.close()
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
    except BaseException as exc:
        for f in handles:
            _close_quietly(f)
        for tmp in temps:
            Path(tmp).unlink(missing_ok=True)
        if is_write_failure(exc):
            raise write_error(paths[0] if len(paths) == 1 else paths[0].parent, exc, nothing=nothing) from exc
        raise


def _open_temp(fd: int) -> TextIO:
    # A seam: the fault tests swap in a file that fails part-way, like a disk filling up.
    return os.fdopen(fd, "w", encoding="utf-8")


def _close_quietly(f: TextIO) -> None:
    try:
        f.close()
    except OSError:
        pass  # closing flushes; on a full disk that fails again, and the temp goes anyway


@contextmanager
def staged_dir(path: Path, *, nothing: str = "nothing was written") -> Iterator[Path]:
    """A temp folder beside ``path`` to fill; it replaces ``path`` only if the block completes.

    An existing folder at ``path`` is swapped out and removed after the new one is in place.

    Raises:
        CoiError: on an OSError while writing; the temp folder is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(DIR_MODE)
    try:
        yield tmp
        fsync_tree(tmp)
        _swap_in(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_write_failure(exc):
            raise write_error(path, exc, nothing=nothing) from exc
        raise


@contextmanager
def staged_path(path: Path) -> Iterator[Path]:
    """A temp file path beside ``path`` for writers that need a path, not a handle (SQLite's backup).

    The file is synced and renamed into place only if the block completes; otherwise it is removed
    and the error propagates unchanged (the caller words it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fsync_path(path: str | Path) -> None:
    """fsync one file or folder by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root``, then the folders (so the renames that follow are durable)."""
    for file in (p for p in root.rglob("*") if p.is_file()):
        fsync_path(file)
    for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        fsync_path(folder)


def _swap_in(new: Path, path: Path) -> None:
    if not path.exists():
        os.replace(new, path)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
    os.replace(path, old / "content")
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True)
