"""`cotrain up` as a user runs it: one network per folder, a clean stop on SIGTERM, stale configs replaced,
a busy port refused, and the table of dev accounts and their roles."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cotrain.chain.anvil import AnvilError, dev_private_keys, free_port, rpc_call
from cotrain.chain.keys import Signer
from e2e_helpers import RunCli, cotrain_command

READY = re.compile(r"^ready: market (0x[0-9a-fA-F]{40}) on (http://127\.0\.0\.1:\d+)", re.MULTILINE)


class Up:
    """One `cotrain up` process in a session of its own, its output in a file."""

    def __init__(self, directory: Path, *args: str, cwd: Path) -> None:
        self.log = cwd / f"up-{time.monotonic_ns()}.log"
        with self.log.open("w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [*cotrain_command(), "up", "--dir", str(directory), *args],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "COLUMNS": "120"},
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> str:
        """Wait for the ready line; return the RPC URL it names."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = READY.search(self.output)
            if found:
                return found.group(2)
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"`cotrain up` not ready (exit {self.process.poll()}):\n{self.output}")

    def children(self) -> list[int]:
        """The process ids of its children (anvil, a js-ipfs daemon)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def kill(self) -> None:
        """SIGKILL its whole process group, children it failed to stop included (as `kill -9 -PGID`)."""
        with contextlib.suppress(ProcessLookupError):  # the group is gone: nothing left to stop
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator:
    started: list[Up] = []

    def start(directory: Path, *args: str) -> Up:
        up = Up(directory, *args, cwd=tmp_path)
        started.append(up)
        return up

    yield start
    for up in started:
        up.kill()


def answers(rpc_url: str) -> bool:
    try:
        rpc_call(rpc_url, "eth_chainId", [], timeout=1.0)
    except AnvilError:
        return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"


def test_second_up_in_one_folder_is_refused_and_sigterm_stops_everything(
    start_up, run_cli: RunCli, tmp_path: Path
) -> None:
    # Prepare
    directory = tmp_path / "net"
    first = start_up(directory, "--port", str(free_port()))
    rpc_url = first.wait_ready()
    children = first.children()
    config_before = (directory / "network.json").read_text(encoding="utf-8")

    # Execute: a second `up` in the same folder
    second = run_cli("up", "--dir", directory, "--port", str(free_port()), timeout=30)

    # Assert: refused in one line naming the running network's process; its config untouched
    assert second.returncode == 1, second.explain()
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.explain()
    assert f"another cotrain network (pid {first.process.pid}) is running in {directory}" in lines[0]
    assert "--dir" in lines[0]
    assert (directory / "network.json").read_text(encoding="utf-8") == config_before

    # Execute: SIGTERM to the first
    started = time.monotonic()
    first.process.send_signal(signal.SIGTERM)
    code = first.process.wait(timeout=15)
    seconds = time.monotonic() - started

    # Assert: a clean exit within seconds, its anvil stopped
    assert code == 0, first.output
    assert seconds < 8, f"took {seconds:.1f} s to stop"
    assert "stopped" in first.output
    assert len(children) == 1, children
    assert not pid_alive(children[0]), f"anvil (pid {children[0]}) still runs"
    assert not answers(rpc_url)


def test_sigterm_stops_the_ipfs_daemon_too(start_up, tmp_path: Path) -> None:
    # Prepare
    up = start_up(tmp_path / "net", "--port", "0", "--storage", "ipfs")
    rpc_url = up.wait_ready(timeout=60)
    children = up.children()
    api_url = json.loads((tmp_path / "net" / "network.json").read_text(encoding="utf-8"))["storage"]

    # Execute
    up.process.send_signal(signal.SIGTERM)
    code = up.process.wait(timeout=20)

    # Assert
    assert code == 0, up.output
    assert api_url.startswith("ipfs:http://127.0.0.1:")
    assert len(children) == 2, children  # anvil and the js-ipfs daemon
    assert [pid for pid in children if pid_alive(pid)] == []
    assert not answers(rpc_url)
    port = int(api_url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "the js-ipfs API still answers"


def test_stale_config_of_a_killed_network_is_replaced_with_a_note(start_up, tmp_path: Path) -> None:
    # Prepare: a network killed hard (anvil with it) leaves its network.json behind
    directory = tmp_path / "net"
    killed = start_up(directory, "--port", "0")
    old_url = killed.wait_ready()
    killed.kill()
    assert (directory / "network.json").exists()

    # Execute
    up = start_up(directory, "--port", "0")
    new_url = up.wait_ready()

    # Assert: one note line names the stale file, and the new config points at the new chain
    notes = [line for line in up.output.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: replacing stale {directory / 'network.json'}: nothing answers at {old_url} any more"
    ]
    config = json.loads((directory / "network.json").read_text(encoding="utf-8"))
    assert config["rpc_url"] == new_url != old_url
    assert answers(new_url)


def test_config_of_a_running_network_is_not_overwritten(start_up, run_cli: RunCli, tmp_path: Path) -> None:
    # Prepare: another folder's network.json names a network that is running (started without a lock here)
    running = start_up(tmp_path / "a", "--port", "0")
    rpc_url = running.wait_ready()
    (tmp_path / "b").mkdir()
    config = (tmp_path / "a" / "network.json").read_text(encoding="utf-8")
    (tmp_path / "b" / "network.json").write_text(config, encoding="utf-8")

    # Execute
    result = run_cli("up", "--dir", tmp_path / "b", "--port", "0", timeout=30)

    # Assert
    assert result.returncode == 1, result.explain()
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.explain()
    assert f"names a network that is still running at {rpc_url}" in lines[0]
    assert (tmp_path / "b" / "network.json").read_text(encoding="utf-8") == config


def test_a_busy_port_is_refused_in_one_line(run_cli: RunCli, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = run_cli("up", "--dir", tmp_path / "net", "--port", str(port), timeout=30)

    assert result.returncode == 1, result.explain()
    assert result.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use (another chain?): pass --port with a free "
        "port, or --port 0 to pick one"
    )
    assert not (tmp_path / "net" / "network.json").exists()


def test_up_prints_each_dev_account_with_its_role_and_no_keys(start_up, tmp_path: Path) -> None:
    # Prepare
    up = start_up(tmp_path / "net", "--port", "0")

    # Execute
    up.wait_ready()

    # Assert: addresses and roles as the built-in specs assign them; private keys only in the 0600 file
    rows = re.findall(r"│ (\d+) +│ (0x[0-9a-fA-F]{40}) │ ([a-z ()]+?) +│", up.output)
    keys = dev_private_keys(10)
    expected_roles = ["task owner (deployer)", "arbiter"] + ["validator"] * 3 + ["contributor"] * 5
    assert rows == [
        (str(i), Signer.from_key(key).address, role)
        for i, (key, role) in enumerate(zip(keys, expected_roles, strict=True))
    ]
    assert not any(key[2:] in up.output for key in keys)
    accounts = tmp_path / "net" / "dev-accounts.json"
    assert f"their private keys: {accounts} (mode 0600)" in up.output
    assert accounts.stat().st_mode & 0o777 == 0o600
