"""Signing keys: keystore round trip, the environment variable, and keys that never show."""

from __future__ import annotations

import pickle
import stat

import pytest
from cotrain.chain.keys import KEY_ENV, KEYSTORE_ENV, PASSWORD_ENV, Signer, load_signer, save_keystore
from cotrain.errors import ConfigError
from eth_account import Account

KEY = "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
PASSWORD = "correct horse battery staple"
# scrypt n=2**4 instead of 2**18: the same code path, a millisecond instead of a second.
FAST_KDF = {"kdf": "scrypt", "iterations": 2**4}


def _key_visible(text: str) -> bool:
    return KEY.removeprefix("0x") in text.lower()


def test_keystore_round_trip_with_the_password_from_the_environment(tmp_path):
    # Prepare
    signer = Signer.from_key(KEY)
    path = save_keystore(signer, tmp_path / "node.json", PASSWORD, **FAST_KDF)

    # Execute
    loaded = load_signer(path, environ={PASSWORD_ENV: PASSWORD})

    # Assert
    assert loaded.address == signer.address == Account.from_key(KEY).address
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not _key_visible(path.read_text())


def test_keystore_path_and_password_can_both_come_from_the_environment(tmp_path):
    path = save_keystore(Signer.from_key(KEY), tmp_path / "node.json", PASSWORD, **FAST_KDF)

    loaded = load_signer(environ={KEYSTORE_ENV: str(path), PASSWORD_ENV: PASSWORD})

    assert loaded.address == Account.from_key(KEY).address
    assert str(path) in loaded.source


def test_keystore_password_is_prompted_for_when_not_set(tmp_path, monkeypatch):
    path = save_keystore(Signer.from_key(KEY), tmp_path / "node.json", PASSWORD, **FAST_KDF)
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda text: prompts.append(text) or PASSWORD)

    loaded = load_signer(path, prompt=True, environ={})

    assert loaded.address == Account.from_key(KEY).address
    assert prompts == [f"Password for keystore {path}: "]


def test_missing_password_without_a_terminal_says_what_to_set(tmp_path):
    path = save_keystore(Signer.from_key(KEY), tmp_path / "node.json", PASSWORD, **FAST_KDF)

    with pytest.raises(ConfigError, match=PASSWORD_ENV):
        load_signer(path, prompt=False, environ={})


def test_wrong_password_is_reported_without_echoing_it(tmp_path):
    path = save_keystore(Signer.from_key(KEY), tmp_path / "node.json", PASSWORD, **FAST_KDF)

    with pytest.raises(ConfigError, match="wrong password") as info:
        load_signer(path, password="hunter2", environ={})

    assert "hunter2" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_damaged_or_missing_keystore_is_a_config_error(tmp_path):
    not_json = tmp_path / "bad.json"
    not_json.write_text("not json")

    with pytest.raises(ConfigError, match="not JSON"):
        load_signer(not_json, password=PASSWORD)
    with pytest.raises(ConfigError, match="cannot read keystore"):
        load_signer(tmp_path / "absent.json", password=PASSWORD)


def test_existing_keystore_is_not_overwritten(tmp_path):
    path = save_keystore(Signer.from_key(KEY), tmp_path / "node.json", PASSWORD, **FAST_KDF)

    with pytest.raises(ConfigError, match="already exists"):
        save_keystore(Signer.generate(), path, PASSWORD, **FAST_KDF)
    assert load_signer(path, password=PASSWORD).address == Account.from_key(KEY).address


def test_private_key_from_the_environment_variable(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY.removeprefix("0x") + "\n")
    monkeypatch.delenv(KEYSTORE_ENV, raising=False)

    signer = load_signer()

    assert signer.address == Account.from_key(KEY).address
    assert signer.source == f"{KEY_ENV} variable"


def test_malformed_environment_key_is_rejected_without_repeating_it():
    bad = KEY[:-2] + "zz"

    with pytest.raises(ConfigError, match=KEY_ENV) as info:
        load_signer(environ={KEY_ENV: bad})

    assert bad.removeprefix("0x")[:20] not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_no_key_source_says_how_to_provide_one():
    with pytest.raises(ConfigError, match=f"{KEY_ENV}"):
        load_signer(environ={})


def test_signer_never_shows_its_key():
    signer = Signer.from_key(KEY)

    shown = [repr(signer), str(signer), f"{signer}", repr([signer]), repr({"signer": signer})]

    assert not any(_key_visible(text) for text in shown)
    assert all(signer.address in text for text in shown)
    assert not hasattr(signer, "__dict__")


def test_signer_refuses_to_be_pickled():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Signer.from_key(KEY))


def test_signer_signs_what_eth_account_signs():
    transaction = {
        "to": "0x" + "11" * 20,
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": 10**9,
        "maxPriorityFeePerGas": 10**9,
        "nonce": 0,
        "chainId": 31337,
    }

    signed = Signer.from_key(KEY).sign_transaction(transaction)

    assert signed.raw_transaction == Account.sign_transaction(transaction, KEY).raw_transaction
