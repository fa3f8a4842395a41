"""One process at a time: an exclusive ``flock`` on a file that holds the holder's process id.

The kernel releases a ``flock`` when its process dies, however it dies, so a crash never leaves a stale lock.
The file itself stays: deleting it would let a second process lock a new inode while the first still holds
the old one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class ProcessLock:
    """An exclusive, non-blocking lock on ``path``, held until :meth:`release` or the process ends."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock and write this process's id into the file; if another process holds it, return
        that process's id as written there (``"?"`` when unreadable) and hold nothing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            return holder
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        """Give the lock up (closing the file releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
