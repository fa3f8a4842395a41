"""Event-driven waiting: a task's logs wake :class:`TaskEvents` through anvil's WebSocket, other tasks' logs
do not, and without a WebSocket it sleeps out the timeout (polling) and warns once."""

from __future__ import annotations

import logging
import time

import pytest
from cotrain.chain.anvil import Anvil, free_port
from cotrain.chain.watch import TaskEvents, websocket_url
from cotrain.errors import ConfigError


def test_websocket_url_keeps_host_port_and_path():
    assert websocket_url("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert websocket_url("https://rpc.example.org/v1/key") == "wss://rpc.example.org/v1/key"


def test_an_event_of_the_task_wakes_the_waiter_and_one_of_another_task_does_not(
    anvil, market, new_task, validators
):
    watched, other = new_task(bond=False), new_task(bond=False)
    with TaskEvents(anvil.rpc_url, market.address, watched) as events:
        assert events.wait(0.05) is False  # subscribed; nothing happened yet

        market.with_account(validators[0]).bond_validator(other)
        started = time.monotonic()
        assert events.wait(0.5) is False
        assert time.monotonic() - started >= 0.45

        market.with_account(validators[0]).bond_validator(watched)
        market.with_account(validators[1]).bond_validator(watched)
        started = time.monotonic()
        assert events.wait(30.0) is True  # queued while we were busy: returns at once
        assert time.monotonic() - started < 1.0
        # Both notifications were drained by the first wake: the next wait times out.
        assert events.wait(0.2) is False


def test_without_a_websocket_it_sleeps_out_the_timeout_and_warns_once(caplog, market):
    events = TaskEvents(f"http://127.0.0.1:{free_port()}", market.address, 1)
    with caplog.at_level(logging.WARNING, logger="cotrain"):
        started = time.monotonic()
        assert events.wait(0.3) is False
        assert events.wait(0.3) is False
        elapsed = time.monotonic() - started
    assert 0.55 <= elapsed < 5.0
    warnings = [r.getMessage() for r in caplog.records if "polling instead" in r.getMessage()]
    assert len(warnings) == 1 and "no event subscription at ws://127.0.0.1:" in warnings[0]


@pytest.mark.parametrize("mixed_mining", [True, False])
def test_mixed_mining_mines_a_transaction_on_arrival_and_interval_mining_waits_for_the_block(mixed_mining):
    with Anvil(block_time=3, mixed_mining=mixed_mining) as chain:
        start_block = int(chain.rpc("eth_blockNumber"), 16)
        # Wait for the next interval block so the transaction arrives early in a 3-s slot.
        while int(chain.rpc("eth_blockNumber"), 16) == start_block:
            time.sleep(0.02)
        started = time.monotonic()
        tx = chain.rpc(
            "eth_sendTransaction", [{"from": chain.addresses[0], "to": chain.addresses[1], "value": "0x1"}]
        )
        while chain.rpc("eth_getTransactionReceipt", [tx]) is None:
            time.sleep(0.01)
        elapsed = time.monotonic() - started
    if mixed_mining:
        assert elapsed < 2.5  # not the rest of the 3-s slot (on a loaded machine a request can take a second)
    else:
        assert 1.5 < elapsed < 6.0


def test_only_the_chosen_events_wake_the_waiter(anvil, market, new_task, validators):
    task = new_task(bond=False)
    with TaskEvents(anvil.rpc_url, market.address, task, market.event_topics(["TaskCancelled"])) as events:
        assert events.wait(0.05) is False

        market.with_account(validators[0]).bond_validator(task)
        assert events.wait(0.3) is False

        market.cancel_task(task)
        assert events.wait(30.0) is True


def test_unknown_event_names_are_refused(market):
    with pytest.raises(ConfigError, match=r"unknown market events \['Nope'\]"):
        market.event_topics(["RoundScheduled", "Nope"])
