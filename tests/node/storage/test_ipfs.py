"""Tests for cotrain.storage.ipfs against a real js-ipfs daemon (started once, in conftest.py).

The CID tests ask the daemon directly, through a bare client, so they hold even if IpfsStore's own
check were wrong.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import ipfshttpclient
import pytest
from cotrain.errors import ConfigError, IntegrityError, StorageError
from cotrain.storage import ipfs as ipfs_module
from cotrain.storage.base import (
    ContentNotFoundError,
    ContentStore,
    ContentTooLargeError,
    StoreUnreachableError,
    fetch_verified,
)
from cotrain.storage.embedded import EmbeddedStore
from cotrain.storage.ipfs import IpfsStore, api_multiaddr
from cotrain.storage.jsipfs import JsIpfsDaemon, free_port
from cotrain.storage.unixfs import CHUNK_SIZE, MAX_LINKS, build_dag, compute_cid, same_cid

# cotrain.storage.ipfs silences this urllib3 warning at import, but pytest resets filters around each test.
pytestmark = pytest.mark.filterwarnings("ignore:The 'strict' parameter:FutureWarning")

CID_SIZES = {
    "0B": 0,
    "12B": 12,
    "256KiB": CHUNK_SIZE,
    "256KiB+1": CHUNK_SIZE + 1,
    "3MB": 3_000_000,
    "174x256KiB": MAX_LINKS * CHUNK_SIZE,  # the root's links are full: one level of 174
    "175x256KiB": (MAX_LINKS + 1) * CHUNK_SIZE,  # one chunk more: a second level appears
}


def _daemon_add(client: ipfshttpclient.Client, data: bytes) -> str:
    opts = {"cid-version": "1", "raw-leaves": "true", "cid-base": "base32", "pin": "false"}
    return str(client.add_bytes(data, opts=opts))


@pytest.fixture(scope="module")
def collect_garbage(ipfs_client: ipfshttpclient.Client) -> Iterator[None]:
    """Drop the unpinned boundary files from the daemon's repository once this module is done."""
    yield
    list(ipfs_client.repo.gc())


@pytest.mark.parametrize("size", CID_SIZES.values(), ids=CID_SIZES.keys())
def test_compute_cid_equals_the_daemons_cid(
    ipfs_client: ipfshttpclient.Client,
    make_file: Callable[..., bytes],
    tmp_path: Path,
    collect_garbage: None,
    size: int,
) -> None:
    data = make_file(size)

    daemon_cid = _daemon_add(ipfs_client, data)

    assert daemon_cid == compute_cid(data)
    assert EmbeddedStore(tmp_path / "store").add(data) == daemon_cid


def test_blocks_equal_the_daemons_blocks(
    ipfs_client: ipfshttpclient.Client, make_file: Callable[..., bytes]
) -> None:
    data = make_file(3_000_000, seed=7)
    root, blocks = build_dag(data)
    assert _daemon_add(ipfs_client, data) == root

    for cid, block in blocks.items():
        assert ipfs_client.block.get(cid) == block, cid


@pytest.mark.parametrize("size", [0, 12, CHUNK_SIZE * 2 + 5])
def test_add_get_has_round_trip(ipfs_store: IpfsStore, make_file: Callable[..., bytes], size: int) -> None:
    data = make_file(size)

    cid = ipfs_store.add(data)

    assert cid == compute_cid(data)
    assert ipfs_store.has(cid)
    assert ipfs_store.get(cid, max_size=size) == data


def test_add_pins_by_default(ipfs_daemon: JsIpfsDaemon, ipfs_client: ipfshttpclient.Client) -> None:
    store = IpfsStore(ipfs_daemon.api_multiaddr, timeout=10)

    cid = store.add(b"keep me")

    pinned = ipfs_client.pin.ls(type="recursive")["Keys"]
    assert any(same_cid(key, cid) for key in pinned)  # js-ipfs lists pins in base58


def test_is_a_content_store(ipfs_store: IpfsStore) -> None:
    assert isinstance(ipfs_store, ContentStore)
    assert ipfs_store.kind == "ipfs"


