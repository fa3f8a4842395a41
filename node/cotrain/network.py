"""Where a network lives: its RPC URL, market address and storage, kept in a small JSON file
(``.cotrain/network.json`` by default) that ``cotrain up`` writes and every other command reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
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
            return cls(**data)
        except FileNotFoundError:
            raise ConfigError(f"no network config at {path}: run `cotrain up` or pass --network") from None
        except (json.JSONDecodeError, TypeError) as error:
            raise ConfigError(f"{path} is not a network config: {error}") from None

    def connect(self, signer: Signer | None, *, poll: float = 0.2) -> tuple[Market, ContentStore]:
        """The market (sending as ``signer``) and the content store."""
        client = ChainClient(self.rpc_url, signer, poll=poll)
        return Market(client, self.market, deploy_block=self.deploy_block), open_store(self.storage)
