"""Tests for cotrain.storage.base: verified fetching, the store URL, and the error classes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cotrain.errors import ConfigError, CotrainError, IntegrityError, StorageError
from cotrain.storage.base import (
    ContentNotFoundError,
    ContentStore,
    ContentTooLargeError,
    StoreUnreachableError,
    fetch_verified,
    open_store,
    within,
)
from cotrain.storage.embedded import EmbeddedStore
from cotrain.storage.ipfs import IpfsStore
from cotrain.storage.unixfs import CHUNK_SIZE, build_dag, compute_cid


class LyingStore:
    """A store that answers every CID with the same bytes, as a malicious peer or broken daemon might."""

    kind = "lying"

    def __init__(self, answer: bytes) -> None:
        self.answer = answer

    def add(self, data: bytes) -> str:
        return compute_cid(data)

    def get(self, cid: str, *, max_size: int) -> bytes:
        return self.answer

    def has(self, cid: str) -> bool:
        return True


def test_fetch_verified_returns_content_whose_cid_and_digest_match(embedded_store: EmbeddedStore) -> None:
    data = b"model weights" * 50_000
    cid = embedded_store.add(data)

    assert fetch_verified(embedded_store, cid, hashlib.sha256(data).digest(), max_size=len(data)) == data


def test_fetch_verified_refuses_a_wrong_digest(embedded_store: EmbeddedStore) -> None:
    cid = embedded_store.add(b"the update")

    with pytest.raises(IntegrityError, match="sha256"):
        fetch_verified(embedded_store, cid, hashlib.sha256(b"another update").digest(), max_size=100)


def test_fetch_verified_refuses_content_that_is_not_its_cid() -> None:
    announced = b"the honest update"
    store = LyingStore(answer=b"a poisoned update")

    with pytest.raises(IntegrityError, match="has CID"):
        fetch_verified(store, compute_cid(announced), hashlib.sha256(announced).digest(), max_size=100)


def test_fetch_verified_refuses_a_corrupt_block_on_disk(embedded_store: EmbeddedStore) -> None:
    data = bytes(range(256)) * 4096  # four chunks
    cid = embedded_store.add(data)
    root, blocks = build_dag(data)
    leaf = sorted(blocks.keys() - {root})[-1]
    path = embedded_store.block_path(leaf)
    path.write_bytes(path.read_bytes()[:-1] + b"?")

    with pytest.raises(IntegrityError):
        fetch_verified(embedded_store, cid, hashlib.sha256(data).digest(), max_size=len(data))


def test_fetch_verified_refuses_too_much_even_from_a_store_that_ignores_max_size() -> None:
    data = b"x" * 1000

    with pytest.raises(ContentTooLargeError):
        fetch_verified(
            LyingStore(answer=data), compute_cid(data), hashlib.sha256(data).digest(), max_size=999
        )


def test_fetch_verified_passes_max_size_to_the_store(embedded_store: EmbeddedStore) -> None:
    data = b"y" * (CHUNK_SIZE + 1)
    cid = embedded_store.add(data)

    with pytest.raises(ContentTooLargeError):
        fetch_verified(embedded_store, cid, hashlib.sha256(data).digest(), max_size=CHUNK_SIZE)


def test_fetch_verified_wants_a_whole_sha256(embedded_store: EmbeddedStore) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        fetch_verified(embedded_store, compute_cid(b""), b"\x00" * 20, max_size=1)


def test_open_store_embedded(tmp_path: Path) -> None:
    store = open_store(f"embedded:{tmp_path / 'store'}")

    assert isinstance(store, EmbeddedStore) and store.root == tmp_path / "store"
    assert store.kind == "embedded"


@pytest.mark.parametrize("address", ["http://127.0.0.1:5001", "/ip4/127.0.0.1/tcp/5001/http"])
def test_open_store_ipfs_by_url_or_multiaddr(address: str) -> None:
    store = open_store(f"ipfs:{address}", timeout=3, retries=0)

    assert isinstance(store, IpfsStore) and store.multiaddr == "/ip4/127.0.0.1/tcp/5001/http"
    assert store.kind == "ipfs" and store.timeout == 3 and store.retries == 0


@pytest.mark.parametrize("url", ["", "embedded:", "ipfs:", "s3://bucket", "/tmp/store", "ipfs:ftp://host:21"])
def test_open_store_refuses_unknown_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_store(url)


def test_both_stores_are_content_stores(tmp_path: Path) -> None:
    assert isinstance(EmbeddedStore(tmp_path), ContentStore)
    assert isinstance(IpfsStore("http://127.0.0.1:5001"), ContentStore)


def test_errors_are_cotrain_errors_and_the_builtins_they_refine() -> None:
    assert issubclass(ContentNotFoundError, StorageError) and issubclass(
        ContentNotFoundError, FileNotFoundError
    )
    assert issubclass(StoreUnreachableError, StorageError) and issubclass(
        StoreUnreachableError, ConnectionError
    )
    assert issubclass(ContentTooLargeError, StorageError) and issubclass(ContentTooLargeError, CotrainError)


def test_within_bounds_an_ipfs_stores_timeout_and_leaves_the_embedded_store_alone(tmp_path: Path) -> None:
    embedded = EmbeddedStore(tmp_path / "store")
    ipfs = IpfsStore("http://127.0.0.1:5001", timeout=60.0, retries=2, pin=False)

    shorter, longer = within(ipfs, 2.5), within(ipfs, 600.0)

    assert within(embedded, 2.5) is embedded
    assert isinstance(shorter, IpfsStore) and isinstance(longer, IpfsStore)
    assert (shorter.timeout, longer.timeout) == (2.5, 60.0)
    assert (shorter.api, shorter.retries, shorter.pin) == ("http://127.0.0.1:5001", 2, False)
