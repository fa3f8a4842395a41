"""Section 3 of BENCHMARKS.md: one round with 1,000 contributors through the real contracts, and aggregation.

**The round.** An anvil chain (automine, its own port), the market, an embedded store; the task owner posts a
digits task (logistic regression, 650 parameters) with ``maxContributors = n``; ``n`` simulated contributors,
each a real :class:`~cotrain.roles.contributor.ContributorNode` with its own key, journal and a bootstrap
shard of 64 training examples, join, train + store + commit, reveal; two
:class:`~cotrain.roles.validator.ValidatorNode` s judge the round (event scan, fetch, checks, screening,
aggregation, evaluation, rewards) and propose; after the challenge window the round is finalized and every
contributor claims. Each phase is timed as the wall time of all contributors acting one after the other on
this machine (on a real network they act in parallel, so the per-contributor latency is reported too). The
simulated contributors share one :class:`~cotrain.roles.task_view.TaskView` (on one machine, a thousand
identical scans of the same events would measure nothing but this machine). The first validator's memory
peak is its process RSS above the level before its step, sampled every 2 ms.

**Aggregation.** Throughput (MB of float32 updates per second) of every registered rule
(:mod:`cotrain.learning.rules`, exact integer arithmetic on q32.24 vectors) over the round's real updates and
over synthetic 1M-parameter updates; then 100 updates of a 10M-parameter model: the streaming FedAvg sum
(O(model)) against the rules that hold every update (O(n x model)), peak memory relative to one model's
float32 size.

Run alone: ``python -m bench.scale [--quick]`` prints the JSON the runner writes to bench/results/scale.json.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import json
import math
import signal
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from cotrain.chain.anvil import Anvil
from cotrain.chain.client import ChainClient
from cotrain.chain.keys import Signer
from cotrain.chain.market import Phase, RoundStatus, deploy_market
from cotrain.consensus.exact import IntVector, WeightedSum
from cotrain.consensus.fixed_point import quantize
from cotrain.learning.data import ArrayDataset
from cotrain.learning.rules import get_rule, rule_names
from cotrain.learning.tensor_files import decode_tensors
from cotrain.protocol.rewards import reward_tree
from cotrain.protocol.round_judge import flatten_arrays
from cotrain.protocol.screening import RoundPipeline
from cotrain.protocol.task_model import builtin_split
from cotrain.protocol.task_spec import AggregationSpec, TaskSpec, load_spec, validate_spec
from cotrain.roles.contributor import ContributorNode
from cotrain.roles.journal import Journal
from cotrain.roles.owner import post_task
from cotrain.roles.record_cache import RecordCache
from cotrain.roles.task_view import TaskView
from cotrain.roles.timings import KINDS, Timings
from cotrain.roles.validator import ValidatorNode
from cotrain.storage.base import ContentStore
from cotrain.storage.embedded import EmbeddedStore
from eth_utils import keccak

CONTRIBUTORS = 1000
QUICK_CONTRIBUTORS = 100
PORT = 8652  # this benchmark's own anvil; bench.gas uses 8651
CLAIM_SAMPLE = 100  # contributors whose whole claim step runs (see run_round)
SHARD = 64  # training examples per simulated contributor, drawn with replacement
DAY = 86_400
CHALLENGE = 3_600
MB = 1e6
SCREENED_FEDAVG = "fedavg, screened (RoundPipeline)"


# ---------------------------------------------------------------- measuring


class TimedStore:
    """A content store that adds up the seconds and bytes of its ``get`` and ``add`` calls."""

    def __init__(self, inner: ContentStore) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.seconds = {"get": 0.0, "add": 0.0}
        self.bytes = {"get": 0, "add": 0}

    def add(self, data: bytes) -> str:
        start = time.perf_counter()
        cid = self.inner.add(data)
        self.seconds["add"] += time.perf_counter() - start
        self.bytes["add"] += len(data)
        return cid

    def get(self, cid: str, *, max_size: int) -> bytes:
        start = time.perf_counter()
        data = self.inner.get(cid, max_size=max_size)
        self.seconds["get"] += time.perf_counter() - start
        self.bytes["get"] += len(data)
        return data

    def has(self, cid: str) -> bool:
        return self.inner.has(cid)

    def reset(self) -> None:
        """Start counting from zero."""
        self.seconds = {"get": 0.0, "add": 0.0}
        self.bytes = {"get": 0, "add": 0}


class PeakMemory:
    """Memory while a block runs, above the level before it: the process RSS sampled every 2 ms, and, with
    ``trace=True``, the exact peak of numpy and Python allocations (tracemalloc; torch's are not seen)."""

    def __init__(self, *, trace: bool = False, interval: float = 0.002) -> None:
        self.trace = trace
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self.traced = 0
        self._traced_start = 0
        self._started_tracing = False
        self._stop = threading.Event()
        self._process = psutil.Process()

    @property
    def rss_above_baseline(self) -> int:
        """Peak RSS bytes above the RSS before the block."""
        return max(self.peak - self.baseline, 0)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        gc.collect()
        _release_free_memory()
        if self.trace:
            self._started_tracing = not tracemalloc.is_tracing()
            if self._started_tracing:
                tracemalloc.start()
            tracemalloc.reset_peak()
            self._traced_start = tracemalloc.get_traced_memory()[0]
        self.baseline = self.peak = self._process.memory_info().rss
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
        if self.trace:
            self.traced = tracemalloc.get_traced_memory()[1] - self._traced_start
            if self._started_tracing:
                tracemalloc.stop()


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so the RSS baseline holds only live memory."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextmanager
def stopwatch(into: dict[str, float], key: str) -> Iterator[None]:
    """Add the block's wall time in seconds to ``into[key]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.perf_counter() - start


def _seconds(timings: Timings, kind: str) -> float:
    return sum(entry["seconds"] for entry in timings.entries if entry["kind"] == kind)


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(1000 * statistics.median(ordered), 2),
        "p95_ms": round(1000 * ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)], 2),
    }


# ---------------------------------------------------------------- the round


def scale_spec(n: int, arbiter: str, validators: list[str]) -> TaskSpec:
    """The built-in digits task with a logistic model, one round, ``n`` contributors and long phases."""
    path = Path(str(files("cotrain.protocol") / "specs" / "digits.yaml"))
    data = load_spec(path).model_dump(mode="json")
    data["name"] = f"scale-benchmark-{n}"
    data["model"] = {"name": "logistic", "params": {}}
    data["data"]["input_shape"] = [64]
    data["training"].update(local_epochs=1, batch_size=32, lr=0.1, optimizer="sgd")
    data["rounds"] = 1
    phases = {"join": DAY, "commit": DAY, "reveal": DAY, "validation": CHALLENGE, "challenge": CHALLENGE}
    data["phases"] = phases
    data["contributors"].update(min=2, max=n)
    data["validators"].update(addresses=validators, quorum=2)
    data["arbiter"] = arbiter
    return validate_spec(data, source="scale benchmark spec")


def _shard(train: ArrayDataset, i: int) -> ArrayDataset:
    rng = np.random.default_rng(i)
    return train.subset(rng.integers(0, len(train), size=SHARD))


def _phase(
    nodes: list[ContributorNode], before: Callable[[ContributorNode], None] | None = None
) -> dict[str, Any]:
    """Step every contributor once (after ``before(node)`` when given, untimed); the wall time,
    per-contributor latency and the node-reported split."""
    timings = Timings()
    latencies = []
    seconds = 0.0
    for node in nodes:
        node.timings = timings
        if before is not None:
            before(node)
        began = time.perf_counter()
        node.step()
        latencies.append(time.perf_counter() - began)
        seconds += latencies[-1]
    split = {
        kind: round(sum(e["seconds"] for e in timings.entries if e["kind"] == kind), 3) for kind in KINDS
    }
    return {"seconds": round(seconds, 3), "per_contributor": _ms(latencies), "node_timings_s": split}


def run_round(n: int, workdir: Path) -> tuple[dict[str, Any], list[np.ndarray]]:
    """One round with ``n`` contributors; returns the measurements and the accepted updates' flat vectors."""
    out: dict[str, Any] = {"contributors": n}
    with Anvil(PORT) as anvil:
        setup: dict[str, float] = {}
        with stopwatch(setup, "deploy_and_post_s"):
            client = ChainClient(anvil.rpc_url, anvil.signer(0), poll=0.01)
            market = deploy_market(client)
            store = TimedStore(EmbeddedStore(workdir / "store"))
            validator_signers = [anvil.signer(i) for i in (1, 2, 3)]
            # Account 0 posts, 1-3 validate, 4 arbitrates (never the owner or a validator).
            spec = scale_spec(n, anvil.addresses[4], [s.address for s in validator_signers])
            task_id, spec = post_task(market, store, spec)
            train, held_out = builtin_split(spec)

            def validator(i: int) -> ValidatorNode:
                return ValidatorNode(market.with_account(validator_signers[i]), store, task_id, held_out)

            for i in range(3):  # each validator's first step bonds
                validator(i).step()
        with stopwatch(setup, "fund_contributors_s"):
            signers = []
            for i in range(n):
                signer = Signer.from_key(keccak(text=f"cotrain scale contributor {i}"), source=f"bench {i}")
                anvil.rpc("anvil_setBalance", [signer.address, hex(10**19)])
                signers.append(signer)
            shared_view = TaskView(market, store, task_id)
            nodes = []
            for i, signer in enumerate(signers):
                node = ContributorNode(
                    market.with_account(signer),
                    store,
                    task_id,
                    Journal(workdir / "journals" / str(i)),
                    data=_shard(train, i),
                )
                node.view = shared_view
                nodes.append(node)
        out["setup"] = {k: round(v, 3) for k, v in setup.items()}

        phases: dict[str, Any] = {}
        phases["join"] = _phase(nodes)
        assert market.phase(task_id) == Phase.COMMIT, "the last join opens the round"
        store.reset()
        phases["train_store_commit"] = _phase(nodes)
        phases["train_store_commit"]["store_add_s"] = round(store.seconds["add"], 3)
        assert market.phase(task_id) == Phase.REVEAL, "the last commit ends the commit phase"
        phases["reveal"] = _phase(nodes)
        assert market.phase(task_id) == Phase.VALIDATE, "the last reveal ends the reveal phase"

        # Validation: the first validator's step from a fresh view, with its parts timed and its memory.
        first = validator(0)
        validation: dict[str, Any] = {}
        store.reset()
        with stopwatch(validation, "event_scan_s"):
            first.view.refresh()
        with PeakMemory() as memory, stopwatch(validation, "step_s"):
            first.step()
        parts = {
            kind: sum(e["seconds"] for e in first.timings.entries if e["kind"] == kind) for kind in KINDS
        }
        validation["fetch_s"] = store.seconds["get"]
        validation["fetched_mb"] = store.bytes["get"] / MB
        validation["judge_without_fetch_s"] = parts["validation"] - store.seconds["get"]
        validation["store_model_and_record_s"] = parts["storage"]
        validation["propose_tx_s"] = parts["chain"]
        validation["total_s"] = validation["event_scan_s"] + validation["step_s"]
        validation["rss_peak_above_baseline_mb"] = memory.rss_above_baseline / MB
        validation["rss_before_mb"] = memory.baseline / MB
        # The second validator does the same work from its own view, under tracemalloc (slower, exact).
        second = validator(1)
        with PeakMemory(trace=True) as traced, stopwatch(validation, "second_validator_traced_s"):
            second.step()
        validation["traced_peak_mb"] = traced.traced / MB
        validation["second_validator_rss_peak_above_baseline_mb"] = traced.rss_above_baseline / MB
        assert market.get_round(task_id, 0).status == RoundStatus.ACCEPTED, "two equal proposals accept"
        outcome = first.outcomes[0]
        record = outcome.record
        verdicts: dict[str, int] = {}
        for entry in record.updates:
            reason = str(getattr(entry.reason, "value", entry.reason))
            verdicts[reason] = verdicts.get(reason, 0) + 1
        validation["verdicts"] = verdicts
        validation["accuracy"] = outcome.advisory_metrics.accuracy  # advisory, this machine's
        validation["aggregation"] = spec.aggregation.model_dump(mode="json")
        phases["validation"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in validation.items()}

        anvil.set_next_block_timestamp(market.get_round(task_id, 0).accepted_at + CHALLENGE + 1)
        anvil.mine()
        finalize: dict[str, float] = {}
        with stopwatch(finalize, "seconds"):
            first.step()
        assert market.get_round(task_id, 0).status == RoundStatus.FINALIZED
        phases["finalize"] = {"seconds": round(finalize["seconds"], 3)}
        # Each node reads the record once (parse_record builds its Merkle trees, and its proof comes from
        # them): O(n) per claim, so past CLAIM_SAMPLE nodes the rest claim with proofs from one tree, to keep
        # the run short; the per-contributor latency comes from the sampled nodes, each with an empty record
        # cache as its own view would have (the simulated nodes share one view).
        sampled = nodes[:CLAIM_SAMPLE]

        def forget_records(node: ContributorNode) -> None:
            node.view.records = RecordCache(store)

        phases["claims"] = _phase(sampled, forget_records)
        phases["claims"]["sampled_nodes"] = len(sampled)
        rest = nodes[CLAIM_SAMPLE:]
        if rest:
            allocations = record.reward_allocations
            tree = reward_tree(allocations)
            index = {a.account.lower(): i for i, a in enumerate(allocations)}
            latencies = []
            for node in rest:
                i = index[node.address.lower()]
                began = time.perf_counter()
                node.market.claim(task_id, 0, i, allocations[i].account, allocations[i].amount, tree.proof(i))
                latencies.append(time.perf_counter() - began)
            phases["claims"]["direct_claims"] = {"count": len(rest), "per_claim": _ms(latencies)}
            phases["claims"]["estimated_all_nodes_s"] = round(
                phases["claims"]["seconds"] * n / len(sampled), 1
            )
        phases["claims"]["claimed"] = sum(market.is_claimed(task_id, 0, i) for i in range(n))
        out["phases"] = phases

        vectors = []
        layout = shared_view.model_layout
        for update in shared_view.revealed(0):
            data = store.get(update.cid, max_size=spec.limits.max_update_bytes)
            tensors, _ = decode_tensors(data, expected=layout, max_bytes=spec.limits.max_update_bytes)
            vectors.append(_flat(tensors))
    return out, vectors


# ---------------------------------------------------------------- aggregation


def rule_calls(n: int) -> dict[str, Callable[[list[IntVector]], Any]]:
    """Every registered aggregation rule with a default spec's parameters, FedAvg summed one by one, and
    FedAvg behind the default screening (the validator's whole pipeline after the integrity checks)."""
    samples = [64] * n

    def streaming(vectors: list[IntVector]) -> Any:
        total = WeightedSum()
        for vector in vectors:
            total.add(vector, 64)
        return total.mean()

    def screened(vectors: list[IntVector]) -> Any:
        pipeline = RoundPipeline(AggregationSpec(rule="fedavg"))
        for i, vector in enumerate(vectors):
            pipeline.add(f"0x{i:040x}", vector, 64, i)
        return pipeline.finish()

    calls: dict[str, Callable[[list[IntVector]], Any]] = {"fedavg (WeightedSum, one by one)": streaming}
    for name in rule_names():
        rule = get_rule(name)
        calls[name] = functools.partial(rule.run, samples=samples, params=rule.params())
    calls[SCREENED_FEDAVG] = screened
    return calls


def throughput(vectors: list[IntVector], label: str) -> dict[str, Any]:
    """MB of float32 updates per second for every rule over ``vectors`` (quantized, as validators hold
    them)."""
    n, size = len(vectors), int(vectors[0].size)
    payload = n * size * 4
    result: dict[str, Any] = {"updates": n, "parameters": size, "float32_mb": round(payload / MB, 3)}
    rules = {}
    for name, call in rule_calls(n).items():
        start = time.perf_counter()
        call(vectors)
        seconds = time.perf_counter() - start
        rules[name] = {"seconds": round(seconds, 4), "mb_per_s": round(payload / MB / seconds, 1)}
    result["rules"] = rules
    result["label"] = label
    return result


def _synthetic(n: int, parameters: int, seed: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """``n`` float32 deltas of a two-tensor model with ``parameters`` entries, one at a time: a direction
    they share plus noise of each one's own, as honest updates look to the screening."""
    generator = torch.Generator().manual_seed(seed)
    half = parameters // 2
    shared = torch.randn(parameters, generator=generator) * 0.01
    for _ in range(n):
        delta = shared + torch.randn(parameters, generator=generator) * 0.01
        yield {"layer0.weight": delta[:half], "layer1.weight": delta[half:]}


def _flat(delta: dict[str, torch.Tensor]) -> IntVector:
    """An update as the validator holds it: flattened in sorted name order and quantized to q32.24."""
    return quantize(flatten_arrays({name: t.numpy() for name, t in delta.items()}), 24, 32)


def streaming_memory(n: int, parameters: int) -> dict[str, Any]:
    """FedAvg over ``n`` updates, one at a time: time of flatten + add, and the peak memory in models."""
    model_bytes = parameters * 4
    seconds = {"aggregate": 0.0, "generate": 0.0}
    with PeakMemory(trace=True) as memory:
        mean = WeightedSum()
        updates = _synthetic(n, parameters)
        for _ in range(n):
            with stopwatch(seconds, "generate"):
                delta = next(updates)
            with stopwatch(seconds, "aggregate"):
                mean.add(_flat(delta), 64)
            del delta
        with stopwatch(seconds, "aggregate"):
            mean.mean()
    return {
        "updates": n,
        "parameters": parameters,
        "model_mb": round(model_bytes / MB, 1),
        "aggregate_s": round(seconds["aggregate"], 3),
        "mb_per_s": round(n * model_bytes / MB / seconds["aggregate"], 1),
        "peak_in_models": round(memory.traced / model_bytes, 2),
        "rss_peak_in_models": round(memory.rss_above_baseline / model_bytes, 2),
        "peak_mb": round(memory.traced / MB, 1),
    }


def held_memory(n: int, parameters: int) -> dict[str, Any]:
    """The rules that need every update at once: memory of holding them and each rule's peak, in models."""
    model_bytes = parameters * 4
    result: dict[str, Any] = {"updates": n, "parameters": parameters, "model_mb": round(model_bytes / MB, 1)}
    tracemalloc.start()
    try:
        with PeakMemory(trace=True) as holding:
            start = time.perf_counter()
            vectors = [_flat(delta) for delta in _synthetic(n, parameters)]
            collect = time.perf_counter() - start
        held = tracemalloc.get_traced_memory()[0]
        result["collect_s"] = round(collect, 3)
        result["holding_in_models"] = round(held / model_bytes, 2)
        rules = {}
        for name, call in rule_calls(n).items():
            if name == "fedavg (WeightedSum, one by one)":
                continue
            with PeakMemory(trace=True) as memory:
                start = time.perf_counter()
                call(vectors)
                seconds = time.perf_counter() - start
            peak = held + memory.traced
            rules[name] = {
                "seconds": round(seconds, 3),
                "mb_per_s": round(n * model_bytes / MB / seconds, 1),
                "peak_in_models": round(peak / model_bytes, 2),
                "rss_peak_in_models": round(
                    (holding.peak - holding.baseline + memory.rss_above_baseline) / model_bytes, 2
                ),
                "peak_mb": round(peak / MB, 1),
            }
        result["rules"] = rules
        del vectors
    finally:
        tracemalloc.stop()
    gc.collect()
    return result


def run(quick: bool) -> dict[str, Any]:
    """The scale round and the aggregation measurements; return the JSON-able section.

    Parameters
    ----------
    quick : bool
        100 contributors and 1M-parameter models (about a minute here); otherwise 1,000 contributors and
        the 10M-parameter model.
    """
    started = time.perf_counter()
    n = QUICK_CONTRIBUTORS if quick else CONTRIBUTORS
    big = 1_000_000 if quick else 10_000_000
    result: dict[str, Any] = {"quick": quick}
    with tempfile.TemporaryDirectory(prefix="cotrain-bench-scale-") as workdir:
        round_result, vectors = run_round(n, Path(workdir))
    result["round"] = round_result
    result["rules"] = sorted(rule_calls(3))
    result["throughput"] = [throughput(vectors, f"the round's {n} real updates")]
    del vectors
    synthetic_n = 20 if quick else 100
    result["throughput"].append(
        throughput([_flat(d) for d in _synthetic(synthetic_n, 1_000_000, seed=1)], "synthetic, 1M parameters")
    )
    result["aggregation_100_updates"] = {
        "streaming_fedavg": streaming_memory(100, big),
        # Holding 100 updates of 10M parameters in float64 is 8 GB before any rule's own copies: more
        # than this shared machine can spare, so the O(n x model) rules are measured at two smaller
        # corners and extrapolated (their peak is a multiple of updates x model).
        "all_updates_rules": [held_memory(100, big // 10), held_memory(10, big)],
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


if __name__ == "__main__":
    # Stopped from outside, still leave through the context managers: anvil stops, temp files go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(json.dumps(run("--quick" in sys.argv[1:]), indent=2, default=str))
