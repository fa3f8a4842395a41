"""A local anvil chain for ``cotrain up``, the demo and the tests.

:class:`Anvil` starts the ``anvil`` binary (linked into .venv/bin by ``toolchain/setup.sh``) on a free port
with base fee 0, waits until it answers, and stops it on exit. Its dev accounts come from anvil's
well-known test mnemonic: they hold play money on a local chain only and must never be used elsewhere.
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
import urllib.request
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from eth_account import Account
from eth_account.hdaccount import key_from_seed, seed_from_mnemonic

from cotrain.chain.keys import Signer
from cotrain.errors import ChainError
from cotrain.processes import stop_process

# Anvil's (and Hardhat's) public dev mnemonic, passed explicitly so the keys derived here always match.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
DEV_PATH = "m/44'/60'/0'/0/{index}"
_PORT_ATTEMPTS = 3
# Anvil is local: an HTTP(S)_PROXY from the environment must not see its traffic.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AnvilError(ChainError):
    """The local anvil chain could not be started or did not answer."""


def find_anvil() -> Path:
    """Return the anvil binary: the one beside the running Python (the project's .venv), else the one on PATH.

    Raises
    ------
    AnvilError
        If neither exists.
    """
    beside = Path(sys.executable).parent / "anvil"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("anvil")
    if found is None:
        raise AnvilError(
            f"anvil not found in {beside.parent} or on PATH: run `make setup` (it links anvil into "
            ".venv/bin) or install Foundry"
        )
    return Path(found)


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that was free a moment ago (the OS picks it from its ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``host:port`` now (a port left in TIME_WAIT counts as free)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Linux: SO_REUSEADDR ignores TIME_WAIT leftovers but still fails on a live listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def dev_private_keys(count: int, mnemonic: str = DEV_MNEMONIC) -> tuple[str, ...]:
    """Derive the first ``count`` BIP-44 keys of ``mnemonic`` as 0x-hex strings (anvil's dev keys)."""
    seed = seed_from_mnemonic(mnemonic, passphrase="")
    return tuple("0x" + key_from_seed(seed, DEV_PATH.format(index=i)).hex() for i in range(count))


class Anvil:
    """A running anvil chain, as a context manager.

    Parameters
    ----------
    port : int, optional
        TCP port on 127.0.0.1; a free one when None (and another one if anvil loses the race for it).
    accounts : int
        Number of funded dev accounts (10,000 ether each).
    block_time : float, optional
        Seconds between blocks (interval mining); None mines one block per transaction.
    mixed_mining : bool
        With ``block_time``: also mine each transaction as it arrives, so nobody waits for the next block
        while the clock still advances block by block (a local chain's fastest honest setting).
    startup_timeout : float
        Seconds to wait for ``eth_chainId`` to answer.

    Examples
    --------
    >>> with Anvil() as chain:  # doctest: +SKIP
    ...     client = ChainClient(chain.rpc_url, chain.signer(0))
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        accounts: int = 10,
        block_time: float | None = None,
        mixed_mining: bool = False,
        startup_timeout: float = 15.0,
    ) -> None:
        if accounts < 1:
            raise ValueError("anvil needs at least one account")
        self.host = "127.0.0.1"
        self.accounts = accounts
        self.block_time = block_time
        self.mixed_mining = mixed_mining
        self.startup_timeout = startup_timeout
        self._requested_port = port
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Anvil:
        """Launch anvil and wait until it answers ``eth_chainId``.

        Raises
        ------
        AnvilError
            If the binary is missing, exits early, or does not answer within ``startup_timeout``.
        """
        if self._process is not None:
            raise AnvilError(f"anvil is already running at {self.rpc_url}")
        binary = find_anvil()
        attempts = 1 if self._requested_port is not None else _PORT_ATTEMPTS
        for attempt in range(attempts):
            port = self._requested_port if self._requested_port is not None else free_port(self.host)
            try:
                self._launch(binary, port)
                return self
            except AnvilError as exc:
                self.stop()
                port_taken = "address already in use" in str(exc).lower()
                if not port_taken or attempt == attempts - 1:
                    raise
            except BaseException:
                self.stop()  # interrupted while waiting (Ctrl-C, SIGTERM): leave no anvil behind
                raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop anvil (SIGTERM, then SIGKILL after 5 s); the chain's state is discarded."""
        process, self._process = self._process, None
        self._port = None
        stop_process(process, grace_s=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the anvil process is alive."""
        return self._process is not None and self._process.poll() is None

    # ---------------------------------------------------------------- addresses and accounts

    @property
    def port(self) -> int:
        """The port anvil listens on."""
        if self._port is None:
            raise AnvilError("anvil is not running: use `with Anvil() as chain:` or call start()")
        return self._port

    @property
    def rpc_url(self) -> str:
        """The JSON-RPC endpoint, ``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    @cached_property
    def private_keys(self) -> tuple[str, ...]:
        """The dev accounts' private keys (0x-hex), derived from anvil's public test mnemonic."""
        return dev_private_keys(self.accounts)

    @cached_property
    def addresses(self) -> tuple[str, ...]:
        """The dev accounts' checksummed addresses, in anvil's order."""
        return tuple(Account.from_key(key).address for key in self.private_keys)

    def signer(self, index: int) -> Signer:
        """A :class:`Signer` for dev account ``index``."""
        return Signer.from_key(self.private_keys[index], source=f"anvil dev account {index}")

    # ---------------------------------------------------------------- JSON-RPC and the clock

    def rpc(self, method: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
        """Call a JSON-RPC method and return its result.

        Raises
        ------
        AnvilError
            If anvil cannot be reached or answers with an error.
        """
        return rpc_call(self.rpc_url, method, list(params), timeout=10.0)

    def increase_time(self, seconds: int) -> None:
        """Move the chain's clock forward; the next block is at least ``seconds`` later."""
        self.rpc("evm_increaseTime", [int(seconds)])

    def set_next_block_timestamp(self, timestamp: int) -> None:
        """Give the next block exactly this timestamp (later than the latest block's)."""
        self.rpc("evm_setNextBlockTimestamp", [int(timestamp)])

    def mine(self, blocks: int = 1) -> None:
        """Mine ``blocks`` empty blocks now."""
        for _ in range(blocks):
            self.rpc("evm_mine")

    def timestamp(self) -> int:
        """The latest block's timestamp."""
        return int(self.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)

    def __repr__(self) -> str:
        where = self.rpc_url if self._port is not None else "not started"
        return f"Anvil({where}, accounts={self.accounts}, block_time={self.block_time})"

    # ---------------------------------------------------------------- internals

    def _launch(self, binary: Path, port: int) -> None:
        # Whatever already listens there would answer the readiness probe in anvil's place.
        if not port_free(port, self.host):
            raise AnvilError(f"port {port} on {self.host}: address already in use; pick another port")
        command = [
            str(binary),
            "--host", self.host,
            "--port", str(port),
            "--accounts", str(self.accounts),
            "--mnemonic", DEV_MNEMONIC,
            "--base-fee", "0",
        ]  # fmt: skip
        if self.block_time is not None:
            command += ["--block-time", str(self.block_time)]
            if self.mixed_mining:
                command.append("--mixed-mining")
        # A file, not a pipe: nobody reads anvil's output while it runs, and a full pipe would block it.
        self._log = tempfile.TemporaryFile(prefix="cotrain-anvil-")  # noqa: SIM115 (closed by stop())
        self._process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        self._port = port
        url = f"http://{self.host}:{port}"
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._process.poll() is not None:
                raise AnvilError(
                    f"anvil exited with status {self._process.returncode} on port {port}: {self._log_tail()}"
                )
            try:
                rpc_call(url, "eth_chainId", [], timeout=0.5)
                if self._process.poll() is None:
                    return
                continue
            except AnvilError:
                if time.monotonic() > deadline:
                    raise AnvilError(
                        f"anvil did not answer at {url} within {self.startup_timeout} s: {self._log_tail()}"
                    ) from None
            time.sleep(0.05)

    def _log_tail(self, limit: int = 2000) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip()
        return text[-limit:] or "(no output)"


def rpc_call(url: str, method: str, params: list[Any], *, timeout: float) -> Any:
    """Call JSON-RPC ``method`` at ``url`` (no proxy) and return its result.

    Raises
    ------
    AnvilError
        If nothing answers within ``timeout`` seconds, or the node answers with an error.
    """
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with _DIRECT.open(request, timeout=timeout) as response:
            answer = json.loads(response.read())
    except (OSError, ValueError) as exc:  # URLError, timeouts and refused connections are OSErrors
        raise AnvilError(f"anvil at {url} did not answer {method}: {exc}") from exc
    if "error" in answer:
        raise AnvilError(
            f"anvil at {url} rejected {method}: {answer['error'].get('message', answer['error'])}"
        )
    return answer.get("result")
