"""Durable files: atomic replacement, and the identity that tells whether a file changed.

Shared by the JSON task store (its main file and journal), the control server's change feed and
its tokens file, so that "write it whole or not at all" and "did someone else change it?" are
written once.
"""

from __future__ import annotations

import os
from pathlib import Path

# (inode, size, mtime): a rename gives a new inode, an append a new size, a rewrite a new mtime
FileIdentity = tuple[int, int, int]


def identity_of(st: os.stat_result) -> FileIdentity:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def file_identity(path: str | os.PathLike[str]) -> FileIdentity | None:
    """The file's identity, or None when it does not exist (or cannot be read)."""
    try:
        return identity_of(os.stat(path))
    except OSError:
        return None


def fsync_dir(directory: Path) -> None:
    """A rename or a new file is durable only once its directory entry is."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (it may write fewer)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> FileIdentity:
    """Replace ``path`` with ``data`` whole (temp file, fsync, rename, directory fsync), readable
    only by its owner (``mode``); returns the new file's identity."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # the umask cannot widen it, but an old temp file might have other bits
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return identity_of(os.stat(path))


__all__ = ["FileIdentity", "atomic_write", "file_identity", "fsync_dir", "identity_of", "write_all"]
