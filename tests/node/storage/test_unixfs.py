"""Tests for cotrain.storage.unixfs: the layout IPFS gives a file, and reading it back from untrusted blocks.

Equality with a real daemon's CIDs is in test_ipfs.py; the CIDs pinned here were printed by that daemon
(js-ipfs 0.66.1) so the encoding is checked even where no daemon runs.
"""

from __future__ import annotations

import hashlib
import tracemalloc

import pytest
from cotrain.errors import IntegrityError
from cotrain.storage.unixfs import (
    CHUNK_SIZE,
    DAG_PB,
    MAX_DEPTH,
    MAX_LINKS,
    RAW,
    _Child,
    _cid_bytes,
    _cid_str,
    _file_node,
    build_dag,
    canonical_cid,
    compute_cid,
    declared_size,
    iter_blocks,
    read_dag,
    same_cid,
    verify_block,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID

# Printed by `ipfs add --cid-version 1 --raw-leaves` (js-ipfs 0.66.1).
KNOWN_CIDS = {
    b"": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    b"hello world!": "bafkreidvbhs33ighmljlvr7zbv2ywwzcmp5adtf4kqvlly67cy56bdtmve",
    b"x" * 1000: "bafkreice7a2ujfffxib3uf4svdj6trjuyr5jdamyb7phup2ewbxpflt4p4",
    b"a" * 600_000: "bafybeiatdswo7vizqs3gpobeob6rph5tyeqpxs6bp5wmruk3kc5kcrsvba",
}


@pytest.mark.parametrize("data", list(KNOWN_CIDS), ids=lambda d: f"{len(d)}B")
def test_compute_cid_matches_recorded_daemon_cids(data: bytes) -> None:
    assert compute_cid(data) == KNOWN_CIDS[data]


def test_raw_leaf_cid_is_the_multiformats_encoding_of_its_sha256() -> None:
    data = b"one chunk"
    expected = CID("base32", 1, "raw", ("sha2-256", hashlib.sha256(data).digest()))

    assert compute_cid(data) == str(expected)


def test_single_chunk_is_its_own_root_and_one_more_byte_is_not() -> None:
    _, one = build_dag(b"\x01" * CHUNK_SIZE)
    root, two = build_dag(b"\x01" * (CHUNK_SIZE + 1))

    assert len(one) == 1 and next(iter(one)).startswith("bafkrei")
    assert len(two) == 3 and root.startswith("bafybei")


def test_batches_of_max_links_and_a_parent_even_for_a_batch_of_one() -> None:
    # 10 chunks, 3 links a node: leaves -> [3, 3, 3, 1] -> [3, 1] -> root, as go and js build it.
    blocks = list(iter_blocks(bytes(range(10)), chunk_size=1, max_links=3))
    links_per_node = [_links(block.data) for block in blocks if block.cid.startswith("bafybei")]

    assert len(blocks) == 10 + 4 + 2 + 1
    assert links_per_node == [3, 3, 3, 1, 3, 1, 2]


@pytest.mark.parametrize(("chunks", "root_links"), [(MAX_LINKS, MAX_LINKS), (MAX_LINKS + 1, 2)])
def test_root_links_at_the_174_link_boundary(chunks: int, root_links: int) -> None:
    blocks = list(iter_blocks(bytes(chunks), chunk_size=1))

    assert _links(blocks[-1].data) == root_links


def test_iter_blocks_yields_every_child_before_its_parent() -> None:
    seen: set[str] = set()
    for block in iter_blocks(bytes(range(50)), chunk_size=2, max_links=3):
        if block.cid.startswith("bafybei"):
            assert _link_cids(block.data) <= seen
        seen.add(block.cid)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200), chunk_size=st.integers(1, 16), max_links=st.integers(2, 5))
def test_read_dag_returns_what_was_built(data: bytes, chunk_size: int, max_links: int) -> None:
    blocks = {
        block.cid: block.data for block in iter_blocks(data, chunk_size=chunk_size, max_links=max_links)
    }
    root = list(blocks)[-1]

    assert read_dag(root, blocks.__getitem__) == data
    assert declared_size(root, blocks[root]) == len(data)
    for cid, block in blocks.items():
        verify_block(cid, block)


def test_read_dag_refuses_a_corrupt_leaf() -> None:
    root, blocks = build_dag(bytes(range(256)) * 2048)  # two chunks
    leaf = next(cid for cid in blocks if cid.startswith("bafkrei"))
    blocks[leaf] = b"\xff" + blocks[leaf][1:]

    with pytest.raises(IntegrityError, match="does not hash to its CID"):
        read_dag(root, blocks.__getitem__)


