"""TaskView reads a task's events once they are final: under the client's confirmations, once each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cotrain.chain.anvil import Anvil
from cotrain.chain.client import ChainClient
from cotrain.chain.market import Market, TaskParams, deploy_market
from cotrain.roles.task_view import TaskView
from cotrain.storage.embedded import EmbeddedStore


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    with Anvil(accounts=3) as anvil:
        yield anvil


def test_an_event_is_read_once_it_has_the_confirmations_and_only_once(chain: Anvil, tmp_path: Path) -> None:
    # Prepare: the owner acts with an instant client; the node reads with two confirmations.
    owner = deploy_market(ChainClient(chain.rpc_url, chain.signer(0), poll=0.02))
    reader = Market(
        ChainClient(chain.rpc_url, confirmations=2), owner.address, deploy_block=owner.deploy_block
    )
    terms = TaskParams(
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
    task_id = owner.create_task(terms, "bafkreispec", [chain.addresses[1]], 10**15)
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
