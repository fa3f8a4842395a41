"""A real chain's faults, against real anvil through the fault-injecting proxy: dropped requests and answers,
HTTP 429 and rate-limit errors, capped log ranges, stuck and dropped transactions, and a reorganisation."""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from typing import Any

import pytest
from cotrain.chain.anvil import Anvil
from cotrain.chain.client import ChainClient
from cotrain.chain.market import Market
from cotrain.chain.settings import ChainSettings
from cotrain.errors import ChainError
from rpc_faults import Faults, FaultyRpc
from task_terms import SPEC_CID, task_params

#: Retries quick enough for a test, patient enough for a 5% fault rate.
QUICK = ChainSettings(retry_backoff=0.005, retry_backoff_cap=0.05, retry_budget=5.0)


@pytest.fixture
def proxy(anvil: Anvil) -> Iterator[FaultyRpc]:
    with FaultyRpc(anvil.rpc_url, seed=16) as faulty:
        yield faulty


@pytest.fixture
def no_automine(anvil: Anvil) -> Iterator[None]:
    """Transactions wait in the pool until the test mines them."""
    anvil.rpc("evm_setAutomine", [False])
    try:
        yield
    finally:
        anvil.rpc("evm_setAutomine", [True])


def create_task(market: Market) -> Any:
    """The bound ``createTask`` call of a one-validator task (its budget is the value sent)."""
    validators = [market.client.w3.eth.accounts[1]]
    return market.contract.functions.createTask(astuple(task_params(quorum=1)), SPEC_CID, validators)


# ---------------------------------------------------------------- reads


def test_reads_survive_drops_429s_and_rate_limits(anvil, proxy):
    client = ChainClient(proxy.url, settings=QUICK)
    proxy.faults = Faults(drop=0.2, http_429=0.1, rate_limit=0.1)

    heads = [client.block_number() for _ in range(40)]

    assert heads == [int(anvil.rpc("eth_blockNumber"), 16)] * 40
    assert proxy.counts["drop"] > 0 and proxy.counts["http_429"] > 0 and proxy.counts["rate_limit"] > 0
    assert proxy.counts["method:eth_blockNumber"] == 40 + proxy.injected()  # one retry per fault


def test_a_node_that_keeps_failing_ends_in_one_line_within_the_budget(proxy):
    client = ChainClient(proxy.url, settings=ChainSettings(retry_budget=0.3, retry_backoff=0.02))
    proxy.faults = Faults(drop=1.0)

    started = time.monotonic()
    with pytest.raises(ChainError) as info:
        client.block_number()

    elapsed = time.monotonic() - started
    assert 0.1 < elapsed < 1.0
    message = str(info.value)
    assert message.startswith(f"cannot reach RPC at {proxy.url} while reading the block number")
    assert "attempts over" in message and "\n" not in message


def test_paging_over_a_capped_range_returns_the_logs_of_one_uncapped_query(anvil, market, new_task, proxy):
    # Prepare: events spread over more blocks than the cap.
    for _ in range(4):
        new_task()
    everything = market.events()
    proxy.faults = Faults(log_block_cap=5)
    capped = Market(ChainClient(proxy.url, settings=ChainSettings(log_page_blocks=64)), market.address)

    # Execute
    paged = capped.events()
    refused = proxy.counts["log_cap"]
    again = capped.events()

    # Assert
    assert len(everything) >= 20 and market.client.block_number() > 3 * 5
    assert paged == everything and again == everything
    assert refused > 0
    assert proxy.counts["log_cap"] - refused < refused, "the second scan starts from the learned page size"


def test_a_node_that_refuses_one_block_of_logs_says_so(market, proxy):
    proxy.faults = Faults(log_block_cap=0, log_cap_message="block range too large")
    capped = Market(ChainClient(proxy.url), market.address)

    with pytest.raises(ChainError, match=r"refuses the logs of block \d+ alone: block range too large"):
        capped.events()


# ---------------------------------------------------------------- transactions