def test_fetch_verified_through_the_daemon(ipfs_store: IpfsStore) -> None:
    data = b"task spec"
    cid = ipfs_store.add(data)

    assert fetch_verified(ipfs_store, cid, hashlib.sha256(data).digest(), max_size=100) == data
    with pytest.raises(IntegrityError, match="sha256"):
        fetch_verified(ipfs_store, cid, hashlib.sha256(b"other spec").digest(), max_size=100)


def test_get_refuses_a_file_over_max_size(ipfs_store: IpfsStore, make_file: Callable[..., bytes]) -> None:
    data = make_file(CHUNK_SIZE + 100)
    cid = ipfs_store.add(data)

    with pytest.raises(ContentTooLargeError, match=f"{len(data)} bytes"):
        ipfs_store.get(cid, max_size=len(data) - 1)


def test_get_stops_downloading_at_max_size_whatever_the_size_lookup_said(
    ipfs_store: IpfsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = b"z" * 5000
    cid = ipfs_store.add(data)
    monkeypatch.setattr(ipfs_store._client.files, "stat", lambda *a, **k: {"Type": "file", "Size": 10})

    with pytest.raises(ContentTooLargeError):
        ipfs_store.get(cid, max_size=100)


def test_unknown_content_is_not_found(ipfs_daemon: JsIpfsDaemon) -> None:
    store = IpfsStore(ipfs_daemon.api_multiaddr, timeout=0.5, retries=0, has_timeout=0.3)
    missing = compute_cid(b"nobody ever added this")

    assert not store.has(missing)
    with pytest.raises(ContentNotFoundError, match=missing):
        store.get(missing, max_size=100)


def test_add_refuses_a_daemon_that_names_files_differently(
    ipfs_store: IpfsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_add_bytes = ipfs_store._client.add_bytes

    def add_without_raw_leaves(data: bytes, *, opts: dict[str, str]) -> str:
        return str(real_add_bytes(data, opts={**opts, "raw-leaves": "false"}))

    monkeypatch.setattr(ipfs_store._client, "add_bytes", add_without_raw_leaves)

    with pytest.raises(IntegrityError, match="Import settings"):
        ipfs_store.add(b"x" * (CHUNK_SIZE + 1))


def test_unreachable_daemon_is_retried_with_backoff_then_named(monkeypatch: pytest.MonkeyPatch) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    store = IpfsStore(address, timeout=2, retries=2, backoff=0.01)
    waits: list[float] = []
    monkeypatch.setattr(ipfs_module.time, "sleep", waits.append)

    with pytest.raises(StoreUnreachableError) as caught:
        store.add(b"nobody listens")

    message = str(caught.value)
    assert waits == [0.01, 0.02]
    assert f"Is the IPFS daemon running at {address}?" in message
    assert "3 attempts" in message and "Connection refused" in message
    assert isinstance(caught.value, StorageError)


@pytest.mark.parametrize("operation", ["get", "has"])
def test_unreachable_daemon_fails_every_operation_clearly(operation: str) -> None:
    store = IpfsStore(f"/ip4/127.0.0.1/tcp/{free_port()}/http", timeout=2, retries=1, backoff=0.01)
    cid = compute_cid(b"anything")

    with pytest.raises(StoreUnreachableError, match="daemon running"):
        store.get(cid, max_size=10) if operation == "get" else store.has(cid)


@pytest.mark.parametrize(
    ("api", "multiaddr"),
    [
        ("http://127.0.0.1:5001", "/ip4/127.0.0.1/tcp/5001/http"),
        ("http://127.0.0.1:5001/", "/ip4/127.0.0.1/tcp/5001/http"),
        ("https://ipfs.example.org", "/dns/ipfs.example.org/tcp/443/https"),
        ("http://[::1]:5001", "/ip6/::1/tcp/5001/http"),
        ("/ip4/127.0.0.1/tcp/5001/http", "/ip4/127.0.0.1/tcp/5001/http"),
    ],
)
def test_api_multiaddr(api: str, multiaddr: str) -> None:
    assert api_multiaddr(api) == multiaddr


@pytest.mark.parametrize(
    "api", ["127.0.0.1:5001", "ftp://host:21", "http://host:5001/api/v0", "http://:5001"]
)
def test_api_multiaddr_refuses_what_is_not_an_api_address(api: str) -> None:
    with pytest.raises(ConfigError):
        api_multiaddr(api)
