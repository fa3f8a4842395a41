"""TaskView reads a task's events once they are final: under the client's confirmations, once each, and again
after a reorganisation deeper than them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

import pytest
from cotrain.chain.anvil import Anvil
from cotrain.chain.client import ChainClient
from cotrain.chain.market import Market, TaskParams, deploy_market
from cotrain.roles.task_view import TaskView
from cotrain.storage.embedded import EmbeddedStore

SPEC_CID = "bafkreispec"
BUDGET = 10**15


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil(accounts=3) as anvil:
        yield anvil


def terms(chain: Anvil) -> TaskParams:
    """A one-round task with one validator (dev account 1) and dev account 2 as arbiter."""
    return TaskParams(
        spec_digest=bytes(32),
        num_rounds=1,
        min_contributors=1,
        max_contributors=1,
        join_duration=600,
        commit_duration=600,
        reveal_duration=600,
        validation_duration=600,
        challenge_duration=600,
        quorum=1,
        contributor_stake=1,
        validator_bond=1,
        validator_slash=1,
        challenge_bond=1,
        arbiter=chain.addresses[2],
    )


def markets(chain: Anvil, confirmations: int) -> tuple[Market, Market]:
    """A fresh market as its owner uses it (an instant client) and as a node reads it (``confirmations``)."""
    owner = deploy_market(ChainClient(chain.rpc_url, chain.signer(0), poll=0.02))
    client = ChainClient(chain.rpc_url, confirmations=confirmations)
    return owner, Market(client, owner.address, deploy_block=owner.deploy_block)


def test_an_event_is_read_once_it_has_the_confirmations_and_only_once(chain: Anvil, tmp_path: Path) -> None:
    # Prepare
    owner, reader = markets(chain, 2)
    task_id = owner.create_task(terms(chain), SPEC_CID, [chain.addresses[1]], BUDGET)
    view = TaskView(reader, EmbeddedStore(tmp_path), task_id)

    # Execute and assert: mined but unconfirmed, then confirmed by two blocks.
    view.refresh()
    assert view.events("TaskCreated") == []
    chain.rpc("anvil_mine", ["0x1"])
    view.refresh()
    assert view.events("TaskCreated") == []
    chain.rpc("anvil_mine", ["0x1"])
    view.refresh()
    view.refresh()
    (created,) = view.events("TaskCreated")
    assert created.task_id == task_id and created.block == reader.client.block_number() - 2


def test_a_reorganisation_deeper_than_the_confirmations_is_read_again(
    chain: Anvil, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: the node has read a task's creation under one confirmation.
    owner, reader = markets(chain, 1)
    task_id = owner.create_task(terms(chain), SPEC_CID, [chain.addresses[1]], BUDGET)
    chain.rpc("anvil_mine", ["0x1"])
    view = TaskView(reader, EmbeddedStore(tmp_path), task_id)
    view.refresh()
    (before,) = view.events("TaskCreated")

    # Execute: both blocks replaced, the creation mined again in the second of them.
    call = owner.contract.functions.createTask(astuple(terms(chain)), SPEC_CID, [chain.addresses[1]])
    transaction = {
        "from": chain.addresses[0],
        "to": owner.address,
        "value": hex(BUDGET),
        "data": call._encode_transaction_data(),
        "gas": hex(1_000_000),  # anvil's own estimate for a reorg's transaction can run out
    }
    chain.rpc("anvil_reorg", [2, [[transaction, 1]]])
    with caplog.at_level(logging.WARNING, logger="cotrain"):
        view.refresh()
    unconfirmed = view.events("TaskCreated")
    chain.rpc("anvil_mine", ["0x1"])
    view.refresh()

    # Assert: the orphaned log is gone at once; the new one is read once final, and only once.
    assert unconfirmed == []
    (after,) = view.events("TaskCreated")
    assert (after.task_id, after.block) == (task_id, before.block + 1)
    assert after.block_hash != before.block_hash
    assert any("deeper reorganisation" in record.getMessage() for record in caplog.records)