def test_market_transactions_land_exactly_once_through_a_faulty_endpoint(anvil, market, proxy, validators):
    # Prepare: 5% of requests dropped, 5% answered after the node acted on them, 5% HTTP 429, 5-block logs.
    owner = anvil.signer(7)
    client = ChainClient(proxy.url, owner, settings=QUICK, poll=0.01)
    faulty = Market(client, market.address)
    nonce_before = int(anvil.rpc("eth_getTransactionCount", [owner.address, "latest"]), 16)
    held_before = int(anvil.rpc("eth_getBalance", [market.address, "latest"]), 16)
    first_block = market.client.block_number() + 1
    proxy.faults = Faults(drop=0.05, drop_answer=0.05, http_429=0.05, log_block_cap=5)
    budgets = [10**15 + i for i in range(8)]

    # Execute
    task_ids = [
        faulty.create_task(task_params(quorum=1), SPEC_CID, [validators[0].address], b) for b in budgets
    ]
    created = faulty.events("TaskCreated", from_block=first_block)

    # Assert
    assert proxy.counts["drop"] + proxy.counts["drop_answer"] + proxy.counts["http_429"] > 0
    assert proxy.counts["log_cap"] > 0
    assert int(anvil.rpc("eth_getTransactionCount", [owner.address, "latest"]), 16) == nonce_before + 8
    assert int(anvil.rpc("eth_getBalance", [market.address, "latest"]), 16) == held_before + sum(budgets)
    mine = [event for event in created if event.args["owner"] == owner.address]
    assert [event.task_id for event in mine] == task_ids == sorted(set(task_ids))
    assert [market.get_task(task_id).escrow for task_id in task_ids] == budgets
    nonces = [anvil.rpc("eth_getTransactionByHash", [event.tx_hash])["nonce"] for event in mine]
    assert [int(nonce, 16) for nonce in nonces] == list(range(nonce_before, nonce_before + 8))


def test_a_send_whose_answer_is_lost_is_not_sent_twice(anvil, market, proxy):
    # Prepare: the node mines each transaction on arrival, and the client often does not hear back.
    owner = anvil.signer(7)
    client = ChainClient(proxy.url, owner, settings=QUICK, poll=0.01)
    nonce = int(anvil.rpc("eth_getTransactionCount", [owner.address, "latest"]), 16)
    count = market.task_count()
    proxy.faults = Faults(drop_answer=0.5, only=frozenset({"eth_sendRawTransaction"}))

    # Execute
    receipts = [client.transact(create_task(market), value=10**15) for _ in range(3)]

    # Assert: the seeded draws for the only faulted method lose some answers (the same ones every run).
    assert proxy.counts["drop_answer"] >= 2
    assert [
        int(anvil.rpc("eth_getTransactionByHash", [r["transactionHash"].to_0x_hex()])["nonce"], 16)
        for r in receipts
    ] == [nonce, nonce + 1, nonce + 2]
    assert int(anvil.rpc("eth_getTransactionCount", [owner.address, "latest"]), 16) == nonce + 3
    assert market.task_count() == count + 3


def test_a_stuck_transaction_is_replaced_with_bumped_fees_and_mined_once(anvil, market, no_automine):
    # Prepare
    owner = anvil.signer(7)
    client = ChainClient(anvil.rpc_url, owner, poll=0.02, timeout=5, settings=ChainSettings(stuck_after=0.2))
    count_before = market.task_count()
    nonce = int(anvil.rpc("eth_getTransactionCount", [owner.address, "pending"]), 16)
    first = client.submit(create_task(market), value=10**15)
    original = anvil.rpc("eth_getTransactionByHash", [first])

    # Execute: wait in the background until the pool holds a replacement, then mine one block.
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.wait, first)
        replacement = _pending_hash(anvil, owner.address, nonce, other_than=first)
        anvil.rpc("evm_mine")
        receipt = waiting.result(timeout=10)

    # Assert
    assert receipt["transactionHash"].to_0x_hex() == replacement != first
    mined = anvil.rpc("eth_getTransactionByHash", [replacement])
    for fee in ("maxFeePerGas", "maxPriorityFeePerGas"):
        assert int(mined[fee], 16) >= math.ceil(int(original[fee], 16) * 1.125)
    assert anvil.rpc("eth_getTransactionReceipt", [first]) is None
    assert int(anvil.rpc("eth_getTransactionCount", [owner.address, "latest"]), 16) == nonce + 1
    assert market.task_count() == count_before + 1


