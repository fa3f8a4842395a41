"""Tests for cotrain.roles.currency on a local chain: nodes withdraw their credits in the currency of the task
they serve (a token task's in the token, ETH credits left alone) and name its unit in what they say.

Credits come from forfeit bounties: both contributors of a task commit and never reveal, and once the reveal
phase is over (anvil's clock is moved past it) whoever forfeits their stakes is credited the bounties."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cotrain.chain.market import ZERO_ADDRESS, Market
from cotrain.cli import app
from cotrain.demo import DemoSettings, demo_spec
from cotrain.localnet import LocalNetwork, local_network
from cotrain.protocol.task_model import builtin_split
from cotrain.protocol.task_spec import TaskSpec
from cotrain.roles.currency import task_unit, unit_name, withdraw_credits
from cotrain.roles.owner import post_task
from cotrain.roles.validator import ValidatorNode
from cotrain.storage.base import ContentStore
from erc20_token import deploy_test_token
from typer.testing import CliRunner

TOKEN_SUPPLY = 100 * 10**18
OWNER, VALIDATOR, ARBITER, OUTSIDER = 0, 1, 4, 5
CONTRIBUTORS = (2, 3)


@dataclass
class Chain:
    net: LocalNetwork
    market: Market  # sends as the owner
    store: ContentStore
    token: str
    spec: TaskSpec

    def as_account(self, index: int) -> Market:
        return self.market.with_account(self.net.signer(index))

    def address(self, index: int) -> str:
        return self.net.anvil.addresses[index]

    def silent_round(self, token: str) -> int:
        """Post a task in ``token`` (the zero address: ETH), bond its validator, let both contributors join
        and commit without ever revealing, and move the clock past the reveal phase; the task's id."""
        task_id, _ = post_task(self.market, self.store, self.spec, token=token)
        self.as_account(VALIDATOR).bond_validator(task_id)
        for index in CONTRIBUTORS:
            self.as_account(index).join(task_id)
        for index in CONTRIBUTORS:
            self.as_account(index).commit(task_id, 0, hashlib.sha256(bytes([index])).digest())
        reveal_end = self.market.get_round(task_id, 0).reveal_end
        self.net.anvil.set_next_block_timestamp(max(reveal_end, self.net.anvil.timestamp() + 1))
        self.net.anvil.mine()
        return task_id

    def forfeit_all(self, task_id: int, caller: int) -> int:
        """Forfeit both contributors' unopened commitments as ``caller``; the bounty credited it."""
        for index in CONTRIBUTORS:
            self.as_account(caller).forfeit_unrevealed(task_id, 0, self.address(index))
        stake = self.market.get_task(task_id).params.contributor_stake
        return len(CONTRIBUTORS) * (stake // self.market.forfeit_bounty_divisor())


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A local network (a block per transaction) with a TestToken every dev account holds TOKEN_SUPPLY of."""
    with local_network(tmp_path_factory.mktemp("net"), block_time=None, accounts=6) as net:
        market, store = net.config.connect(net.signer(OWNER))
        token = deploy_test_token(market.client, net.anvil.addresses, TOKEN_SUPPLY)
        settings = DemoSettings(len(CONTRIBUTORS), 1, 1, "breast_cancer")
        addresses = net.anvil.addresses
        yield Chain(
            net, market, store, token, demo_spec(settings, addresses[ARBITER], [addresses[VALIDATOR]])
        )


def test_the_unit_is_wei_for_ether_and_names_the_token_otherwise(chain: Chain) -> None:
    eth_task, token_task = chain.silent_round(ZERO_ADDRESS), chain.silent_round(chain.token)

    assert unit_name(ZERO_ADDRESS) == task_unit(chain.market, eth_task) == "wei"
    assert task_unit(chain.market, token_task) == f"units of token {chain.token}"


def test_withdraw_credits_on_a_token_task_withdraws_the_token_and_leaves_ether_credits(chain: Chain) -> None:
    # Prepare: the outsider earns bounties on an ETH task and on a token task.
    eth_task, token_task = chain.silent_round(ZERO_ADDRESS), chain.silent_round(chain.token)
    eth_bounty = chain.forfeit_all(eth_task, OUTSIDER)
    token_bounty = chain.forfeit_all(token_task, OUTSIDER)
    outsider, market = chain.address(OUTSIDER), chain.market
    tokens_before = market.token_balance(chain.token, outsider)
    assert market.token_credits(chain.token, outsider) == token_bounty > 0

    # Execute
    withdrawn = withdraw_credits(chain.as_account(OUTSIDER), token_task)

    # Assert
    assert withdrawn == token_bounty
    assert market.token_balance(chain.token, outsider) == tokens_before + token_bounty
    assert market.token_credits(chain.token, outsider) == 0
    assert market.credits(outsider) == eth_bounty > 0, "the ETH credits are not the token task's"
    assert withdraw_credits(chain.as_account(OUTSIDER), token_task) == 0, "nothing left: no transaction"
    assert withdraw_credits(chain.as_account(OUTSIDER), eth_task) == eth_bounty
    assert market.credits(outsider) == 0


def test_a_validator_withdraws_its_forfeit_bounty_of_a_token_task_in_the_token(
    chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: the validator holds ETH credits from an ETH task, then serves a token task whose contributors
    # never reveal.
    market, token, validator = chain.market, chain.token, chain.address(VALIDATOR)
    chain.forfeit_all(chain.silent_round(ZERO_ADDRESS), VALIDATOR)
    eth_credits = market.credits(validator)
    tokens_before = market.token_balance(token, validator)
    task_id = chain.silent_round(token)
    node = ValidatorNode(
        *chain.net.config.connect(chain.net.signer(VALIDATOR)), task_id, builtin_split(chain.spec)[1]
    )
    caplog.set_level("INFO", logger="cotrain")

    # Execute: it forfeits the unopened stakes; once the owner cancelled the task, it withdraws bond and
    # credits.
    assert node.step() is False
    bounty = market.token_credits(token, validator)
    market.cancel_task(task_id)
    assert node.step() is True

    # Assert
    stake = market.get_task(task_id).params.contributor_stake
    assert bounty == len(CONTRIBUTORS) * (stake // market.forfeit_bounty_divisor()) > 0
    assert market.token_balance(token, validator) == tokens_before + bounty, "bond back, bounty withdrawn"
    assert market.token_credits(token, validator) == 0
    assert market.credits(validator) == eth_credits > 0, "its ETH credits are left alone"
    unit = f"units of token {token}"
    messages = [r.getMessage() for r in caplog.records]
    assert (
        f"round 0: {chain.address(CONTRIBUTORS[0])} committed and never revealed: forfeited its stake of "
        f"{stake} {unit}, a bounty of {stake // market.forfeit_bounty_divisor()} {unit} to this validator"
    ) in messages, messages
    assert f"withdrew {bounty} {unit} of credits (forfeit bounties)" in messages, messages
    assert not [m for m in messages if " wei" in m], messages


def test_claim_withdraws_and_names_the_token_of_a_token_task(
    chain: Chain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = chain.silent_round(chain.token)
    bounty = chain.forfeit_all(task_id, OUTSIDER)
    outsider = chain.address(OUTSIDER)
    tokens_before = chain.market.token_balance(chain.token, outsider)
    monkeypatch.setenv("COTRAIN_PRIVATE_KEY", chain.net.anvil.private_keys[OUTSIDER])

    result = CliRunner().invoke(
        app,
        [
            "claim",
            "--task",
            str(task_id),
            "--network",
            str(chain.net.network_file("")),
            "--state",
            str(tmp_path),
        ],
    )

    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())  # as the terminal's width wrapped it
    unit = f"units of token {chain.token}"
    assert f"claimed 0 {unit} for {outsider}" in printed, printed
    assert f"withdrew {bounty} {unit} of credits (challenge payouts, forfeit bounties)" in printed, printed
    assert chain.market.token_balance(chain.token, outsider) == tokens_before + bounty
