"""Where a node keeps its local state, and the lock that gives one process at a time the right to act.

A node's state belongs to one account on one task of one deployment. The folder is keyed by all of it: chain
id, market address, task id, the hash of the block that created the task, and the account. The block hash is
what tells two deployments apart that share everything else, as a restarted local chain does (same chain id,
same market address from the same deployer nonce, task ids counting from 1 again). So a journal can never be
read for another task, another market or another chain.

Two processes acting for one account on one task would overwrite each other's salts and send each other's
transactions; the second one refuses to start instead. The lock is an advisory ``flock`` on a file in the
state folder: the kernel releases it when the process dies, however it dies, so a crash never leaves a stale
lock behind.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cotrain.errors import ConfigError
from cotrain.roles.journal import Journal

if TYPE_CHECKING:  # the command line imports this module before it needs torch
    from cotrain.roles.task_view import TaskView

DEFAULT_STATE_ROOT = Path(".cotrain/state")


@dataclass(frozen=True)
class StateKey:
    """Everything a node's local state belongs to."""

    chain_id: int
    market: str
    task_id: int
    task_block_hash: str  # 0x-hex hash of the block whose TaskCreated event created the task
    account: str

    def folder(self, root: Path) -> Path:
        """The state folder under ``root``."""
        task = f"task-{self.task_id}-{self.task_block_hash.removeprefix('0x')[:16]}"
        return Path(root) / f"chain-{self.chain_id}" / self.market.lower() / task / self.account.lower()


def state_key(view: TaskView, account: str) -> StateKey:
    """The key of ``account``'s state for the viewed task."""
    created = view.created_event()
    return StateKey(
        chain_id=view.market.client.chain_id,
        market=view.market.address,
        task_id=view.task_id,
        task_block_hash=created.block_hash,
        account=account,
    )


class StateLock:
    """An exclusive, non-blocking lock on a state folder, held until :meth:`release` or the process ends."""

    def __init__(self, folder: Path, what: str) -> None:
        self.path = Path(folder) / "lock"
        self.what = what
        self._fd: int | None = None

    def acquire(self) -> StateLock:
        """Take the lock, or raise a one-line ConfigError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"another cotrain process (pid {holder}) already acts for {self.what}; two would overwrite "
                "each other's commitments: stop that one first, or wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (closing the file releases the flock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class NodeState:
    """An account's locked state folder for one task: its journal, held by this process alone."""

    key: StateKey
    folder: Path
    journal: Journal
    lock: StateLock

    def close(self) -> None:
        """Release the lock (the journal's files stay)."""
        self.lock.release()


def open_node_state(view: TaskView, account: str, root: Path = DEFAULT_STATE_ROOT) -> NodeState:
    """Lock and open ``account``'s state folder for the viewed task under ``root``.

    Raises
    ------
    ConfigError
        When another process already holds the folder.
    """
    key = state_key(view, account)
    folder = key.folder(root)
    lock = StateLock(folder, f"{account} on task {view.task_id}").acquire()
    return NodeState(key, folder, Journal(folder), lock)
