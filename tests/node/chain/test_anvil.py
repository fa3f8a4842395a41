"""The local anvil chain: free ports, dev keys derived from the mnemonic, base fee 0, clean shutdown."""

from __future__ import annotations

import socket

import pytest
from cotrain.chain.anvil import Anvil, AnvilError, dev_private_keys, free_port
from eth_account import Account


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_dev_keys_derived_from_the_mnemonic_are_the_accounts_anvil_funds(anvil):
    node_accounts = anvil.rpc("eth_accounts")

    assert len(anvil.private_keys) == anvil.accounts == 10
    assert [a.lower() for a in anvil.addresses] == [a.lower() for a in node_accounts]
    assert [Account.from_key(k).address for k in anvil.private_keys] == list(anvil.addresses)


def test_first_dev_key_is_anvils_well_known_account_zero():
    # The address anvil, hardhat and every Foundry tutorial print for account 0.
    key = dev_private_keys(1)[0]

    assert Account.from_key(key).address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def test_chain_answers_on_its_own_port_with_base_fee_zero(anvil):
    block = anvil.rpc("eth_getBlockByNumber", ["latest", False])

    assert anvil.port not in (8545, 8601, 8602, 8603)
    assert anvil.rpc_url == f"http://127.0.0.1:{anvil.port}"
    assert int(anvil.rpc("eth_chainId"), 16) == 31337
    assert int(block["baseFeePerGas"], 16) == 0


def test_increase_time_moves_the_next_block_forward(anvil):
    before = anvil.timestamp()

    anvil.increase_time(1000)
    anvil.mine()

    assert anvil.timestamp() >= before + 1000


def test_two_chains_get_different_ports_and_stop_on_exit():
    with Anvil(accounts=2) as first, Anvil(accounts=2) as second:
        ports = (first.port, second.port)
        assert first.port != second.port
        assert all(_listening(port) for port in ports)
        assert len(second.private_keys) == 2
    assert not first.running and not second.running
    assert not any(_listening(port) for port in ports)


def test_taken_port_is_refused_before_launch(anvil):
    with pytest.raises(AnvilError, match=str(anvil.port)):
        Anvil(anvil.port).start()


def test_chain_refuses_to_start_twice():
    with Anvil(accounts=1) as chain, pytest.raises(AnvilError, match="already running"):
        chain.start()


def test_repr_shows_the_url_but_no_key(anvil):
    text = repr(anvil) + str(anvil)

    assert anvil.rpc_url in text
    assert not any(key.removeprefix("0x") in text.lower() for key in anvil.private_keys)


def test_port_is_unavailable_before_start():
    chain = Anvil(free_port())

    with pytest.raises(AnvilError, match="not running"):
        _ = chain.rpc_url
