"""Where a network lives: its RPC URL, market address and storage, kept in a small JSON file
(``.cotrain/network.json`` by default) that ``cotrain up`` or ``cotrain deploy`` writes and every other
command reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cotrain.chain.client import ChainClient
from cotrain.chain.keys import Signer
from cotrain.chain.market import Market
from cotrain.chain.settings import ChainSettings
from cotrain.errors import ConfigError
from cotrain.storage.base import ContentStore, open_store

DEFAULT_PATH = Path(".cotrain/network.json")


@dataclass(frozen=True)
class NetworkConfig:
    """How one participant reaches one deployment: the shared facts (market, deploy block, chain id and how
    the chain is treated) and its own endpoint, store and key.

    ``cotrain up`` and ``cotrain deploy`` write it; each participant keeps a copy with its own ``rpc_url``,
    ``storage`` and ``keystore``. A file may leave the optional fields out; ``chain`` may name any subset of
    :class:`~cotrain.chain.settings.ChainSettings` (confirmations, retries, fee bumps, log paging).
    """

    rpc_url: str
    market: str
    deploy_block: int
    storage: str  # a store URL for open_store: "embedded:/path" or "ipfs:http://127.0.0.1:5001"
    chain_id: int | None = None  # checked against the endpoint's at connection, when set
    keystore: str | None = None  # this participant's encrypted key, relative to the config's folder
    chain: ChainSettings = field(default_factory=ChainSettings)

    def save(self, path: Path = DEFAULT_PATH) -> None:
        """Write the config as JSON, leaving out what equals its default."""
        data: dict[str, Any] = {name: getattr(self, name) for name in _REQUIRED}
        data |= {name: getattr(self, name) for name in ("chain_id", "keystore") if getattr(self, name)}
        chain = {key: value for key, value in asdict(self.chain).items() if value != _DEFAULT_CHAIN[key]}
        if chain:
            data["chain"] = chain
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
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path} is not a network config: expected a JSON object with {_names(_REQUIRED)}"
            )
        problems = [f"missing {name}" for name in _REQUIRED if name not in data]
        problems += [f"unknown field {name}" for name in data if name not in _KINDS]
        problems += [
            f"{name} must be {_KINDS[name][1]}"
            for name, value in data.items()
            if name in _KINDS and not _KINDS[name][0](value)
        ]
        if problems:
            raise ConfigError(
                f"{path} is not a valid network config ({'; '.join(problems)}): it needs "
                f"{_names(_REQUIRED)}, as `cotrain up` writes them"
            )
        chain = _chain_settings(data.pop("chain", {}), path)
        config = cls(**data, chain=chain)
        if config.keystore is not None and not Path(config.keystore).is_absolute():
            config = replace(config, keystore=str(Path(path).parent / config.keystore))
        return config

    def client(self, signer: Signer | None, *, poll: float = 0.2) -> ChainClient:
        """A client of ``rpc_url`` signing as ``signer``, treating the chain as ``chain`` says.

        Raises
        ------
        ConfigError
            If the endpoint serves another chain than ``chain_id``.
        """
        client = ChainClient(self.rpc_url, signer, poll=poll, settings=self.chain)
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
_DEFAULT_CHAIN = asdict(ChainSettings())


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Each field: whether a JSON value fits it, and the words for one that does not.
_KINDS = {
    "rpc_url": (_text, "a string"),
    "market": (_text, "a string"),
    "deploy_block": (_integer, "an integer"),
    "storage": (_text, "a string"),
    "chain_id": (_integer, "an integer"),
    "keystore": (_text, "a string"),
    "chain": (lambda value: isinstance(value, dict), "an object"),
}


def _chain_settings(data: Mapping[str, Any], path: Path) -> ChainSettings:
    """``chain`` of a config file as ChainSettings: integers where the default is one, numbers elsewhere."""
    problems = [
        f"unknown chain setting {key} (known: {_names(_DEFAULT_CHAIN)})"
        for key in data
        if key not in _DEFAULT_CHAIN
    ]
    problems += [
        f"chain.{key} must be {'an integer' if isinstance(_DEFAULT_CHAIN[key], int) else 'a number'}"
        for key, value in data.items()
        if key in _DEFAULT_CHAIN
        and not (_integer if isinstance(_DEFAULT_CHAIN[key], int) else _number)(value)
    ]
    if not problems:
        try:
            return ChainSettings(**data)
        except ValueError as error:
            problems.append(str(error))
    raise ConfigError(f"{path} is not a valid network config ({'; '.join(problems)})")


def _names(names: Iterable[str]) -> str:
    return ", ".join(names)
