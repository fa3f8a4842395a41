"""A whole network on one machine: an anvil chain, a content store (embedded, or js-ipfs: one daemon, or one
per named participant, peered) and a deployed market, described by a network config file that every other
command reads.

One network per folder: ``DIR/up.lock`` is held (``flock``) while it runs, so a second one in the same folder
is refused instead of overwriting ``DIR/network.json``; the kernel releases the lock however the process ends.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

from cotrain.chain.anvil import Anvil, AnvilError, port_free, rpc_call
from cotrain.chain.client import ChainClient
from cotrain.chain.keys import Signer
from cotrain.chain.market import deploy_market
from cotrain.errors import ConfigError
from cotrain.network import NetworkConfig
from cotrain.process_lock import ProcessLock
from cotrain.protocol.task_spec import TaskSpec
from cotrain.storage.jsipfs import JsIpfsDaemon, PeerGroup, free_port

STORAGE_KINDS = ("embedded", "ipfs")
LOCK_FILE = "up.lock"


@dataclass
class LocalNetwork:
    """A running local network."""

    config: NetworkConfig
    anvil: Anvil
    accounts_file: Path
    replaced: str | None = None  # why an older DIR/network.json was replaced, if one was
    peers: PeerGroup | None = None  # one IPFS node per participant, when the network was started with them

    def signer(self, index: int) -> Signer:
        """Dev account ``index`` (0 deployed the market)."""
        return self.anvil.signer(index)

    def config_of(self, participant: str) -> NetworkConfig:
        """The network as ``participant`` reaches it: through its own IPFS node where each has one."""
        if self.peers is None:
            return self.config
        return replace(self.config, storage=f"ipfs:{self.peers[participant].api_url}")

    def network_file(self, participant: str) -> Path:
        """A network config file for ``participant`` (written on first ask), for the `cotrain` commands."""
        if self.peers is None:
            return self.accounts_file.parent / "network.json"
        path = self.accounts_file.parent / "participants" / participant / "network.json"
        if not path.exists():
            self.config_of(participant).save(path)
        return path


@contextmanager
def local_network(
    directory: Path,
    *,
    port: int | None = None,
    storage: str = "embedded",
    block_time: float | None = 1.0,
    mixed_mining: bool = True,
    accounts: int = 10,
    participants: Sequence[str] = (),
) -> Iterator[LocalNetwork]:
    """Start anvil and the store, deploy the market and write ``directory/network.json``; stop all on exit.

    With ``storage="ipfs"`` and ``participants`` named, each participant (and the deployer, ``"owner"``)
    gets its own js-ipfs daemon, all peered (:class:`~cotrain.storage.jsipfs.PeerGroup`); ``network.json``
    names the owner's, :meth:`LocalNetwork.network_file` each participant's.

    The dev accounts' keys go to ``directory/dev-accounts.json`` (mode 0600) for the demo's processes; they
    are anvil's public test keys, never to be used on a real network. ``port`` 0 or None picks a free port.
    Transactions are mined as they arrive while blocks keep coming every ``block_time`` seconds, unless
    ``mixed_mining`` is False (a real chain's pace: every transaction waits for the next block).

    Raises
    ------
    ConfigError
        If another network runs in ``directory`` (its lock is held, or its ``network.json`` answers), or
        ``port`` is in use.
    """
    if storage not in STORAGE_KINDS:
        raise ConfigError(f"storage must be one of {STORAGE_KINDS}, not {storage!r}")
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(directory_lock(directory))
        replaced = check_previous_network(directory / "network.json")
        if port and not port_free(port):
            raise ConfigError(
                f"port {port} on 127.0.0.1 is already in use (another chain?): pass --port with a free "
                "port, or --port 0 to pick one"
            )
        anvil = stack.enter_context(
            Anvil(port or None, accounts=accounts, block_time=block_time, mixed_mining=mixed_mining)
        )
        peers = None
        if storage == "ipfs" and participants:
            peers = stack.enter_context(PeerGroup(directory / "ipfs", ["owner", *participants]))
            store_url = f"ipfs:{peers['owner'].api_url}"
        elif storage == "ipfs":
            daemon = JsIpfsDaemon(
                directory / "ipfs", api_port=free_port(), gateway_port=free_port(), swarm_port=free_port()
            )
            stack.enter_context(daemon)
            store_url = f"ipfs:{daemon.api_url}"
        else:
            store_url = f"embedded:{directory / 'store'}"
        market = deploy_market(ChainClient(anvil.rpc_url, anvil.signer(0), poll=0.1))
        config = NetworkConfig(
            rpc_url=anvil.rpc_url,
            market=market.address,
            deploy_block=market.deploy_block,
            storage=store_url,
            chain_id=market.client.chain_id,
        )
        config.save(directory / "network.json")
        accounts_file = directory / "dev-accounts.json"
        fd = os.open(accounts_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an older file keeps its mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(
                [
                    {"address": a, "private_key": k}
                    for a, k in zip(anvil.addresses, anvil.private_keys, strict=True)
                ],
                file,
            )
        yield LocalNetwork(config, anvil, accounts_file, replaced, peers)


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold ``directory/up.lock`` (an exclusive ``flock``, holding this process's id) while inside.

    Raises
    ------
    ConfigError
        If another process holds it, naming that process.
    """
    lock = ProcessLock(Path(directory) / LOCK_FILE)
    holder = lock.acquire()
    if holder is not None:
        raise ConfigError(
            f"another cotrain network (pid {holder}) is running in {directory}: stop it "
            f"(Ctrl-C, or kill {holder}), or pass --dir with another folder"
        )
    try:
        yield
    finally:
        lock.release()


def check_previous_network(path: Path) -> str | None:
    """Check an existing network config before a new network replaces it.

    Returns
    -------
    str or None
        None if there is no file at ``path``; else one line saying why the old file is stale.

    Raises
    ------
    ConfigError
        If the network it names still runs: its RPC URL answers and holds code at its market address.
    """
    if not path.exists():
        return None
    try:
        old = NetworkConfig.load(path)
    except ConfigError:
        return f"replacing {path}, which is not a network config"
    try:
        code = rpc_call(old.rpc_url, "eth_getCode", [old.market, "latest"], timeout=2.0)
    except AnvilError:
        return f"replacing stale {path}: nothing answers at {old.rpc_url} any more"
    if code in (None, "0x"):
        return f"replacing stale {path}: {old.rpc_url} answers, but its market {old.market} is gone"
    raise ConfigError(
        f"{path} names a network that is still running at {old.rpc_url} (market {old.market}): stop its "
        "`cotrain up` first, or pass --dir with another folder"
    )


def dev_account_roles(addresses: Sequence[str], specs: Sequence[TaskSpec]) -> list[str]:
    """Which part each dev account plays when ``specs`` are posted on a local network.

    Account 0 deployed the market and posts the tasks; an account a spec names as a validator or arbiter
    plays that part; every other account is free to contribute.
    """
    validators = {a.lower() for spec in specs for a in spec.validators.addresses}
    arbiters = {spec.arbiter.lower() for spec in specs}
    roles: list[str] = []
    for index, address in enumerate(addresses):
        if index == 0:
            roles.append("task owner (deployer)")
        elif address.lower() in validators:
            roles.append("validator")
        elif address.lower() in arbiters:
            roles.append("arbiter")
        else:
            roles.append("contributor")
    return roles


@contextmanager
def stop_signals_interrupt(signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)) -> Iterator[None]:
    """Inside, SIGTERM (like Ctrl-C) raises KeyboardInterrupt, so ``with`` blocks unwind and stop their
    child processes; signals that arrive while they unwind are ignored, so the stopping is not cut short."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        for number in signals:
            signal.signal(number, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {number: signal.signal(number, interrupt) for number in signals}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
