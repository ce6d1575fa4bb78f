"""Atomic file writes with the usual permissions: the one place every output file is made.

``tempfile.mkstemp`` creates files readable by their owner only (mode 0o600), so a file
renamed into place from it would stay private. :func:`atomic_path` gives the temporary file
the mode a plain ``open(path, "w")`` would (``0o666`` less the process umask) before the
rename, so results, plots and reports can be read by colleagues and web servers.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "default_file_mode", "default_folder_mode", "fsync_path"]


def _umask() -> int:
    umask = os.umask(0)  # the only way to read it: set, then put it back
    os.umask(umask)
    return umask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the current umask."""
    return 0o666 & ~_umask()


def default_folder_mode() -> int:
    """The mode ``os.mkdir`` gives a new folder: ``0o777`` less the current umask."""
    return 0o777 & ~_umask()


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file or folder to disk (best effort: ignored where the OS refuses)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The block writes the temporary file (by name). On success it gets the default file mode
    and replaces ``path`` in one rename; on any error it is removed and ``path`` is untouched.

    Parameters
    ----------
    path : str or path-like
        The destination file. Its folder must exist.
    fsync : bool, default False
        Flush the file (and then its folder) to disk around the rename.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, default_file_mode())
        if fsync:
            fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_path(folder)
