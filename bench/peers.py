"""Section 7: fetching between peers, one js-ipfs daemon per participant (``PeerGroup``) on loopback.

For each size, seeded random files (a fresh one per repetition, so no block is cached anywhere) are added
to the author's node; then, interleaved in one loop, the verified fetch (:func:`fetch_verified`: bytes,
CID and sha256 checked) through the author's own node and through another participant's node, which asks
the author's by bitswap and pins what it got, as validators do. Seconds per fetch and MB/s, medians with
their ranges, and the other node's time over the same node's.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from cotrain.storage.base import fetch_verified
from cotrain.storage.ipfs import IpfsStore
from cotrain.storage.jsipfs import PeerGroup

from bench.common import WORK, progress, ratio, summary

MB = 10**6
SIZES = {"1 KB": 1_000, "1 MB": MB, "10 MB": 10 * MB}


def _file(size: int, seed: int) -> bytes:
    return random.Random(f"bench-peers-{seed}-{size}").randbytes(size)


def run(quick: bool) -> dict[str, Any]:
    """Fetch times through the author's node and through another peer's, at each of :data:`SIZES`.

    Parameters
    ----------
    quick : bool
        Three files per size instead of nine.
    """
    repeats = 3 if quick else 9
    WORK.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="peers-", dir=WORK))
    started = time.perf_counter()
    table: dict[str, dict[str, Any]] = {}
    try:
        clock = time.perf_counter()
        with PeerGroup(scratch, ["author", "reader"]) as peers:
            startup_s = time.perf_counter() - clock
            author, reader = (
                IpfsStore(peers[name].api_multiaddr, timeout=600, retries=1) for name in ("author", "reader")
            )
            with progress() as bar:
                task = bar.add_task("peers", total=len(SIZES) * repeats)
                for label, size in SIZES.items():
                    bar.update(task, description=f"peers: {label}")
                    same, other = [], []
                    for seed in range(repeats):
                        data = _file(size, seed)
                        digest = hashlib.sha256(data).digest()
                        cid = author.add(data)
                        for store, times in ((author, same), (reader, other)):
                            clock = time.perf_counter()
                            if fetch_verified(store, cid, digest, max_size=size) != data:
                                raise AssertionError(f"a peer returned other bytes for {cid}")
                            times.append(time.perf_counter() - clock)
                        bar.advance(task)
                    table[label] = {
                        "bytes": size,
                        "same_node_s": summary(same, 4),
                        "other_node_s": summary(other, 4),
                        "other_node_mb_s": summary([size / MB / s for s in other], 1),
                        "other_over_same": ratio(summary(other, 6)["median"], summary(same, 6)["median"], 2),
                    }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "repeats": repeats,
        "mb": "10^6 bytes",
        "group_startup_s": round(startup_s, 1),
        "sizes": table,
        "seconds": round(time.perf_counter() - started, 1),
    }