def test_read_dag_refuses_a_block_served_under_another_cid() -> None:
    root, blocks = build_dag(b"abcdef" * 100_000)
    leaves = [cid for cid in blocks if cid.startswith("bafkrei")]
    blocks[leaves[0]] = blocks[leaves[1]]

    with pytest.raises(IntegrityError):
        read_dag(root, blocks.__getitem__)


def test_read_dag_refuses_a_node_whose_sizes_lie() -> None:
    leaf = b"12345"
    lying = _file_node([_Child(_cid_bytes(RAW, leaf), len(leaf), 4)])  # says 4 bytes, leaf holds 5
    blocks = {_cid_str(RAW, leaf): leaf, _cid_str(DAG_PB, lying): lying}

    with pytest.raises(IntegrityError, match="parent says 4"):
        read_dag(_cid_str(DAG_PB, lying), blocks.__getitem__)


def test_read_dag_refuses_a_dag_deeper_than_any_real_file() -> None:
    leaf = b"deep"
    blocks = {_cid_str(RAW, leaf): leaf}
    child = _Child(_cid_bytes(RAW, leaf), len(leaf), len(leaf))
    for _ in range(MAX_DEPTH + 1):
        node = _file_node([child])
        blocks[_cid_str(DAG_PB, node)] = node
        child = _Child(_cid_bytes(DAG_PB, node), child.tsize + len(node), child.size)

    with pytest.raises(IntegrityError, match="deeper than"):
        read_dag(_cid_str(DAG_PB, node), blocks.__getitem__)


def test_read_dag_refuses_garbage_under_a_matching_cid() -> None:
    garbage = b"\x12\x05not a link"
    with pytest.raises(IntegrityError, match=r"dag-pb|protobuf|varint|link"):
        read_dag(_cid_str(DAG_PB, garbage), {_cid_str(DAG_PB, garbage): garbage}.__getitem__)


def test_canonical_cid_turns_cidv0_into_base32_cidv1() -> None:
    v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"

    assert canonical_cid(v0) == "bafybeie5nqv6kd3qnfjupgvz34woh3oksc3iau6abmyajn7qvtf6d2ho34"
    assert same_cid(v0, "zdj7Wg2Qkk4mYgAkVU1kppfQ2sMGz5zPwERVpeWmxCQLDxVoC")  # CIDv1 in base58btc
    assert not same_cid(v0, compute_cid(b"x"))


@pytest.mark.parametrize(
    "cid",
    [
        "",
        "not a cid",
        "bafkreidvbhs33ighmljlvr7zbv2ywwzcmp5adtf4kqvlly67cy56bdtm",  # truncated
        str(CID("base32", 1, "raw", ("sha2-512", hashlib.sha512(b"x").digest()))),
        str(CID("base32", 1, "dag-cbor", ("sha2-256", hashlib.sha256(b"x").digest()))),
    ],
)
def test_canonical_cid_refuses_what_is_not_a_sha256_file_cid(cid: str) -> None:
    with pytest.raises(IntegrityError):
        canonical_cid(cid)


def test_compute_cid_streams_a_large_file() -> None:
    data = bytes(20 * CHUNK_SIZE * 4)  # 20 MiB
    tracemalloc.start()
    try:
        compute_cid(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 4 * CHUNK_SIZE


def test_read_dag_holds_at_most_twice_the_file() -> None:
    data = bytes(range(256)) * (20 * 4096)  # 20 MiB
    root, blocks = build_dag(data)
    tracemalloc.start()
    try:
        out = read_dag(root, blocks.__getitem__)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert out == data
    assert peak < 2.1 * len(data)


def _pb_links(node: bytes) -> list[bytes]:
    """The link messages of a dag-pb node built here (short links: one-byte lengths)."""
    links, pos = [], 0
    while node[pos] == 0x12:
        length = node[pos + 1]
        links.append(node[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return links


def _links(node: bytes) -> int:
    return len(_pb_links(node))


def _link_cids(node: bytes) -> set[str]:
    # Each link starts with field 1: 0x0a, length 36, then the binary CIDv1.
    return {_cid_text(link[2:38]) for link in _pb_links(node)}


def _cid_text(raw: bytes) -> str:
    return str(CID.decode(raw).set(base="base32"))
