"""The JSON-RPC client: connection retries, EIP-1559 transactions, local nonces, confirmations, reverts."""

from __future__ import annotations

import math
import pickle
import time
from collections.abc import Iterator
from dataclasses import astuple

import pytest
from cotrain.chain.anvil import Anvil, free_port
from cotrain.chain.client import ChainClient, ContractRevert
from cotrain.chain.keys import Signer
from cotrain.chain.market import Market, Phase, deploy_market
from cotrain.chain.settings import ChainSettings
from cotrain.errors import ChainError
from task_terms import SPEC_CID, task_params


@pytest.fixture(scope="module")
def interval_chain() -> Iterator[Anvil]:
    """A chain that mines a block every second, so transactions can wait in the pool together."""
    with Anvil(accounts=2, block_time=1) as chain:
        yield chain


@pytest.fixture(scope="module")
def interval_market(interval_chain: Anvil) -> Market:
    return deploy_market(ChainClient(interval_chain.rpc_url, interval_chain.signer(0), poll=0.05))


def test_unreachable_rpc_fails_quickly_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()

    with pytest.raises(ChainError, match=f"cannot reach RPC at {url}: .*3 attempts"):
        ChainClient(url, retries=2, backoff=0.01)

    assert time.monotonic() - started < 2


def test_reads_name_the_url_when_the_node_is_gone_or_refuses():
    with Anvil() as chain:
        url = chain.rpc_url
        client = ChainClient(url, poll=0.02, settings=ChainSettings(retry_budget=0.2))
        with pytest.raises(ChainError, match=r"refused asking nonsense: Method not found"):
            client.read("eth_nonsense", [], "asking nonsense")
    # The chain is stopped now: retried within the budget, then one line.
    started = time.monotonic()
    with pytest.raises(
        ChainError,
        match=rf"cannot reach RPC at {url} while reading the block number: .*"
        r"\(\d+ attempts over 0\.\d s\)$",
    ):
        client.block_number()
    assert time.monotonic() - started < 1.0


def test_rpc_url_must_be_http():
    with pytest.raises(ChainError, match="http:// or https://"):
        ChainClient("ws://127.0.0.1:1")


def test_password_in_the_rpc_url_is_masked_in_errors():
    url = f"http://user:s3cret@127.0.0.1:{free_port()}"

    with pytest.raises(ChainError, match=r"user:\*\*\*@127\.0\.0\.1") as info:
        ChainClient(url, retries=0)

    assert "s3cret" not in str(info.value)


def test_client_repr_shows_the_account_not_its_key(client, anvil, owner):
    text = repr(client) + str(client)

    assert owner.address in text and anvil.rpc_url in text
    assert anvil.private_keys[0].removeprefix("0x") not in text.lower()


