"""Section 4: content-store throughput, the embedded store against a js-ipfs daemon.

For each file size, seeded random bytes (a fresh file per repetition, so no block is deduplicated) are
added to the store and fetched back the way validators fetch updates (:func:`fetch_verified`: the bytes,
then their CID and sha256 recomputed and checked). Reported in MB/s (10^6 bytes per second) for the add, the
verified fetch and the two together, with the time :func:`compute_cid` alone takes on the same bytes: the
embedded store must compute the CID, so that is the floor of its add.

The daemon runs as the storage tests run it (``tests/node/storage/conftest.py``): a private, offline js-ipfs
repository on free ports; the store pins what it adds, as ``cotrain`` does.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cotrain.storage.base import ContentStore, fetch_verified
from cotrain.storage.embedded import EmbeddedStore
from cotrain.storage.ipfs import IpfsStore
from cotrain.storage.jsipfs import JsIpfsDaemon, free_port
from cotrain.storage.unixfs import compute_cid

from bench.common import WORK, progress, ratio, summary

MB = 10**6
SIZES_MB = (1, 10, 100)
QUICK_SIZES_MB = (1, 10)


def _repeats(size_mb: int, quick: bool) -> int:
    if quick:
        return 2
    return 3 if size_mb >= 100 else 5


def _file(size: int, seed: int) -> bytes:
    return random.Random(f"bench-storage-{seed}-{size}").randbytes(size)


def measure(store: ContentStore, size: int, repeats: int, advance: Callable[[], None]) -> dict[str, Any]:
    """Add and verified-fetch ``repeats`` fresh files of ``size`` bytes; MB/s statistics.

    Returns
    -------
    dict
        ``add_mb_s``, ``fetch_mb_s`` and ``add_fetch_mb_s`` summaries (median, min, max, n) and the
        ``cid_mb_s`` of :func:`compute_cid` alone.
    """
    add, fetch, both, cid_only = [], [], [], []
    for seed in range(repeats):
        data = _file(size, seed)
        digest = hashlib.sha256(data).digest()
        clock = time.perf_counter()
        compute_cid(data)
        cid_s = time.perf_counter() - clock
        clock = time.perf_counter()
        cid = store.add(data)
        add_s = time.perf_counter() - clock
        clock = time.perf_counter()
        fetched = fetch_verified(store, cid, digest, max_size=size)
        fetch_s = time.perf_counter() - clock
        if fetched != data:
            raise AssertionError(f"the {store.kind} store returned other bytes for {cid}")
        mb = size / MB
        add.append(mb / add_s)
        fetch.append(mb / fetch_s)
        both.append(mb / (add_s + fetch_s))
        cid_only.append(mb / cid_s)
        advance()
    return {
        "add_mb_s": summary(add, 1),
        "fetch_mb_s": summary(fetch, 1),
        "add_fetch_mb_s": summary(both, 1),
        "cid_mb_s": summary(cid_only, 1),
    }


def run(quick: bool) -> dict[str, Any]:
    """Measure both stores at every size; MB/s medians and the daemon-to-embedded ratios.

    Parameters
    ----------
    quick : bool
        1 and 10 MB, two files each (seconds); otherwise 1, 10 and 100 MB (five files, three at 100 MB).
    """
    sizes = QUICK_SIZES_MB if quick else SIZES_MB
    WORK.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="storage-", dir=WORK))
    table: dict[str, dict[str, Any]] = {"embedded": {}, "ipfs": {}}
    started = time.perf_counter()
    try:
        with progress() as bar:
            task = bar.add_task("storage", total=2 * sum(_repeats(s, quick) for s in sizes))
            with JsIpfsDaemon(
                scratch / "ipfs",
                api_port=free_port(),
                gateway_port=free_port(),
                swarm_port=free_port(),
            ) as daemon:
                stores: dict[str, ContentStore] = {
                    "embedded": EmbeddedStore(scratch / "embedded"),
                    "ipfs": IpfsStore(daemon.api_multiaddr, timeout=600, retries=1),
                }
                for size_mb in sizes:
                    for name, store in stores.items():
                        bar.update(task, description=f"storage: {name}, {size_mb} MB")
                        table[name][str(size_mb)] = measure(
                            store, size_mb * MB, _repeats(size_mb, quick), lambda: bar.advance(task)
                        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ratios = {
        size: {
            key: ratio(table["ipfs"][size][key]["median"], table["embedded"][size][key]["median"])
            for key in ("add_mb_s", "fetch_mb_s", "add_fetch_mb_s")
        }
        for size in table["embedded"]
    }
    return {
        "sizes_mb": list(sizes),
        "mb": "10^6 bytes",
        "stores": table,
        "ipfs_over_embedded": ratios,
        "seconds": round(time.perf_counter() - started, 1),
    }
