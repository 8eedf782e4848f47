"""Small files written whole, and read-modify-written under one lock for threads and processes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def write_atomic(path: Path, text: str, mode: int = 0o644, fsync: bool = True) -> None:
    """Write text to path whole: a temp file of its own beside it, then one rename.

    The temp name is unique (mkstemp), so two writers never share one and a reader sees the
    old file or the new one, never a mix; it starts with "." so directory globs skip it.
    fsync=False for files rewritten every second whose loss on a power cut is tolerable.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold path's lock while reading, changing and writing it back.

    A thread lock orders this process's threads; an flock on `<path>.lock` orders the
    processes (portal workers) sharing the directory. The lock file stays: removing it would
    let a waiter lock a file that is already gone.
    """
    with _locks_guard:
        lock = _locks.setdefault(str(path.absolute()), threading.Lock())
    with lock:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock
