"""The task owner's brownie scripts (scripts/post_task.py, task_status.py, cancel_task.py) with cotrain's
example breast-cancer spec, an embedded content store under tmp_path, and the module's market."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from brownie import accounts, history
from conftest import TASK_CANCELLED, Driver, reverts_with
from cotrain.errors import ConfigError
from cotrain.protocol.round_outcome import model_file
from cotrain.protocol.task_model import initial_state
from cotrain.protocol.task_spec import load_spec, parse_spec_bytes, spec_digest, task_params
from cotrain.storage.base import fetch_verified
from cotrain.storage.embedded import EmbeddedStore

from scripts import _accounts, cancel_task, post_task, task_status

SPECS = Path(post_task.__file__).resolve().parents[1] / "node" / "cotrain" / "protocol" / "specs"
SPEC_PATH = SPECS / "breast_cancer.yaml"
SPEC = load_spec(SPEC_PATH)
BUDGET = SPEC.budget_wei
ROUND_BUDGET = BUDGET // SPEC.rounds
MAX_FILE = 1 << 20


@pytest.fixture(scope="module")
def spec_validators():
    """The spec's validators are anvil's default accounts 2-4, so brownie can send as them."""
    return accounts[2:5]


@pytest.fixture(scope="module")
def spec_contributors():
    """As many contributors as the spec takes, none of them a validator or the owner."""
    return accounts[5 : 5 + SPEC.contributors.max]


@pytest.fixture
def store(tmp_path):
    return EmbeddedStore(tmp_path / "store")


@pytest.fixture
def posted(market, store):
    """A task posted from the example spec by the script; returns its id."""
    return post_task.main(str(SPEC_PATH), market.address, f"embedded:{store.root}")


@pytest.fixture
def spec_driver(market, owner, spec_validators, spec_contributors):
    return Driver(market, owner, spec_validators, spec_contributors)


@pytest.fixture
def running(market, posted, spec_validators, spec_driver):
    """The posted task, its validators bonded and every contributor joined: round 0's commit is open."""
    for validator in spec_validators:
        market.bondValidator(posted, {"from": validator, "value": SPEC.validators.bond_wei})
    spec_driver.join(posted)
    spec_driver.open_commit(posted)
    return posted


def gas_paid(since: int) -> int:
    """Wei the transactions sent since history[since] paid for gas (0 on a base-fee-0 anvil)."""
    return sum(history[i].gas_used * history[i].gas_price for i in range(since, len(history)))


# --------------------------------------------------------------------------------------- post_task


def test_example_spec_validators_are_brownie_accounts_2_to_4(spec_validators):
    assert SPEC.validators.addresses == [str(account) for account in spec_validators]


def test_post_task_puts_the_spec_digest_on_chain(market, owner, store, posted):
    created = history[-1].events["TaskCreated"]
    task = market.getTask(posted)
    digest = bytes(task["params"]["specDigest"])
    spec = parse_spec_bytes(fetch_verified(store, created["specCid"], digest, max_size=MAX_FILE))
    assert digest == spec_digest(spec)
    assert spec.model_copy(update={"initial_model": None}) == SPEC
    # The contract stores the spec's terms as they are, its arbiter (neither owner nor validator) included.
    expected = task_params(spec, digest) | {"specDigest": "0x" + digest.hex()}
    assert expected["arbiter"] not in (str(owner), *SPEC.validators.addresses)
    assert task["params"].dict() == expected
    assert (task["owner"], task["escrow"], created["budget"]) == (owner, BUDGET, BUDGET)
    assert list(market.validatorsOf(posted)) == SPEC.validators.addresses


def test_post_task_prints_the_task_id_and_cids(market, store, capsys):
    task_id = post_task.main(str(SPEC_PATH), market.address, f"embedded:{store.root}")
    created = history[-1].events["TaskCreated"]
    spec = parse_spec_bytes(store.get(created["specCid"], max_size=MAX_FILE))
    assert capsys.readouterr().out.endswith(
        f"posted task {task_id}: {SPEC.name}, 3 rounds, budget {BUDGET} wei\n"
        f"  spec {created['specCid']}, initial model {spec.initial_model.cid}\n"
    )


def test_post_task_stores_the_registry_initial_model(store, posted):
    spec = parse_spec_bytes(store.get(history[-1].events["TaskCreated"]["specCid"], max_size=MAX_FILE))
    model = fetch_verified(store, spec.initial_model.cid, spec.initial_model.digest, max_size=MAX_FILE)
    assert model == model_file(0, -1, initial_state(SPEC))
    assert spec.initial_model.digest == hashlib.sha256(model).digest()


def test_post_task_ids_count_up(market, store, posted):
    assert post_task.main(str(SPEC_PATH), market.address, f"embedded:{store.root}") == posted + 1


def test_post_task_missing_spec_file_raises_config_error(market, tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        post_task.main(str(missing), market.address, f"embedded:{tmp_path / 'store'}")
    assert str(info.value) == f"{missing}: cannot read the task spec (No such file or directory)"
    assert market.taskCount() == 0
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("rounds: 3", "rounds: 0"), "rounds: Input should be greater than or equal to 1, got 0"),
        (
            ("quorum: 2", "quorum: 4"),
            "validators.quorum (4) must be at most the number of validators.addresses (3)",
        ),
    ],
    ids=["field", "cross-field"],
)
def test_post_task_invalid_spec_raises_config_error_naming_the_field(market, tmp_path, change, problem):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC_PATH.read_text().replace(*change))
    with pytest.raises(ConfigError) as info:
        post_task.main(str(bad), market.address, f"embedded:{tmp_path / 'store'}")
    assert str(info.value) == f"{bad}: invalid task spec\n  - {problem}"
    assert market.taskCount() == 0
    assert not (tmp_path / "store").exists()


