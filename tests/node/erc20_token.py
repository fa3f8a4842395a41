"""contracts/test/TestToken (a standard ERC20 anyone may mint) deployed from the brownie build, for the node
tests of tasks paid in a token."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pytest
from cotrain.chain.client import ChainClient

TEST_TOKEN_BUILD = Path(__file__).resolve().parents[2] / "build" / "contracts" / "TestToken.json"


def deploy_test_token(client: ChainClient, holders: Iterable[str], amount: int) -> str:
    """Deploy a TestToken with ``client``'s account, mint ``amount`` to each of ``holders``; its address."""
    if not TEST_TOKEN_BUILD.is_file():
        pytest.fail(f"{TEST_TOKEN_BUILD} is missing: run `make contracts` first")
    build = json.loads(TEST_TOKEN_BUILD.read_text(encoding="utf-8"))
    factory = client.w3.eth.contract(abi=build["abi"], bytecode=build["bytecode"])
    address = client.transact(factory.constructor())["contractAddress"]
    contract = client.w3.eth.contract(address=address, abi=build["abi"])
    for holder in holders:
        client.transact(contract.functions.mint(holder, amount))
    return str(address)
