"""Tests for cotrain.storage.jsipfs: starting, waiting for and stopping a daemon.

The real js-ipfs daemon is started once for the session (conftest.py); the failure paths use stand-in
programs, which start in milliseconds.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest
from cotrain.errors import StorageError
from cotrain.storage.jsipfs import JsIpfsDaemon, find_jsipfs, free_port

# Pretends to be jsipfs: `init` writes a config, `daemon` serves /api/v0/version on the configured port.
FAKE_DAEMON = """#!{python}
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
repo = os.environ["IPFS_PATH"]
if sys.argv[1] == "init":
    open(os.path.join(repo, "config"), "w").write(json.dumps({{"Addresses": {{}}}}))
    sys.exit(0)
{daemon}
"""
SERVE = """
class Version(BaseHTTPRequestHandler):
    def do_POST(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"Version": "fake"}')
port = int(json.load(open(os.path.join(repo, "config")))["Addresses"]["API"].rsplit("/", 1)[1])
print("fake daemon serving", port, flush=True)
HTTPServer(("127.0.0.1", port), Version).serve_forever()
"""
CRASH = 'print("Error: cannot acquire lock on the repo", file=sys.stderr); sys.exit(3)'
HANG = 'print("initializing forever", flush=True); import time; time.sleep(60)'


def _fake(tmp_path: Path, daemon: str) -> str:
    path = tmp_path / "fake-jsipfs"
    path.write_text(FAKE_DAEMON.format(python=sys.executable, daemon=daemon))
    path.chmod(0o755)
    return str(path)


def _daemon(tmp_path: Path, executable: str, **kwargs: float) -> JsIpfsDaemon:
    return JsIpfsDaemon(
        tmp_path / "repo",
        api_port=free_port(),
        gateway_port=free_port(),
        swarm_port=free_port(),
        executable=executable,
        **kwargs,
    )


def test_real_daemon_answers_on_its_configured_loopback_ports(ipfs_daemon: JsIpfsDaemon) -> None:
    request = urllib.request.Request(f"{ipfs_daemon.api_url}/api/v0/version", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        version = json.load(response)["Version"]
    addresses = json.loads((ipfs_daemon.repo / "config").read_text())["Addresses"]

    assert version  # js-ipfs 0.66.1 reports 0.18.1
    assert addresses["API"] == f"/ip4/127.0.0.1/tcp/{ipfs_daemon.api_port}"
    assert addresses["Gateway"] == f"/ip4/127.0.0.1/tcp/{ipfs_daemon.gateway_port}"
    assert addresses["Swarm"] == [f"/ip4/127.0.0.1/tcp/{ipfs_daemon.swarm_port}"]


def test_find_jsipfs_prefers_the_one_beside_python() -> None:
    beside = Path(sys.executable).parent / "jsipfs"
    if not beside.exists():
        pytest.skip("no jsipfs beside this Python")

    assert find_jsipfs() == str(beside)


def test_start_waits_for_the_api_and_exit_stops_the_daemon(tmp_path: Path) -> None:
    with _daemon(tmp_path, _fake(tmp_path, SERVE)) as daemon:
        assert daemon._process is not None
        pid = daemon._process.pid
        assert "fake daemon serving" in daemon.output()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_daemon_that_exits_is_reported_with_its_output(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"(?s)exited with code 3.*cannot acquire lock"):
        _daemon(tmp_path, _fake(tmp_path, CRASH)).start()


def test_a_daemon_that_never_answers_times_out_and_is_stopped(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, _fake(tmp_path, HANG), startup_timeout=1.0)

    with pytest.raises(StorageError, match=r"(?s)did not answer .* within 1.0 s.*initializing forever"):
        daemon.start()
    assert daemon._process is None


def test_a_failing_init_is_reported(tmp_path: Path) -> None:
    failing = tmp_path / "failing-jsipfs"
    failing.write_text("#!/bin/sh\necho 'no such profile' >&2\nexit 1\n")
    failing.chmod(0o755)

    with pytest.raises(StorageError, match=r"(?s)jsipfs init.*no such profile"):
        _daemon(tmp_path, str(failing)).start()
