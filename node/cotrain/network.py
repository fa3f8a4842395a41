"""Where a network lives: its RPC URL, market address and storage, kept in a small JSON file
(``.cotrain/network.json`` by default) that ``cotrain up`` writes and every other command reads."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import Field, dataclass, fields, replace
from pathlib import Path

from cotrain.chain.client import ChainClient
from cotrain.chain.keys import Signer
from cotrain.chain.market import Market
from cotrain.errors import ConfigError
from cotrain.storage.base import ContentStore, open_store

DEFAULT_PATH = Path(".cotrain/network.json")


@dataclass(frozen=True)
class NetworkConfig:
    """How one participant reaches one deployment: the shared facts (market, deploy block, chain id) and its
    own endpoint, store and key.

    ``cotrain up`` and ``cotrain deploy`` write it; each participant keeps a copy with its own ``rpc_url``,
    ``storage`` and ``keystore``. The optional fields keep their defaults when a file leaves them out.
    """

    rpc_url: str
    market: str
    deploy_block: int
    storage: str  # a store URL for open_store: "embedded:/path" or "ipfs:http://127.0.0.1:5001"
    chain_id: int | None = None  # checked against the endpoint's at connection, when set
    confirmations: int = 0  # blocks on top of a transaction's before it counts as done (a reorg's depth)
    keystore: str | None = None  # this participant's encrypted key, relative to the config's folder

    def __post_init__(self) -> None:
        if self.confirmations < 0:
            raise ConfigError(f"confirmations must be 0 or more, not {self.confirmations}")

    def save(self, path: Path = DEFAULT_PATH) -> None:
        """Write the config as JSON (the optional fields only where they differ from their defaults)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name in _REQUIRED or _set(self, f)}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> NetworkConfig:
        """Read a config written by :meth:`save` (or by hand); a relative ``keystore`` is made absolute."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"no network config at {path}: run `cotrain up` or `cotrain deploy`, or pass --network"
            ) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path} is not a network config (not JSON: {error})") from None
        expected = {f.name: f.type for f in fields(cls)}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path} is not a network config: expected a JSON object with {_names(_REQUIRED)}"
            )
        problems = [f"missing {name}" for name in _REQUIRED if name not in data]
        problems += [f"unknown field {name}" for name in data if name not in expected]
        problems += [
            f"{name} must be {_KINDS[str(expected[name])][1]}"
            for name in expected
            if name in data and not _KINDS[str(expected[name])][0](data[name])
        ]
        if problems:
            raise ConfigError(
                f"{path} is not a valid network config ({'; '.join(problems)}): it needs "
                f"{_names(_REQUIRED)}, as `cotrain up` writes them"
            )
        config = cls(**data)
        if config.keystore is not None and not Path(config.keystore).is_absolute():
            config = replace(config, keystore=str(Path(path).parent / config.keystore))
        return config

    def client(self, signer: Signer | None, *, poll: float = 0.2) -> ChainClient:
        """A client of ``rpc_url`` signing as ``signer``, with this network's confirmations.

        Raises
        ------
        ConfigError
            If the endpoint serves another chain than ``chain_id``.
        """
        client = ChainClient(self.rpc_url, signer, poll=poll, confirmations=self.confirmations)
        if self.chain_id is not None and client.chain_id != self.chain_id:
            raise ConfigError(
                f"the network config names chain {self.chain_id} but {client.rpc_url} serves chain "
                f"{client.chain_id}: fix rpc_url or chain_id"
            )
        return client

    def connect(self, signer: Signer | None, *, poll: float = 0.2) -> tuple[Market, ContentStore]:
        """The market (sending as ``signer``) and the content store."""
        market = Market(self.client(signer, poll=poll), self.market, deploy_block=self.deploy_block)
        return market, open_store(self.storage)


_REQUIRED = ("rpc_url", "market", "deploy_block", "storage")

# The JSON value each field type accepts, and those words for an error.
_KINDS = {
    "str": (lambda v: isinstance(v, str) and bool(v), "a string"),
    "int": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "int | None": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer"),
    "str | None": (lambda v: v is None or (isinstance(v, str) and bool(v)), "a string"),
}


def _set(config: NetworkConfig, field: Field[object]) -> bool:
    return getattr(config, field.name) != field.default


def _names(names: Iterable[str]) -> str:
    return ", ".join(names)