def test_post_task_unknown_store_url_raises_config_error(market):
    with pytest.raises(ConfigError, match="unknown content store 's3://bucket'"):
        post_task.main(str(SPEC_PATH), market.address, "s3://bucket")
    assert market.taskCount() == 0


# ------------------------------------------------------------------------------------- task_status


def test_status_of_a_posted_task(market, posted, capsys):
    status = task_status.main(market.address, str(posted))
    assert status == {
        "task_id": posted,
        "status": "active",
        "current_round": 0,
        "phase": "join",
        "buckets": {
            "escrow": BUDGET,
            "reserved": 0,
            "unclaimed": 0,
            "stakes": 0,
            "bonds": 0,
            "challenge_bonds": 0,
            "burned": 0,
        },
        "rounds": [
            dict(round=0, status="open", commits=0, reveals=0, reward_total=0, reward_claimed=0),
        ],
    }
    out = capsys.readouterr().out
    assert f"task {posted}: active, round 0, phase join\n" in out
    assert f"  escrow {BUDGET} wei, reserved 0 wei, unclaimed 0 wei, stakes 0 wei" in out
    assert out.endswith(task_status.ROW.format(0, "open", 0, 0, 0, 0) + "\n")


def test_status_counts_commits(market, running, spec_driver):
    spec_driver.commit(running, 0, spec_driver.updates(0)[:2])
    status = task_status.main(market.address, running)
    round_0 = status["rounds"][0]
    assert (status["phase"], round_0["commits"], round_0["reveals"]) == ("commit", 2, 0)
    stakes = SPEC.contributors.max * SPEC.contributors.stake_wei
    bonds = len(SPEC.validators.addresses) * SPEC.validators.bond_wei
    assert (status["buckets"]["stakes"], status["buckets"]["bonds"]) == (stakes, bonds)


def test_status_after_an_accepted_round(market, running, spec_driver, capsys):
    spec_driver.accept(running, 0)
    reward_total = SPEC.contributors.max * (ROUND_BUDGET // SPEC.contributors.max)
    status = task_status.main(market.address, running)
    assert status["current_round"] == 1
    assert status["rounds"][0] == {
        "round": 0,
        "status": "accepted",
        "commits": 3,
        "reveals": 3,
        "reward_total": reward_total,
        "reward_claimed": 0,
    }
    assert status["rounds"][1]["status"] == "open"
    assert status["buckets"]["reserved"] == reward_total
    assert status["buckets"]["escrow"] == BUDGET - reward_total
    assert task_status.ROW.format(0, "accepted", 3, 3, reward_total, 0) in capsys.readouterr().out


def test_status_of_an_unknown_task_reverts_unknown_task(market):
    with reverts_with("UnknownTask", 99):
        task_status.main(market.address, "99")


# ------------------------------------------------------------------------------------- cancel_task


def test_cancel_refunds_the_whole_escrow_to_the_owner(market, owner, posted, capsys):
    before, since = owner.balance(), len(history)
    refunded = cancel_task.main(market.address, str(posted))
    assert refunded == BUDGET
    assert owner.balance() - before == BUDGET - gas_paid(since)
    task = market.getTask(posted)
    assert (task["status"], task["escrow"]) == (TASK_CANCELLED, 0)
    out = capsys.readouterr().out
    assert out.endswith(f"task {posted} cancelled\nrefunded {BUDGET} wei to {owner}\n")


def test_cancel_keeps_accepted_rewards_and_withdraws_later_slashes(market, owner, running, spec_driver):
    spec_driver.accept(running, 0)  # the third validator proposes nothing
    escrow = market.getTask(running)["escrow"]
    before, since = owner.balance(), len(history)
    assert cancel_task.main(market.address, running) == escrow
    assert owner.balance() - before == escrow - gas_paid(since)
    assert market.getTask(running)["reserved"] > 0

    spec_driver.finalize(running, 0)  # slashes the silent validator into the escrow
    assert market.getTask(running)["escrow"] == SPEC.validators.slash_wei
    before, since = owner.balance(), len(history)
    assert cancel_task.main(market.address, running) == SPEC.validators.slash_wei
    assert owner.balance() - before == SPEC.validators.slash_wei - gas_paid(since)
    assert cancel_task.main(market.address, running) == 0


def test_cancel_an_unknown_task_reverts_unknown_task(market):
    with reverts_with("UnknownTask", 7):
        cancel_task.main(market.address, 7)


# -------------------------------------------------------------------------------------- the sender


def test_sender_is_the_first_account_on_a_development_network():
    assert _accounts.sender() == accounts[0]


def test_sender_on_a_live_network_loads_the_cotrain_deployer_keystore(monkeypatch):
    monkeypatch.setattr(_accounts.network, "show_active", lambda: "mainnet")
    monkeypatch.setattr(_accounts.accounts, "load", lambda account_id: f"loaded {account_id}")
    monkeypatch.setenv("COTRAIN_DEPLOYER", "task-owner")
    assert _accounts.sender() == "loaded task-owner"
    monkeypatch.delenv("COTRAIN_DEPLOYER")
    with pytest.raises(SystemExit, match="Set COTRAIN_DEPLOYER to a keystore account id"):
        _accounts.sender()
