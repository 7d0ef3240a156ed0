"""Atomic file output: the one writer of model files and reports (L0, imports nothing of
wsagg).

A file is written to a temporary file in the destination directory, fsynced, then moved into
place — by ``os.replace`` when replacing is allowed, else by ``os.link``, which fails if the
destination exists (even one created meanwhile), so nothing a user has is overwritten
silently. The temporary file is removed on every failure (and on KeyboardInterrupt), and the
result gets the permissions ``open()`` would give a new file under the user's umask
(``mkstemp`` alone would leave ``0600``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["umask", "write_atomic"]


def umask() -> int:
    """The process umask (read without changing it for longer than one call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _exists_message(path: Path) -> str:
    return f"{str(path)!r} exists; pass overwrite=True to replace it."


def write_atomic(path: str | Path, data: bytes | str, *, overwrite: bool = False) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns the path.

    Raises ``FileExistsError`` when ``path`` exists and ``overwrite`` is false,
    ``IsADirectoryError`` when it is a directory and ``FileNotFoundError`` when its directory
    does not exist — each with a one-line message."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory; give a file name.")
    if path.exists() and not overwrite:
        raise FileExistsError(_exists_message(path))
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(
            f"Cannot write {str(path)!r}: the directory {str(parent)!r} does not exist."
        )
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            os.fchmod(fd, 0o666 & ~umask())
            with os.fdopen(fd, "wb") as fh:
                fd = -1
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            if fd != -1:
                os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path exists: no silent replacement
            except FileExistsError:
                raise FileExistsError(_exists_message(path)) from None
            except OSError:  # pragma: no cover - a file system without hard links
                if path.exists():
                    raise FileExistsError(_exists_message(path)) from None
                os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return path