class RecordingSigner:
    """Signs with a real signer and keeps the transaction dicts it was asked to sign."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.signed: list[dict] = []

    @property
    def address(self) -> str:
        return self.signer.address

    def sign_transaction(self, transaction_dict):
        self.signed.append(dict(transaction_dict))
        return self.signer.sign_transaction(transaction_dict)


def test_transactions_use_eip1559_fee_fields_and_the_estimate(client, market, new_task, validators):
    task_id = new_task(bond=False)
    recorder = RecordingSigner(validators[0])
    estimate = client.as_account(recorder).estimate_gas(
        market.contract.functions.bondValidator(task_id), value=10**18
    )

    receipt = market.with_account(recorder).bond_validator(task_id)

    (signed,) = recorder.signed
    assert "gasPrice" not in signed
    assert signed["maxFeePerGas"] >= signed["maxPriorityFeePerGas"] > 0
    assert signed["gas"] == math.ceil(estimate * client.gas_margin) > receipt["gasUsed"]
    assert client.w3.eth.get_transaction(receipt["transactionHash"])["type"] == 2


def test_the_chain_id_is_asked_once_not_before_every_call(anvil, owner, market, new_task, validators):
    # Prepare: a fresh client whose HTTP requests are recorded below web3's request cache.
    task_id = new_task(bond=False)
    client = ChainClient(anvil.rpc_url, owner, poll=0.02)
    provider = client.w3.provider
    sent = []
    post = provider._make_request

    def recorded(method, request_data):
        sent.append(method)
        return post(method, request_data)

    provider._make_request = recorded
    reader = Market(client, market.address)

    # Execute
    for validator in validators[:2]:
        reader.with_account(validator).bond_validator(task_id)

    # Assert
    assert sent.count("eth_sendRawTransaction") == 2 and sent.count("eth_estimateGas") == 2
    assert "eth_chainId" not in sent, "asked at connect, then cached"


def test_sending_needs_an_account(anvil, market):
    reader = Market(ChainClient(anvil.rpc_url), market.address)

    assert reader.task_count() >= 0
    with pytest.raises(ChainError, match="no signing account"):
        reader.fail_round(1)


def test_estimate_revert_is_the_error_and_nothing_is_sent(market, new_task, contributors, anvil):
    # Prepare
    task_id = new_task()
    contributor = contributors[0]
    stake = market.get_task(task_id).params.contributor_stake
    nonce_before = anvil.rpc("eth_getTransactionCount", [contributor.address, "latest"])

    # Execute
    with pytest.raises(ContractRevert) as info:
        market.with_account(contributor).join(task_id, stake_wei=stake - 1)

    # Assert
    error = info.value
    assert (error.name, error.arguments) == ("WrongAmount", {"expected": stake, "sent": stake - 1})
    assert (error.stage, error.function, error.tx_hash) == ("estimate", "join", None)
    assert f"WrongAmount(expected={stake}, sent={stake - 1})" in str(error)
    assert error.explanation == "the value sent differs from what the task asks"
    assert error.explanation in str(error)
    assert anvil.rpc("eth_getTransactionCount", [contributor.address, "latest"]) == nonce_before


def test_failed_receipt_is_decoded_from_the_call_trace(client, market, new_task, contributors):
    task_id = new_task()
    joiner = client.as_account(contributors[0])
    join = market.contract.functions.join(task_id)

    # An explicit gas limit skips estimation, so the revert happens on chain.
    with pytest.raises(ContractRevert) as info:
        joiner.transact(join, value=1, gas=200_000)

    error = info.value
    assert error.stage == "receipt" and error.function == "join"
    assert error.name == "WrongAmount"
    assert error.arguments == {"expected": market.get_task(task_id).params.contributor_stake, "sent": 1}
    assert error.tx_hash is not None and error.tx_hash in str(error)
    assert client.w3.eth.get_transaction_receipt(error.tx_hash)["status"] == 0


def test_failed_receipt_is_decoded_by_replay_where_the_node_has_no_tracer(
    client, market, new_task, contributors, monkeypatch
):
    # Prepare: a node without debug_traceTransaction (most public endpoints).
    task_id = new_task()
    provider = client.w3.provider
    real_request = provider.make_request
    traced = []

    def no_tracer(method, params):
        if method == "debug_traceTransaction":
            traced.append(params[0])
            return {"jsonrpc": "2.0", "id": 0, "error": {"code": -32601, "message": "method not found"}}
        return real_request(method, params)

    monkeypatch.setattr(provider, "make_request", no_tracer)

    # Execute
    with pytest.raises(ContractRevert) as info:
        client.as_account(contributors[1]).transact(
            market.contract.functions.join(task_id), value=2, gas=200_000
        )

    # Assert
    assert traced == [info.value.tx_hash]
    assert (info.value.name, info.value.arguments["sent"], info.value.stage) == ("WrongAmount", 2, "receipt")


def test_out_of_gas_receipt_says_so(client, market, new_task, contributors):
    task_id = new_task()
    stake = market.get_task(task_id).params.contributor_stake

    with pytest.raises(ContractRevert, match="ran out of gas") as info:
        client.as_account(contributors[0]).transact(
            market.contract.functions.join(task_id), value=stake, gas=30_000
        )

    assert info.value.name is None and info.value.stage == "receipt"


def test_enum_arguments_decode_into_the_bindings_enums(market, new_task, contributors):
    task_id = new_task()  # still in its join phase
    market.with_account(contributors[0]).join(task_id)

    with pytest.raises(ContractRevert) as info:
        market.with_account(contributors[0]).commit(task_id, 0, b"\x01" * 32)

    assert info.value.arguments == {"expected": Phase.COMMIT, "actual": Phase.JOIN}
    assert "WrongPhase(expected=Phase.COMMIT, actual=Phase.JOIN)" in str(info.value)


def test_view_revert_is_decoded(market):
    with pytest.raises(ContractRevert) as info:
        market.get_task(10**6)

    assert (info.value.name, info.value.arguments, info.value.stage) == (
        "UnknownTask",
        {"taskId": 10**6},
        "call",
    )


def test_contract_revert_survives_pickling(market):
    with pytest.raises(ContractRevert) as info:
        market.get_task(10**6)

    copy = pickle.loads(pickle.dumps(info.value))

    assert (copy.name, copy.arguments, copy.data, str(copy)) == (
        info.value.name,
        info.value.arguments,
        info.value.data,
        str(info.value),
    )


def test_stale_local_nonce_is_resynchronised(anvil, market, outsider):
    # Prepare: two processes signing with one key, each with its own nonce book.
    recorder = RecordingSigner(outsider)
    first = market.with_account(recorder)
    second = Market(ChainClient(anvil.rpc_url, outsider), market.address)
    validators = [anvil.addresses[1]]
    first.create_task(task_params(quorum=1), SPEC_CID, validators, 10**15)
    # Another action (identical bytes would be one transaction, rightly taken as already sent).
    second.create_task(task_params(quorum=1), SPEC_CID, validators, 2 * 10**15)

    # Execute: first's next nonce is now taken.
    task_id = first.create_task(task_params(quorum=1), SPEC_CID, validators, 10**15)

    # Assert: the node refused the stale nonce once, and the retry used the node's count.
    assert [signed["nonce"] for signed in recorder.signed[1:]] == [
        recorder.signed[0]["nonce"] + 1,
        recorder.signed[0]["nonce"] + 2,
    ]
    assert first.get_task(task_id).owner == outsider.address


def test_several_transactions_in_flight_share_one_block(interval_market, interval_chain):
    # Prepare
    client = interval_market.client
    create = interval_market.contract.functions.createTask(
        astuple(task_params(num_rounds=1, quorum=1)), SPEC_CID, [interval_chain.addresses[1]]
    )
    count_before = interval_market.task_count()

    # Execute: no waiting between sends, so all three sit in the pool until the next block.
    hashes = [client.submit(create, value=10**15) for _ in range(3)]
    receipts = [client.wait(tx_hash) for tx_hash in hashes]

    # Assert
    nonces = [client.w3.eth.get_transaction(tx_hash)["nonce"] for tx_hash in hashes]
    assert nonces == [nonces[0], nonces[0] + 1, nonces[0] + 2]
    assert len({receipt["blockNumber"] for receipt in receipts}) == 1
    assert interval_market.task_count() == count_before + 3


def test_wait_returns_after_the_requested_confirmations(interval_market, interval_chain):
    client = ChainClient(interval_chain.rpc_url, interval_chain.signer(1), confirmations=1, poll=0.05)
    create = interval_market.contract.functions.createTask(
        astuple(task_params(num_rounds=1, quorum=1)), SPEC_CID, [interval_chain.addresses[0]]
    )

    receipt = client.transact(create, value=10**15)

    assert receipt["status"] == 1
    assert client.block_number() >= receipt["blockNumber"] + 1


def test_wait_gives_up_after_the_timeout(interval_chain):
    client = ChainClient(interval_chain.rpc_url, timeout=0.2, poll=0.05)

    with pytest.raises(ChainError, match=r"was not mined within 0\.2 s"):
        client.wait("0x" + "ab" * 32)
