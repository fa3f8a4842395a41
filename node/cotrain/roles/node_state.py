"""Where a node keeps its local state, and the lock that gives one process at a time the right to act.

A node's state belongs to one account on one task of one deployment. The folder is keyed by all of it: chain
id, market address, task id, the hash of the block that created the task, and the account. The block hash is
what tells two deployments apart that share everything else, as a restarted local chain does (same chain id,
same market address from the same deployer nonce, task ids counting from 1 again). So a journal can never be
read for another task, another market or another chain.

Two processes acting for one account on one task would overwrite each other's salts and send each other's
transactions; the second one refuses to start instead (a :class:`~cotrain.process_lock.ProcessLock` on a file
in the state folder, released however the first process ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cotrain.errors import ConfigError
from cotrain.process_lock import ProcessLock
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


@dataclass
class NodeState:
    """An account's locked state folder for one task: its journal, held by this process alone."""

    key: StateKey
    folder: Path
    journal: Journal
    lock: ProcessLock

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
    lock = ProcessLock(folder / "lock")
    holder = lock.acquire()
    if holder is not None:
        raise ConfigError(
            f"another cotrain process (pid {holder}) already acts for {account} on task {view.task_id}; two "
            "would overwrite each other's commitments: stop that one first, or wait for it to finish"
        )
    return NodeState(key, folder, Journal(folder), lock)
