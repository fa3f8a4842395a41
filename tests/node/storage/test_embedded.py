"""Tests for cotrain.storage.embedded: a directory of blocks that gives the CIDs IPFS gives."""

from __future__ import annotations

import multiprocessing
import os
import stat
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from cotrain.errors import IntegrityError, StorageError
from cotrain.storage.base import ContentNotFoundError, ContentStore, ContentTooLargeError
from cotrain.storage.embedded import EmbeddedStore
from cotrain.storage.unixfs import CHUNK_SIZE, build_dag, compute_cid, verify_block
from multiformats import CID

SIZES = [0, 12, CHUNK_SIZE, CHUNK_SIZE + 1, 3_000_000]


@pytest.mark.parametrize("size", SIZES)
def test_add_get_round_trip_with_the_ipfs_cid(
    embedded_store: EmbeddedStore, make_file: Callable[..., bytes], size: int
) -> None:
    data = make_file(size)

    cid = embedded_store.add(data)

    assert cid == compute_cid(data)
    assert embedded_store.has(cid)
    assert embedded_store.get(cid, max_size=size) == data


def test_stores_exactly_the_blocks_of_the_dag(
    embedded_store: EmbeddedStore, make_file: Callable[..., bytes]
) -> None:
    root, blocks = build_dag(make_file(3_000_000))
    embedded_store.add(make_file(3_000_000))

    stored = {path.name: path.read_bytes() for path in embedded_store.root.rglob("*") if path.is_file()}

    assert stored == blocks
    assert root in stored


def test_is_a_content_store(embedded_store: EmbeddedStore) -> None:
    assert isinstance(embedded_store, ContentStore)
    assert embedded_store.kind == "embedded"


def test_adding_twice_is_harmless(embedded_store: EmbeddedStore) -> None:
    first = embedded_store.add(b"same bytes")
    second = embedded_store.add(b"same bytes")

    assert first == second
    assert embedded_store.get(first, max_size=100) == b"same bytes"


def test_accepts_any_spelling_of_a_cid(
    embedded_store: EmbeddedStore, make_file: Callable[..., bytes]
) -> None:
    data = make_file(CHUNK_SIZE + 1)
    cid = embedded_store.add(data)
    base58 = str(CID.decode(cid).set(base="base58btc"))

    assert embedded_store.has(base58)
    assert embedded_store.get(base58, max_size=len(data)) == data


def test_unknown_cid_is_not_found(embedded_store: EmbeddedStore) -> None:
    missing = compute_cid(b"never added")

    assert not embedded_store.has(missing)
    with pytest.raises(ContentNotFoundError, match="not in the content store"):
        embedded_store.get(missing, max_size=100)


def test_invalid_cid_is_refused(embedded_store: EmbeddedStore) -> None:
    with pytest.raises(IntegrityError, match="not a valid CID"):
        embedded_store.get("../../etc/passwd", max_size=100)


def test_refuses_a_file_over_max_size_reading_only_its_root(
    embedded_store: EmbeddedStore, make_file: Callable[..., bytes]
) -> None:
    data = make_file(3_000_000)
    cid = embedded_store.add(data)
    root, blocks = build_dag(data)
    for leaf in blocks.keys() - {root}:
        embedded_store.block_path(leaf).unlink()

    with pytest.raises(ContentTooLargeError, match="3000000 bytes"):
        embedded_store.get(cid, max_size=len(data) - 1)


def test_a_corrupt_block_on_disk_is_refused(
    embedded_store: EmbeddedStore, make_file: Callable[..., bytes]
) -> None:
    data = make_file(3_000_000)
    cid = embedded_store.add(data)
    root, blocks = build_dag(data)
    leaf = sorted(blocks.keys() - {root})[0]
    path = embedded_store.block_path(leaf)
    corrupt = bytearray(path.read_bytes())
    corrupt[1000] ^= 0x01
    path.write_bytes(corrupt)

    with pytest.raises(IntegrityError, match=f"block {leaf} does not hash to its CID"):
        embedded_store.get(cid, max_size=len(data))


def test_a_missing_block_is_reported(embedded_store: EmbeddedStore, make_file: Callable[..., bytes]) -> None:
    data = make_file(CHUNK_SIZE * 2)
    cid = embedded_store.add(data)
    root, blocks = build_dag(data)
    embedded_store.block_path(sorted(blocks.keys() - {root})[0]).unlink()

    with pytest.raises(ContentNotFoundError):
        embedded_store.get(cid, max_size=len(data))


def test_a_crash_mid_add_leaves_no_torn_block_and_no_root(
    embedded_store: EmbeddedStore, make_file: Callable[..., bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = make_file(CHUNK_SIZE * 5)
    cid = compute_cid(data)
    real_replace = os.replace
    calls = []

    def replace_then_crash(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_crash)
    with pytest.raises(StorageError, match="No space left"):
        embedded_store.add(data)
    monkeypatch.undo()

    files = [path for path in embedded_store.root.rglob("*") if path.is_file()]
    assert len(files) == 2  # the two blocks renamed before the failure; the third's temp file is gone
    for path in files:
        verify_block(path.name, path.read_bytes())
    assert not embedded_store.has(cid)
    assert embedded_store.add(data) == cid
    assert embedded_store.get(cid, max_size=len(data)) == data


def test_blocks_are_readable_by_other_processes_of_the_user(embedded_store: EmbeddedStore) -> None:
    cid = embedded_store.add(b"shared")

    assert stat.S_IMODE(embedded_store.block_path(cid).stat().st_mode) == 0o644


def test_unwritable_directory_gives_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")

    with pytest.raises(StorageError, match="cannot create the content store"):
        EmbeddedStore(tmp_path / "file" / "store")


def test_several_processes_share_one_directory(tmp_path: Path, make_file: Callable[..., bytes]) -> None:
    root = tmp_path / "shared"
    shared = make_file(3_000_000, seed=1)
    jobs = [(root, shared, make_file(CHUNK_SIZE * 3 + i, seed=i)) for i in range(4)]

    with multiprocessing.get_context("spawn").Pool(4) as pool:
        results = pool.starmap(_add_two_files, jobs)

    store = EmbeddedStore(root)
    assert {shared_cid for shared_cid, _ in results} == {compute_cid(shared)}
    assert store.get(compute_cid(shared), max_size=len(shared)) == shared
    for (_, _, own), (_, own_cid) in zip(jobs, results, strict=True):
        assert store.get(own_cid, max_size=len(own)) == own
    assert not [path for path in root.rglob(".tmp-*")]


def _add_two_files(root: Path, shared: bytes, own: bytes) -> tuple[str, str]:
    store = EmbeddedStore(root)
    return store.add(shared), store.add(own)


def test_add_streams_and_get_holds_at_most_twice_the_file(embedded_store: EmbeddedStore) -> None:
    data = bytes(range(256)) * (20 * 4096)  # 20 MiB
    tracemalloc.start()
    try:
        cid = embedded_store.add(data)
        _, add_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = embedded_store.get(cid, max_size=len(data))
        _, get_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert out == data
    assert add_peak < 4 * CHUNK_SIZE
    assert get_peak < 2.1 * len(data)
