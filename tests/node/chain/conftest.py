"""Fixtures for the chain layer's tests: an anvil chain per module on a free port, a market deployed from the
shipped artifact, dev accounts in fixed roles, and a helper that creates tasks with overridable terms."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cotrain.chain.anvil import Anvil
from cotrain.chain.client import ChainClient
from cotrain.chain.keys import Signer
from cotrain.chain.market import Market, deploy_market
from task_terms import ARBITER, BUDGET, SPEC_CID, task_params


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with Anvil() as chain:
        yield chain


@pytest.fixture(scope="module")
def owner(anvil: Anvil) -> Signer:
    return anvil.signer(0)


@pytest.fixture(scope="module")
def validators(anvil: Anvil) -> list[Signer]:
    return [anvil.signer(i) for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def contributors(anvil: Anvil) -> list[Signer]:
    return [anvil.signer(i) for i in (4, 5, 6)]


@pytest.fixture(scope="module")
def arbiter(anvil: Anvil) -> Signer:
    """The tasks' arbiter (task_terms.ARBITER): dev account 8."""
    signer = anvil.signer(8)
    assert signer.address == ARBITER
    return signer


@pytest.fixture(scope="module")
def outsider(anvil: Anvil) -> Signer:
    return anvil.signer(9)


@pytest.fixture(scope="module")
def client(anvil: Anvil, owner: Signer) -> ChainClient:
    return ChainClient(anvil.rpc_url, owner, poll=0.02)


@pytest.fixture(scope="module")
def market(client: ChainClient) -> Market:
    return deploy_market(client)


@pytest.fixture
def new_task(market: Market, validators: list[Signer]):
    """Create a task (validators bonded unless bond=False) and return its id."""

    def create(*, budget: int = BUDGET, bond: bool = True, **overrides: Any) -> int:
        params = task_params(**overrides)
        task_id = market.create_task(params, SPEC_CID, [v.address for v in validators], budget)
        if bond:
            for validator in validators:
                market.with_account(validator).bond_validator(task_id)
        return task_id

    return create
