"""Where a network lives: its RPC URL, market address and storage, kept in a small JSON file
(``.cotrain/network.json`` by default) that ``cotrain up`` writes and every other command reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from cotrain.chain.client import ChainClient
from cotrain.chain.keys import Signer
from cotrain.chain.market import Market
from cotrain.errors import ConfigError
from cotrain.storage.base import ContentStore, open_store

DEFAULT_PATH = Path(".cotrain/network.json")


@dataclass(frozen=True)
class NetworkConfig:
    """How to reach one deployment."""

    rpc_url: str
    market: str
    deploy_block: int
    storage: str  # a store URL for open_store: "embedded:/path" or "ipfs:http://127.0.0.1:5001"

    def save(self, path: Path = DEFAULT_PATH) -> None:
        """Write the config as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> NetworkConfig:
        """Read a config written by :meth:`save` (or by hand)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"no network config at {path}: run `cotrain up` or pass --network") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ConfigError(f"{path} is not a network config (not JSON: {error})") from None
        expected = {f.name: f.type for f in fields(cls)}
        if not isinstance(data, dict):
            raise ConfigError(
                f"{path} is not a network config: expected a JSON object with {_names(expected)}"
            )
        problems = [f"missing {name}" for name in expected if name not in data]
        problems += [f"unknown field {name}" for name in data if name not in expected]
        problems += [
            f"{name} must be {'an integer' if kind == 'int' else 'a string'}"
            for name, kind in expected.items()
            if name in data and not _is(data[name], kind)
        ]
        if problems:
            raise ConfigError(
                f"{path} is not a valid network config ({'; '.join(problems)}): it needs {_names(expected)}, "
                "as `cotrain up` writes them"
            )
        return cls(**data)

    def connect(self, signer: Signer | None, *, poll: float = 0.2) -> tuple[Market, ContentStore]:
        """The market (sending as ``signer``) and the content store."""
        client = ChainClient(self.rpc_url, signer, poll=poll)
        return Market(client, self.market, deploy_block=self.deploy_block), open_store(self.storage)


def _names(expected: dict) -> str:
    return ", ".join(expected)


def _is(value: object, kind: object) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str) and bool(value)
