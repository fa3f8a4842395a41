"""What a user sees when something is wrong, through the real command: one clear line on stderr that
names the culprit and what to do, a non-zero exit status, and never a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from cotrain.chain.anvil import free_port
from cotrain.demo import DemoSettings, demo_spec
from cotrain.localnet import LocalNetwork, local_network
from cotrain.roles.owner import post_task
from e2e_helpers import RunCli, builtin_spec, error_line


@pytest.fixture(scope="module")
def live_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalNetwork, int]]:
    """A running chain with a market and one posted breast-cancer task (embedded store)."""
    directory = tmp_path_factory.mktemp("live")
    with local_network(directory, storage="embedded", accounts=5) as net:
        owner = net.signer(0)
        market, store = net.config.connect(owner)
        settings = DemoSettings(contributors=2, validators=1, rounds=1, dataset="breast_cancer")
        spec = demo_spec(settings, net.anvil.addresses[4], [net.anvil.addresses[1]])
        task_id, _ = post_task(market, store, spec)
        yield net, task_id


def write_config(path: Path, **fields: object) -> Path:
    path.write_text(json.dumps(fields), encoding="utf-8")
    return path


def test_unreachable_rpc(run_cli: RunCli, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    config = write_config(
        tmp_path / "network.json",
        rpc_url=url,
        market="0x" + "11" * 20,
        deploy_block=0,
        storage=f"embedded:{tmp_path / 'store'}",
    )
    result = run_cli("task", "status", "1", "--network", config, timeout=60)
    line = error_line(result)
    assert f"cannot reach RPC at {url}" in line, line
    assert result.seconds < 25, f"gave up only after {result.seconds:.1f} s"


def test_unreachable_ipfs_daemon(
    run_cli: RunCli, tmp_path: Path, live_network: tuple[LocalNetwork, int]
) -> None:
    net, task_id = live_network
    api = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    fields = json.loads((net.accounts_file.parent / "network.json").read_text(encoding="utf-8"))
    config = write_config(tmp_path / "network.json", **{**fields, "storage": f"ipfs:{api}"})
    data = tmp_path / "data.npz"
    np.savez(data, features=np.zeros((8, 30), np.float32), labels=np.arange(8) % 2)
    result = run_cli(
        "contribute",
        "--once",
        "--task",
        task_id,
        "--network",
        config,
        "--data",
        data,
        "--state",
        tmp_path / "state",
        env={"COTRAIN_PRIVATE_KEY": net.anvil.private_keys[2]},
        timeout=60,
    )
    line = error_line(result)
    assert f"cannot reach the IPFS API at {api}" in line, line
    assert "Is the IPFS daemon running" in line, line
    assert result.seconds < 25, f"gave up only after {result.seconds:.1f} s"


@pytest.mark.parametrize("explicit", [False, True], ids=["default-path", "--network"])
def test_missing_network_config(run_cli: RunCli, tmp_path: Path, explicit: bool) -> None:
    args = ["--network", tmp_path / "nowhere" / "network.json"] if explicit else []
    line = error_line(run_cli("task", "status", "1", *args, timeout=60))
    where = str(tmp_path / "nowhere" / "network.json") if explicit else ".cotrain/network.json"
    assert f"no network config at {where}" in line, line
    assert "run `cotrain up`" in line, line


BAD_SPECS = {
    "training.optimizer": (
        lambda spec: spec["training"].update(optimizer="lbfgs"),
        "Input should be 'sgd' or 'adam', got 'lbfgs'",
    ),
    "budget_wei": (lambda spec: spec.update(budget_wei=-5), "greater than or equal to 0"),
    "rounds": (lambda spec: spec.pop("rounds"), "required field is missing"),
    # The market's terms for strangers (issue 12): an arbiter of its own, a quorum of more than half.
    "arbiter": (
        lambda spec: spec.update(arbiter=None),
        "must name an account that is neither the task owner nor a validator",
    ),
    "validators.quorum": (
        lambda spec: spec["validators"].update(quorum=1),
        "(1) must be more than half the 3 validators.addresses (at least 2)",
    ),
}


@pytest.mark.parametrize("field", sorted(BAD_SPECS))
def test_bad_task_spec(
    run_cli: RunCli, tmp_path: Path, live_network: tuple[LocalNetwork, int], field: str
) -> None:
    net, task_id = live_network
    spoil, problem = BAD_SPECS[field]
    spec = builtin_spec("breast_cancer")
    spoil(spec)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    result = run_cli(
        "task",
        "post",
        path,
        "--network",
        net.accounts_file.parent / "network.json",
        env={"COTRAIN_PRIVATE_KEY": net.anvil.private_keys[0]},
        timeout=60,
    )
    assert result.returncode == 1, result.explain()
    assert "Traceback" not in result.output, result.explain()
    first, *details = result.stderr.strip().splitlines()
    assert first == f"error: {path}: invalid task spec", result.explain()
    assert len(details) == 1 and details[0].startswith(f"  - {field}"), result.explain()
    assert problem in details[0], result.explain()
    market, _ = net.config.connect(None)
    assert market.task_count() == task_id, "a task was posted from an invalid spec"


def test_a_spec_whose_arbiter_is_the_posting_account_is_refused(
    run_cli: RunCli, tmp_path: Path, live_network: tuple[LocalNetwork, int]
) -> None:
    net, task_id = live_network
    spec = builtin_spec("breast_cancer")
    poster = net.anvil.addresses.index(spec["arbiter"])  # dev account 1
    path = tmp_path / "own-arbiter.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")

    result = run_cli(
        "task",
        "post",
        path,
        "--network",
        net.accounts_file.parent / "network.json",
        env={"COTRAIN_PRIVATE_KEY": net.anvil.private_keys[poster]},
        timeout=60,
    )

    line = error_line(result)
    assert line == (
        f"error: the spec's arbiter {spec['arbiter']} is the account posting the task: a task owner may not "
        "rule on challenges of its own task; name another account in `arbiter`, one that is not a validator"
    ), line
    market, _ = net.config.connect(None)
    assert market.task_count() == task_id, "the task was posted"
