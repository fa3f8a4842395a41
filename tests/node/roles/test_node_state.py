"""Tests for cotrain.roles.node_state and cotrain.process_lock: state folders keyed so that no two tasks,
markets, chains or deployments share one, and one process at a time per folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from cotrain.process_lock import ProcessLock
from cotrain.roles.node_state import StateKey

MARKET = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BLOCK = "0x" + "ab" * 32


def key(**changes: object) -> StateKey:
    fields = {"chain_id": 31337, "market": MARKET, "task_id": 1, "task_block_hash": BLOCK, "account": ACCOUNT}
    return StateKey(**{**fields, **changes})  # type: ignore[arg-type]


def test_the_folder_names_chain_market_task_and_account(tmp_path: Path) -> None:
    folder = key().folder(tmp_path)

    assert folder == tmp_path / "chain-31337" / MARKET.lower() / f"task-1-{'ab' * 8}" / ACCOUNT.lower()


def test_any_difference_in_the_key_gives_another_folder(tmp_path: Path) -> None:
    # A restarted local chain has the same chain id, market address and task id: only the block differs.
    variants = [
        key(),
        key(chain_id=1),
        key(market="0x" + "11" * 20),
        key(task_id=2),
        key(task_block_hash="0x" + "cd" * 32),
        key(account="0x" + "22" * 20),
    ]

    assert len({k.folder(tmp_path) for k in variants}) == len(variants)


def test_the_account_and_market_are_keyed_case_insensitively(tmp_path: Path) -> None:
    assert key(account=ACCOUNT.lower(), market=MARKET.upper().replace("0X", "0x")).folder(
        tmp_path
    ) == key().folder(tmp_path)


def test_a_held_lock_names_its_holder_and_is_free_after_release(tmp_path: Path) -> None:
    first, second = ProcessLock(tmp_path / "lock"), ProcessLock(tmp_path / "lock")

    assert first.acquire() is None
    assert (tmp_path / "lock").read_text().strip() == str(os.getpid())
    assert second.acquire() == str(os.getpid())
    first.release()
    assert second.acquire() is None
    second.release()


def test_a_lock_is_released_when_its_process_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from cotrain.process_lock import ProcessLock; "
            f"assert ProcessLock({str(tmp_path / 'lock')!r}).acquire() is None; print('held', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert ProcessLock(tmp_path / "lock").acquire() == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 5
    lock = ProcessLock(tmp_path / "lock")
    while (found := lock.acquire()) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert found is None
