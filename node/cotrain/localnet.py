"""A whole network on one machine: an anvil chain, a content store (embedded, or a js-ipfs daemon) and a
deployed market, described by a network config file that every other command reads."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from cotrain.chain.anvil import Anvil
from cotrain.chain.client import ChainClient
from cotrain.chain.keys import Signer
from cotrain.chain.market import deploy_market
from cotrain.errors import ConfigError
from cotrain.network import NetworkConfig
from cotrain.storage.jsipfs import JsIpfsDaemon, free_port

STORAGE_KINDS = ("embedded", "ipfs")


@dataclass
class LocalNetwork:
    """A running local network."""

    config: NetworkConfig
    anvil: Anvil
    accounts_file: Path

    def signer(self, index: int) -> Signer:
        """Dev account ``index`` (0 deployed the market)."""
        return self.anvil.signer(index)


@contextmanager
def local_network(
    directory: Path,
    *,
    port: int | None = None,
    storage: str = "embedded",
    block_time: float | None = 1.0,
    accounts: int = 10,
) -> Iterator[LocalNetwork]:
    """Start anvil and the store, deploy the market and write ``directory/network.json``; stop all on exit.

    The dev accounts' keys go to ``directory/dev-accounts.json`` (mode 0600) for the demo's processes; they
    are anvil's public test keys, never to be used on a real network.
    """
    if storage not in STORAGE_KINDS:
        raise ConfigError(f"storage must be one of {STORAGE_KINDS}, not {storage!r}")
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        anvil = stack.enter_context(Anvil(port, accounts=accounts, block_time=block_time))
        if storage == "ipfs":
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
        )
        config.save(directory / "network.json")
        accounts_file = directory / "dev-accounts.json"
        fd = os.open(accounts_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(
                [
                    {"address": a, "private_key": k}
                    for a, k in zip(anvil.addresses, anvil.private_keys, strict=True)
                ],
                file,
            )
        yield LocalNetwork(config, anvil, accounts_file)
