"""Run private js-ipfs daemons (npm ``ipfs``, installed by ``toolchain/setup.sh``) for tests and the demo.

Each daemon gets its own repository and listens on 127.0.0.1 only. Alone it runs offline; in a
:class:`PeerGroup` each participant has its own daemon, connected to the others over loopback and to nothing
else (no bootstrap list, no mDNS, no delegate routers), and files travel between them by bitswap. Its HTTP
RPC API is the one Kubo offers, so :class:`IpfsStore` talks to it as to any IPFS node.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO

from cotrain.errors import StorageError
from cotrain.processes import stop_process


class JsIpfsDaemon:
    """Context manager that starts a js-ipfs daemon on the given ports and stops it on exit.

    Parameters
    ----------
    repo : Path
        The daemon's repository; initialised (with the ``test`` profile) if it holds none yet.
    api_port, gateway_port, swarm_port : int
        Ports on 127.0.0.1 for the HTTP RPC API, the HTTP gateway and libp2p.
    startup_timeout : float
        Seconds to wait for the API to answer.
    online : bool
        Run the swarm, so that :meth:`connect` can join other daemons; offline by default.
    executable : str, optional
        The ``jsipfs`` program; by default the one beside this Python (``.venv/bin``), else on PATH.

    Examples
    --------
    >>> with JsIpfsDaemon(tmp / "ipfs", api_port=free_port(), gateway_port=free_port(),
    ...                   swarm_port=free_port()) as daemon:
    ...     store = IpfsStore(daemon.api_multiaddr, timeout=10, retries=2)
    """

    def __init__(
        self,
        repo: Path,
        *,
        api_port: int,
        gateway_port: int,
        swarm_port: int,
        startup_timeout: float = 60.0,
        online: bool = False,
        executable: str | None = None,
    ) -> None:
        self.repo = Path(repo)
        self.online = online
        self.api_port = api_port
        self.gateway_port = gateway_port
        self.swarm_port = swarm_port
        self.startup_timeout = startup_timeout
        self.executable = executable or find_jsipfs()
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._peer_id: str | None = None

    @property
    def api_multiaddr(self) -> str:
        """The API address as a multiaddr, as :class:`IpfsStore` and ``open_store("ipfs:...")`` take it."""
        return f"/ip4/127.0.0.1/tcp/{self.api_port}/http"

    @property
    def api_url(self) -> str:
        """The API address as an ``http://`` URL."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def running(self) -> bool:
        """Whether the daemon process is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def swarm_multiaddr(self) -> str:
        """Where other daemons reach this one: its swarm address with its peer id (known once started)."""
        if self._peer_id is None:
            raise StorageError(f"the js-ipfs daemon for {self.repo} has not started")
        return f"/ip4/127.0.0.1/tcp/{self.swarm_port}/p2p/{self._peer_id}"

    def connect(self, other: JsIpfsDaemon) -> None:
        """Open a swarm connection to ``other`` (both must be online), so each can fetch the other's blocks.

        Raises
        ------
        StorageError
            If either daemon is offline, or the connection fails.
        """
        if not (self.online and other.online):
            raise StorageError("only online daemons connect: start both with online=True")
        self._api("swarm/connect", other.swarm_multiaddr)

    def __enter__(self) -> JsIpfsDaemon:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Initialise the repository if needed, start the daemon and wait until its API answers.

        Raises
        ------
        StorageError
            ``jsipfs`` failed, exited, or its API did not answer within ``startup_timeout``; the message
            carries the daemon's output.
        """
        if self._process is not None:
            raise RuntimeError("this daemon is already running")
        if not (self.repo / "config").is_file():
            self._run_init()
        self._configure()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 (it outlives this call; stop() closes it)
        self._process = subprocess.Popen(
            [self.executable, "daemon", "--enable-preload=false", *([] if self.online else ["--offline"])],
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_until_ready()
            if self.online:
                self._peer_id = str(json.loads(self._api("id"))["ID"])
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the daemon: SIGTERM, then SIGKILL if it has not exited after 10 s. Safe to call twice."""
        process, self._process = self._process, None
        stop_process(process, grace_s=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def output(self) -> str:
        """Return what the daemon has printed so far (stdout and stderr)."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def _env(self) -> dict[str, str]:
        return {**os.environ, "IPFS_PATH": str(self.repo)}

    def _run_init(self) -> None:
        self.repo.mkdir(parents=True, exist_ok=True)
        try:
            subprocess.run(
                [self.executable, "init", "--profile", "test"],
                env=self._env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                check=True,
                timeout=self.startup_timeout,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout + exc.stderr).decode(errors="replace")
            raise StorageError(
                f"`jsipfs init` failed for {self.repo} (exit {exc.returncode}):\n{output}"
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise StorageError(f"`jsipfs init` for {self.repo} took over {self.startup_timeout} s") from exc

    def _configure(self) -> None:
        # Editing the JSON directly: each `jsipfs config` call starts Node.js and costs about a second.
        path = self.repo / "config"
        try:
            config = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot read the js-ipfs config {path}: {exc}") from exc
        addresses = config.setdefault("Addresses", {})
        addresses["API"] = f"/ip4/127.0.0.1/tcp/{self.api_port}"
        addresses["Gateway"] = f"/ip4/127.0.0.1/tcp/{self.gateway_port}"
        addresses["Swarm"] = [f"/ip4/127.0.0.1/tcp/{self.swarm_port}"]
        # The gRPC endpoint defaults to the fixed port 5003, which two daemons on one machine would share.
        addresses["RPC"] = "/ip4/127.0.0.1/tcp/0"
        # Nothing but the peers it is told to connect to: the test profile already empties the bootstrap list
        # and turns mDNS off; the delegate routers would ask public servers for content a peer lacks.
        addresses["Delegates"] = []
        config["Bootstrap"] = []
        path.write_text(json.dumps(config, indent=2))

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise StorageError(
                    f"the js-ipfs daemon for {self.repo} exited with code {code} before its API answered:\n"
                    f"{self.output()}"
                )
            if self._api_answers():
                return
            time.sleep(0.1)
        raise StorageError(
            f"the js-ipfs daemon for {self.repo} did not answer on {self.api_url} within "
            f"{self.startup_timeout} s; its output:\n{self.output()}"
        )

    def _api(self, command: str, argument: str | None = None) -> bytes:
        query = "" if argument is None else "?" + urllib.parse.urlencode({"arg": argument})
        request = urllib.request.Request(f"{self.api_url}/api/v0/{command}{query}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return bytes(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise StorageError(f"the js-ipfs daemon for {self.repo} failed `{command}`: {exc}") from exc

    def _api_answers(self) -> bool:
        request = urllib.request.Request(f"{self.api_url}/api/v0/version", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False


class PeerGroup:
    """Context manager running one online js-ipfs daemon per participant, each connected to all the others.

    The daemons start side by side (each takes seconds) under ``root/<name>``; leaving the block stops all
    that still run. Stop one (``group[name].stop()``) to take a participant's node offline.

    Parameters
    ----------
    root : Path
        Folder for the daemons' repositories.
    names : Sequence[str]
        One per participant, e.g. ``["owner", "contributor-0", "validator-0"]``.
    startup_timeout : float
        Seconds each daemon may take to answer.

    Examples
    --------
    >>> with PeerGroup(tmp, ["alice", "bob"]) as peers:
    ...     cid = IpfsStore(peers["alice"].api_multiaddr).add(b"x")
    ...     IpfsStore(peers["bob"].api_multiaddr).get(cid, max_size=1)  # fetched from alice's node
    """

    def __init__(self, root: Path, names: Sequence[str], *, startup_timeout: float = 60.0) -> None:
        if len(set(names)) != len(names) or not names:
            raise ValueError("a peer group needs one or more distinct names")
        self.daemons = {
            name: JsIpfsDaemon(
                Path(root) / name,
                api_port=free_port(),
                gateway_port=free_port(),
                swarm_port=free_port(),
                startup_timeout=startup_timeout,
                online=True,
            )
            for name in names
        }

    def __getitem__(self, name: str) -> JsIpfsDaemon:
        return self.daemons[name]

    def __enter__(self) -> PeerGroup:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start every daemon at once, then connect each pair.

        Raises
        ------
        StorageError
            If a daemon does not start or two cannot connect (every daemon is stopped then).
        """
        daemons = list(self.daemons.values())
        try:
            with ThreadPoolExecutor(len(daemons)) as pool:
                for future in [pool.submit(daemon.start) for daemon in daemons]:
                    future.result()
            for i, daemon in enumerate(daemons):
                for other in daemons[i + 1 :]:
                    daemon.connect(other)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every daemon still running."""
        for daemon in self.daemons.values():
            daemon.stop()


def find_jsipfs() -> str:
    """Return the path of the ``jsipfs`` program: beside this Python first, then on PATH.

    Raises
    ------
    StorageError
        It is in neither place.
    """
    beside = Path(sys.executable).parent / "jsipfs"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("jsipfs")
    if found is None:
        raise StorageError(
            "jsipfs (npm package ipfs) is not installed: run toolchain/setup.sh, which puts it in .venv/bin"
        )
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now (another process may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
