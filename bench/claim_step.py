"""The off-chain part of a contributor's claim step at 100 and 1,000 contributors, without a chain.

A finalized round's record with ``n`` accepted updates is stored in an embedded store; then, per contributor,
what its node's step reads for that round: the record (fetched, checked against its digest, parsed) and its
reward proof, once to claim and once to report the outcome. :func:`uncached` makes the calls every step made
before :class:`~cotrain.roles.record_cache.RecordCache` (with today's tree builder); :func:`cached` the same
through a fresh cache (a node's first step after the round is finalized) and through a warm one (every later
step). Section 3 of BENCHMARKS.md times the whole step, transaction included, with ``python -m bench.scale``.

Run: ``python -m bench.claim_step [--n 100 1000] [--repeat 5]`` prints JSON (milliseconds, medians).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cotrain.protocol.rewards import allocate_rewards, allocation_proof
from cotrain.protocol.round_record import RoundRecord, format_micro, parse_record, record_bytes
from cotrain.protocol.task_spec import FileRef
from cotrain.roles.record_cache import MAX_RECORD_BYTES, RecordCache
from cotrain.storage.base import ContentStore, fetch_verified
from cotrain.storage.embedded import EmbeddedStore
from eth_utils import keccak, to_checksum_address

BUDGET = 10**18


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def build_record(n: int) -> RoundRecord:
    """A round record of ``n`` accepted updates sharing the budget by their samples."""
    accounts = [to_checksum_address(keccak(f"contributor-{i}".encode())[-20:]) for i in range(n)]
    rewards = {
        a.account.lower(): a.amount
        for a in allocate_rewards(BUDGET, [(a, 64 + i) for i, a in enumerate(accounts)])
    }
    updates = [
        {
            "contributor": account,
            "cid": f"bafkreiupdate{i}",
            "digest": _digest(f"update {i}"),
            "samples": 64 + i,
            "verdict": "accepted",
            "reason": "ok",
            "score": format_micro(500_000),
            "weight": format_micro(1_000_000 // n),
            "reward": rewards[account.lower()],
            "slash": 0,
        }
        for i, account in enumerate(accounts)
    ]
    return RoundRecord(
        task_id=1,
        round=0,
        base_model={"cid": "bafkreimodel0", "digest": _digest("model 0")},
        aggregation={"rule": "fedavg", "number_format": "q32.24", "params": {}},
        updates=updates,
        new_model={"cid": "bafkreimodel1", "digest": _digest("model 1")},
    )


def uncached(store: ContentStore, ref: FileRef, account: str) -> int:
    """The record read and reward proof twice over, as each step did without a cache; the leaf index."""
    index = -1
    for _ in range(2):
        record = parse_record(fetch_verified(store, ref.cid, ref.digest, max_size=MAX_RECORD_BYTES))
        index = allocation_proof(record.reward_allocations, account).index
    return index


def cached(ref: FileRef, account: str, cache: RecordCache) -> int:
    """The same through a record cache, as each step does now; the leaf index."""
    index = -1
    for _ in range(2):
        index = cache.load(ref).reward_proof(account).index
    return index


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return round(1000 * statistics.median(times), 2)


def measure(n: int, repeat: int, workdir: Path) -> dict[str, float]:
    """Milliseconds per contributor of each path for a record of ``n`` updates."""
    record = build_record(n)
    store = EmbeddedStore(workdir / f"store-{n}")
    data = record_bytes(record)
    ref = FileRef(cid=store.add(data), digest=hashlib.sha256(data).digest())
    account = record.updates[n // 2].contributor
    out = {
        "record_kb": round(len(data) / 1024, 1),
        "uncached_ms": _median_ms(lambda: uncached(store, ref, account), repeat),
    }
    out["cached_first_step_ms"] = _median_ms(lambda: cached(ref, account, RecordCache(store)), repeat)
    warm = RecordCache(store)
    warm.load(ref)
    out["cached_later_step_ms"] = _median_ms(lambda: cached(ref, account, warm), repeat)
    assert uncached(store, ref, account) == cached(ref, account, RecordCache(store))
    return out


def main() -> None:
    """Measure and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps({str(n): measure(n, args.repeat, Path(tmp)) for n in args.n}, indent=2))


if __name__ == "__main__":
    main()