def test_a_transaction_at_the_fee_cap_is_left_to_wait(anvil, market, no_automine, caplog):
    owner = anvil.signer(7)
    settings = ChainSettings(stuck_after=0.1, max_fee_per_gas=1)
    client = ChainClient(anvil.rpc_url, owner, poll=0.02, timeout=0.5, settings=settings)
    tx_hash = client.submit(create_task(market), value=10**15)

    with caplog.at_level(logging.WARNING, logger="cotrain"), pytest.raises(ChainError, match="not mined"):
        client.wait(tx_hash)

    assert any("at the fee cap" in record.getMessage() for record in caplog.records)
    assert [entry["hash"] for entry in _pool(anvil, owner.address).values()] == [tx_hash]
    anvil.rpc("evm_mine")
    assert anvil.rpc("eth_getTransactionReceipt", [tx_hash])["status"] == "0x1"


def test_a_transaction_the_node_dropped_is_sent_again_unchanged(anvil, market, no_automine):
    owner = anvil.signer(7)
    client = ChainClient(anvil.rpc_url, owner, poll=0.02, timeout=5, settings=ChainSettings(stuck_after=0.2))
    tx_hash = client.submit(create_task(market), value=10**15)
    anvil.rpc("anvil_dropTransaction", [tx_hash])
    assert anvil.rpc("eth_getTransactionByHash", [tx_hash]) is None

    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.wait, tx_hash)
        assert _pending_hash(anvil, owner.address, None) == tx_hash
        anvil.rpc("evm_mine")
        receipt = waiting.result(timeout=10)

    assert receipt["transactionHash"].to_0x_hex() == tx_hash and receipt["status"] == 1


def test_a_transaction_behind_a_nonce_gap_sends_the_dropped_one_again_first(anvil, market, no_automine):
    # Prepare: the node dropped the first of two transactions, so the second waits behind a gap.
    owner = anvil.signer(7)
    client = ChainClient(anvil.rpc_url, owner, poll=0.02, timeout=5, settings=ChainSettings(stuck_after=0.2))
    count = market.task_count()
    first = client.submit(create_task(market), value=10**15)
    anvil.rpc("anvil_dropTransaction", [first])
    second = client.submit(create_task(market), value=2 * 10**15)

    # Execute: waiting for the second fills the gap with the first, unchanged.
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.wait, second)
        _wait_for(lambda: anvil.rpc("eth_getTransactionByHash", [first]) is not None)
        anvil.rpc("evm_mine")
        receipt = waiting.result(timeout=10)

    # Assert
    assert receipt["transactionHash"].to_0x_hex() == second
    assert client.wait(first)["status"] == 1
    assert market.task_count() == count + 2
    assert [market.get_task(count + i).escrow for i in (1, 2)] == [10**15, 2 * 10**15]


def test_a_nonce_gap_no_action_claims_is_filled_with_an_empty_transfer(anvil, market, no_automine):
    # Prepare: as above, but this process gave up on the first action (it forgot it).
    owner = anvil.signer(7)
    client = ChainClient(anvil.rpc_url, owner, poll=0.02, timeout=5, settings=ChainSettings(stuck_after=0.2))
    count = market.task_count()
    nonce = int(anvil.rpc("eth_getTransactionCount", [owner.address, "pending"]), 16)
    first = client.submit(create_task(market), value=10**15)
    anvil.rpc("anvil_dropTransaction", [first])
    client._shared.sent.pop(first)
    second = client.submit(create_task(market), value=2 * 10**15)

    # Execute
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(client.wait, second)
        filler = _pending_hash(anvil, owner.address, nonce)
        anvil.rpc("evm_mine")
        receipt = waiting.result(timeout=10)

    # Assert: the gap holds a transfer of nothing to itself; only the second action happened.
    gap = anvil.rpc("eth_getTransactionByHash", [filler])
    assert (gap["to"], int(gap["value"], 16), gap["input"]) == (owner.address.lower(), 0, "0x")
    assert receipt["status"] == 1 and anvil.rpc("eth_getTransactionReceipt", [first]) is None
    assert market.task_count() == count + 1 and market.get_task(count + 1).escrow == 2 * 10**15


