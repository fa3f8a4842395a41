"""Fixtures for the storage tests: one real js-ipfs daemon for the whole session, on free ports in a
temporary repository, and seeded test files."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import ipfshttpclient
import pytest
from cotrain.storage.embedded import EmbeddedStore
from cotrain.storage.ipfs import IpfsStore
from cotrain.storage.jsipfs import JsIpfsDaemon, free_port


@pytest.fixture(scope="session")
def ipfs_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JsIpfsDaemon]:
    repo = tmp_path_factory.mktemp("jsipfs") / "repo"
    with JsIpfsDaemon(repo, api_port=free_port(), gateway_port=free_port(), swarm_port=free_port()) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def ipfs_client(ipfs_daemon: JsIpfsDaemon) -> ipfshttpclient.Client:
    """A bare client, to ask the daemon things independently of the code under test."""
    return ipfshttpclient.Client(ipfs_daemon.api_multiaddr, timeout=60)


@pytest.fixture
def ipfs_store(ipfs_daemon: JsIpfsDaemon) -> IpfsStore:
    return IpfsStore(
        ipfs_daemon.api_multiaddr, timeout=10, retries=1, backoff=0.01, pin=False, has_timeout=0.3
    )


@pytest.fixture
def embedded_store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


@pytest.fixture(scope="session")
def make_file() -> Callable[..., bytes]:
    """Return ``make(size, seed=0)``: seeded random bytes, so no two chunks are alike and deduplication
    hides nothing."""

    def make(size: int, seed: int = 0) -> bytes:
        return random.Random(f"{seed}-{size}").randbytes(size)

    return make
