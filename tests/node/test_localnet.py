"""The local network's guards, in one process: the folder lock, the check of an older network config, and
the roles the built-in specs give the dev accounts."""

from __future__ import annotations

import json
import os
from importlib.resources import files
from pathlib import Path

import pytest
from cotrain.chain.anvil import dev_private_keys, free_port
from cotrain.chain.keys import Signer
from cotrain.errors import ConfigError
from cotrain.localnet import check_previous_network, dev_account_roles, directory_lock
from cotrain.protocol.task_spec import load_spec

SPECS = Path(str(files("cotrain.protocol") / "specs"))
ADDRESSES = [Signer.from_key(key).address for key in dev_private_keys(10)]


def test_a_held_folder_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    with directory_lock(tmp_path):
        assert (tmp_path / "up.lock").read_text() == f"{os.getpid()}\n"
        with pytest.raises(ConfigError) as refused, directory_lock(tmp_path):
            pass
    assert str(refused.value) == (
        f"another cotrain network (pid {os.getpid()}) is running in {tmp_path}: stop it "
        f"(Ctrl-C, or kill {os.getpid()}), or pass --dir with another folder"
    )


def test_a_released_folder_lock_can_be_taken_again(tmp_path: Path) -> None:
    with directory_lock(tmp_path):
        pass
    with directory_lock(tmp_path):
        assert (tmp_path / "up.lock").exists()


def test_no_previous_config_needs_no_note(tmp_path: Path) -> None:
    assert check_previous_network(tmp_path / "network.json") is None


def test_a_config_whose_chain_is_gone_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "network.json"
    url = f"http://127.0.0.1:{free_port()}"
    path.write_text(json.dumps({"rpc_url": url, "market": ADDRESSES[0], "deploy_block": 1, "storage": "x"}))

    assert check_previous_network(path) == f"replacing stale {path}: nothing answers at {url} any more"


def test_a_file_that_is_no_config_is_replaced_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "network.json"
    path.write_text("{not json")

    assert check_previous_network(path) == f"replacing {path}, which is not a network config"


def test_the_builtin_specs_give_owner_arbiter_validators_and_contributors() -> None:
    specs = [load_spec(SPECS / "digits.yaml"), load_spec(SPECS / "breast_cancer.yaml")]

    roles = dev_account_roles(ADDRESSES, specs)

    assert roles == ["task owner (deployer)", "arbiter"] + ["validator"] * 3 + ["contributor"] * 5


def test_a_spec_naming_other_validators_moves_the_roles() -> None:
    spec = load_spec(SPECS / "breast_cancer.yaml")
    spec = spec.model_copy(
        update={"validators": spec.validators.model_copy(update={"addresses": ADDRESSES[1:3]})}
    )

    roles = dev_account_roles(ADDRESSES[:5], [spec])

    assert roles == ["task owner (deployer)", "validator", "validator", "contributor", "contributor"]
