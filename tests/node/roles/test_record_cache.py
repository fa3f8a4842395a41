"""Tests for cotrain.roles.record_cache: records are read once per digest, only after their checks, and give
what reading them afresh gives."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from cotrain.errors import IntegrityError
from cotrain.protocol.rewards import allocate_rewards, allocation_proof
from cotrain.protocol.round_record import RoundRecord, format_micro, parse_record, record_bytes
from cotrain.protocol.task_spec import FileRef
from cotrain.roles.record_cache import RecordCache
from cotrain.storage.embedded import EmbeddedStore
from eth_utils import keccak, to_checksum_address

ETHER = 10**18
SLASH = 5 * 10**16


class CountingStore:
    """An embedded store that counts the files read from it."""

    def __init__(self, root: Path) -> None:
        self.inner = EmbeddedStore(root)
        self.kind = self.inner.kind
        self.reads = 0

    def add(self, data: bytes) -> str:
        return self.inner.add(data)

    def get(self, cid: str, *, max_size: int) -> bytes:
        self.reads += 1
        return self.inner.get(cid, max_size=max_size)

    def has(self, cid: str) -> bool:
        return self.inner.has(cid)


def _account(n: int) -> str:
    return to_checksum_address(keccak(f"contributor-{n}".encode())[-20:])


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _record(round_: int, accepted: int, rejected: int = 1) -> RoundRecord:
    """``accepted`` contributors sharing one ether by their samples, then ``rejected`` slashed ones."""
    paid = [_account(i) for i in range(accepted)]
    rewards = {
        a.account.lower(): a.amount for a in allocate_rewards(ETHER, [(a, i + 1) for i, a in enumerate(paid)])
    }
    updates = [
        {
            "contributor": account,
            "cid": f"bafkreiupdate{round_}x{i}",
            "digest": _digest(f"update {round_} {i}"),
            "samples": i + 1,
            "verdict": "accepted",
            "reason": "ok",
            "score": format_micro(500_000),
            "weight": format_micro(1_000_000 // accepted),
            "reward": rewards[account.lower()],
            "slash": 0,
        }
        for i, account in enumerate(paid)
    ]
    updates += [
        {
            "contributor": _account(accepted + i),
            "cid": f"bafkreirejected{round_}x{i}",
            "digest": _digest(f"rejected {round_} {i}"),
            "samples": 10,
            "verdict": "rejected",
            "reason": "non_finite",
            "score": "0.000000",
            "weight": "0.000000",
            "reward": 0,
            "slash": SLASH,
        }
        for i in range(rejected)
    ]
    return RoundRecord(
        task_id=1,
        round=round_,
        base_model={"cid": f"bafkreimodel{round_}", "digest": _digest(f"model {round_}")},
        aggregation={"rule": "fedavg", "number_format": "q32.24", "params": {}},
        updates=updates,
        new_model={"cid": f"bafkreimodel{round_ + 1}", "digest": _digest(f"model {round_ + 1}")},
    )


def _stored(store: CountingStore, data: bytes) -> FileRef:
    return FileRef(cid=store.add(data), digest=hashlib.sha256(data).digest())


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "store")


def test_a_record_is_read_once_per_digest(store: CountingStore) -> None:
    # Prepare
    ref = _stored(store, record_bytes(_record(0, accepted=5)))
    cache = RecordCache(store)

    # Execute
    first = cache.load(ref)
    again = cache.load(ref)

    # Assert
    assert again is first
    assert store.reads == 1
    assert first.reward_tree is again.reward_tree, "the rewards tree is built once, with the record"


def test_different_records_are_never_served_from_each_others_entry(store: CountingStore) -> None:
    # Prepare: two rounds' records with different leaves (and so different digests and roots).
    data = [record_bytes(_record(0, accepted=4)), record_bytes(_record(1, accepted=6, rejected=2))]
    refs = [_stored(store, d) for d in data]
    cache = RecordCache(store)

    # Execute
    loaded = [cache.load(ref) for ref in refs]

    # Assert
    assert [record_bytes(r) for r in loaded] == data
    assert loaded[0].rewards_root != loaded[1].rewards_root
    assert (len(cache), store.reads) == (2, 2)
    assert cache.load(refs[0]) is loaded[0] and cache.load(refs[1]) is loaded[1]


def test_cached_records_and_proofs_equal_the_uncached_path(store: CountingStore) -> None:
    # Prepare
    data = record_bytes(_record(3, accepted=9, rejected=3))
    record = RecordCache(store).load(_stored(store, data))

    # Execute: the same record read afresh, its proofs from freshly built trees.
    fresh = parse_record(data)

    # Assert
    assert record == fresh
    for allocation in fresh.reward_allocations:
        assert record.reward_proof(allocation.account) == allocation_proof(
            fresh.reward_allocations, allocation.account
        )
    for allocation in fresh.slash_allocations:
        assert record.slash_proof(allocation.account) == allocation_proof(
            fresh.slash_allocations, allocation.account
        )
    assert (record.rewards_root, record.slash_root) == (fresh.rewards_root, fresh.slash_root)
    with pytest.raises(ValueError, match="has no allocation"):
        record.reward_proof(fresh.slash_allocations[0].account)


def test_a_file_that_fails_its_digest_is_not_cached(store: CountingStore) -> None:
    # Prepare: a reference that pairs one record's CID with another record's digest.
    good, other = record_bytes(_record(0, accepted=3)), record_bytes(_record(1, accepted=3))
    good_ref, other_ref = _stored(store, good), _stored(store, other)
    cache = RecordCache(store)

    # Execute / Assert
    for _ in range(2):
        with pytest.raises(IntegrityError):
            cache.load(FileRef(cid=good_ref.cid, digest=other_ref.digest))
    assert len(cache) == 0
    assert record_bytes(cache.load(other_ref)) == other, "the digest's entry holds its own record"


def test_a_record_that_fails_parsing_is_not_cached(store: CountingStore) -> None:
    # Prepare: the record's JSON with whitespace: its own digest matches, the canonical form does not.
    loose = json.dumps(json.loads(record_bytes(_record(0, accepted=3))), indent=1).encode()
    ref = _stored(store, loose)
    cache = RecordCache(store)

    # Execute / Assert
    for _ in range(2):
        with pytest.raises(IntegrityError, match="canonical"):
            cache.load(ref)
    assert (len(cache), store.reads) == (0, 2)