def test_after_a_restart_the_nodes_pending_count_is_the_nonce(anvil, market, no_automine):
    # Prepare: one process sent a transaction that is still pending, then stopped.
    owner = anvil.signer(7)
    earlier = ChainClient(anvil.rpc_url, owner, poll=0.02)
    pending = earlier.submit(create_task(market), value=10**15)

    # Execute: a new process (its own nonce book) sends the next action.
    restarted = ChainClient(anvil.rpc_url, owner, poll=0.02)
    later = restarted.submit(create_task(market), value=2 * 10**15)
    anvil.rpc("evm_mine")

    # Assert: both are mined, one nonce each, in order.
    nonces = [int(anvil.rpc("eth_getTransactionByHash", [h])["nonce"], 16) for h in (pending, later)]
    assert nonces[1] == nonces[0] + 1
    assert [restarted.wait(h)["status"] for h in (pending, later)] == [1, 1]


# ---------------------------------------------------------------- confirmations and reorganisations


def test_a_log_is_final_only_under_confirmations_and_a_reorg_drops_it_until_mined_again(anvil, market, owner):
    # Prepare
    client = ChainClient(anvil.rpc_url, owner, poll=0.02, settings=ChainSettings(confirmations=2))
    view = Market(client, market.address)
    start = client.block_number() + 1
    budget = 3 * 10**15 + 7
    function = create_task(market)
    market.client.transact(function, value=budget)

    def created(to_block: str) -> list[str]:
        return [event.tx_hash for event in view.events("TaskCreated", from_block=start, to_block=to_block)]

    # Unconfirmed: the watcher sees it at the head, the node does not act on it.
    seen = created("latest")
    assert len(seen) == 1 and created("final") == []
    anvil.rpc("evm_mine")
    assert created("final") == []

    # Execute: a depth-2 reorganisation replaces both blocks, with the transaction in neither.
    anvil.rpc("anvil_reorg", [2, []])
    assert created("latest") == [] and created("final") == []
    anvil.rpc("anvil_mine", ["0x3"])
    assert created("final") == [], "a log that was reorganised away is never acted on"

    # The same action mined again: final only once confirmed, and exactly once.
    data = function._encode_transaction_data()
    # An explicit gas limit: anvil's own estimate for a reorg's transaction can run out.
    call = {
        "from": owner.address,
        "to": market.address,
        "value": hex(budget),
        "data": data,
        "gas": hex(10**6),
    }
    anvil.rpc("anvil_reorg", [1, [[call, 0]]])
    market.client.reset_nonces()  # the owner's nonce went back and forth with the chain
    again = created("latest")
    assert len(again) == 1 and created("final") == []
    anvil.rpc("anvil_mine", ["0x2"])
    assert created("final") == again
    assert market.get_task(market.task_count()).escrow == budget


# ---------------------------------------------------------------- helpers


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "not within 5 s"
        time.sleep(0.02)


def _pool(anvil: Anvil, address: str) -> dict[str, dict]:
    pending = anvil.rpc("txpool_content")["pending"]
    return dict(pending.get(address.lower(), {}))


def _pending_hash(anvil: Anvil, address: str, nonce: int | None, *, other_than: str = "") -> str:
    """The hash of ``address``'s pending transaction (at ``nonce``, or its only one) once it is not
    ``other_than``; waits up to 5 s for the client under test to send or replace it."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pool = _pool(anvil, address)
        entry = pool.get(str(nonce)) if nonce is not None else next(iter(pool.values()), None)
        if entry is not None and entry["hash"] != other_than:
            return str(entry["hash"])
        time.sleep(0.02)
    raise AssertionError(f"no pending transaction of {address} other than {other_than!r} within 5 s")


def test_a_send_through_a_node_that_keeps_failing_ends_in_one_line(anvil, market, proxy):
    owner = anvil.signer(7)
    client = ChainClient(proxy.url, owner, settings=ChainSettings(retry_budget=0.3, retry_backoff=0.02))
    nonce = anvil.rpc("eth_getTransactionCount", [owner.address, "latest"])
    proxy.faults = Faults(http_429=1.0)

    with pytest.raises(ChainError) as info:
        client.transact(create_task(market), value=10**15)

    pattern = rf"the node at {re.escape(proxy.url)} refused eth_\w+: HTTP 429 \(\d+ attempts over 0\.\d s\)"
    assert re.fullmatch(pattern, str(info.value))
    assert anvil.rpc("eth_getTransactionCount", [owner.address, "latest"]) == nonce
