"""`cotrain deploy` against a real anvil standing in for another chain, and the network config it writes:
chain id checked at connection, confirmations kept, the deployer's keystore found beside the config."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cotrain.chain.anvil import Anvil
from cotrain.chain.keys import Signer, save_keystore
from cotrain.chain.settings import ChainSettings
from cotrain.cli import app
from cotrain.errors import ChainError, ConfigError
from cotrain.network import NetworkConfig
from typer.testing import CliRunner

PASSWORD = "correct horse"


@pytest.fixture(scope="module")
def chain() -> Iterator[Anvil]:
    # A block a second besides each transaction's own, so that confirmations come as on a live chain.
    with Anvil(block_time=1, mixed_mining=True) as anvil:
        yield anvil


def _deploy(tmp_path: Path, chain: Anvil, env: dict[str, str], *extra: str) -> tuple[int, Exception | None]:
    arguments = ["deploy", "--rpc", chain.rpc_url, "--storage", f"embedded:{tmp_path / 'store'}"]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "network.json"), *extra], env=env)
    return result.exit_code, result.exception


def test_deploy_writes_a_config_whose_market_answers_with_its_confirmations(
    tmp_path: Path, chain: Anvil
) -> None:
    # Prepare: the deployer's key only in an encrypted keystore.
    keystore = save_keystore(
        chain.signer(0), tmp_path / "deployer.json", PASSWORD, kdf="pbkdf2", iterations=2
    )
    env = {"COTRAIN_KEYSTORE_PASSWORD": PASSWORD, "COTRAIN_PRIVATE_KEY": "", "COTRAIN_KEYSTORE": ""}

    # Execute
    code, error = _deploy(tmp_path, chain, env, "--keystore", str(keystore), "--confirmations", "1")

    # Assert: the file names the chain, and a participant's connection finds the market's code there.
    assert (code, error) == (0, None)
    written = json.loads((tmp_path / "network.json").read_text())
    assert written["chain_id"] == 31337
    assert written["chain"] == {"confirmations": 1}
    assert written["keystore"] == str(keystore.resolve())
    config = NetworkConfig.load(tmp_path / "network.json")
    market, _ = config.connect(None)
    assert market.client.confirmations == 1
    assert len(market.client.get_code(config.market)) > 1000
    assert 0 < config.deploy_block <= market.client.block_number() - 1


def test_deploy_refuses_to_replace_a_config(tmp_path: Path, chain: Anvil) -> None:
    (tmp_path / "network.json").write_text("{}")
    env = {"COTRAIN_PRIVATE_KEY": chain.private_keys[0]}

    code, error = _deploy(tmp_path, chain, env)

    assert code == 1 and isinstance(error, ConfigError)
    assert str(error) == (
        f"{tmp_path / 'network.json'} already exists (another deployment's?): pass --force or another --out"
    )
    assert (tmp_path / "network.json").read_text() == "{}"


def test_an_unfunded_deployer_is_told_and_no_config_is_written(tmp_path: Path, chain: Anvil) -> None:
    broke = Signer.generate()

    code, error = _deploy(tmp_path, chain, {"COTRAIN_PRIVATE_KEY": broke._account.key.hex()})

    assert code == 1 and isinstance(error, ChainError)
    assert str(error) == f"the deployer {broke.address} holds nothing on chain 31337 to pay gas"
    assert not (tmp_path / "network.json").exists()


def test_a_config_naming_another_chain_is_refused_at_connection(tmp_path: Path, chain: Anvil) -> None:
    path = tmp_path / "network.json"
    NetworkConfig(chain.rpc_url, "0x" + "11" * 20, 1, f"embedded:{tmp_path}", chain_id=84532).save(path)

    with pytest.raises(ConfigError) as refused:
        NetworkConfig.load(path).connect(None)

    assert str(refused.value) == (
        f"the network config names chain 84532 but {chain.rpc_url} serves chain 31337: "
        "fix rpc_url or chain_id"
    )


def test_an_older_config_loads_with_the_defaults_and_saves_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "network.json"
    old = {
        "rpc_url": "http://127.0.0.1:8645",
        "market": "0x" + "22" * 20,
        "deploy_block": 3,
        "storage": "e:x",
    }
    path.write_text(json.dumps(old))

    config = NetworkConfig.load(path)
    config.save(path)

    assert (config.chain_id, config.chain, config.keystore) == (None, ChainSettings(), None)
    assert json.loads(path.read_text()) == old


def test_a_relative_keystore_is_read_beside_the_config(tmp_path: Path) -> None:
    path = tmp_path / "net" / "network.json"
    NetworkConfig("http://h", "0x" + "33" * 20, 1, "embedded:x", keystore="keys/me.json").save(path)

    assert NetworkConfig.load(path).keystore == str(tmp_path / "net" / "keys" / "me.json")


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("chain", {"confirmations": -1}, "confirmations must be 0 or more, not -1"),
        ("chain", {"fee_bump": "1"}, "chain.fee_bump must be a number"),
        ("chain", {"confirmations": 1.0}, "chain.confirmations must be an integer"),
        ("chain", {"blocks": 1}, "unknown chain setting blocks (known: confirmations, "),
        ("chain", [], "chain must be an object"),
        ("chain_id", "10", "chain_id must be an integer"),
    ],
)
def test_bad_optional_fields_are_named(tmp_path: Path, field: str, value: object, problem: str) -> None:
    path = tmp_path / "network.json"
    data = {
        "rpc_url": "http://h",
        "market": "0x" + "44" * 20,
        "deploy_block": 1,
        "storage": "e:x",
        field: value,
    }
    path.write_text(json.dumps(data))

    with pytest.raises(ConfigError) as refused:
        NetworkConfig.load(path)

    assert problem in str(refused.value)
