"""Section 1: what the chain and the content store cost, round by round.

The same task (the built-in digits CNN, 10 contributors, 5 rounds, the same seeds and shards) runs as

a. one process: each contributor's ``train_local`` in turn, then ``judge_round`` once; nothing stored or sent;
b. the whole network of ``cotrain demo``: anvil, the embedded store, one process per contributor and per
   validator (3, quorum 2), commit/reveal/propose/finalize/claim on the chain;
c. the same network on a js-ipfs daemon (``--storage ipfs``);

and, where Flower can be installed beside the project, as a Flower simulation whose clients run the same
``train_local`` on the same shards (see :mod:`bench.flower`).

Every variant runs pinned to one CPU core (:func:`bench.common.one_core`), so that the network's ten
trainings in parallel processes get no more compute than the one process's ten in a row. A round's wall time
is measured from the chain by a clock thread that reads the market's ``phase`` every 50 ms (raw JSON-RPC, so
the clock itself costs little); training, storage, chain and validation seconds come from the participants'
own timing files (per round, the slowest participant of each kind, as ``cotrain demo`` reports them).
Coordination is the rest: a round's wall time less its training and validation.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import statistics
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import torch
from cotrain.chain.anvil import dev_private_keys
from cotrain.chain.market import Phase
from cotrain.demo import DemoSettings, demo_spec, run_demo
from cotrain.errors import CotrainError
from cotrain.learning.partition import partition_iid
from cotrain.learning.tensor_files import encode_update
from cotrain.protocol.round_outcome import RevealedUpdate, judge_round, model_file
from cotrain.protocol.task_model import builtin_split, initial_state, train_round
from cotrain.protocol.task_spec import FileRef, TaskSpec, with_initial_model
from cotrain.protocol.update_binding import update_metadata
from cotrain.storage.unixfs import compute_cid
from eth_account import Account
from eth_utils import keccak
from rich.console import Console

from bench import flower
from bench.common import WORK, console, one_core, progress, ratio, summary

TASK_ID = 1  # the demo's task is the first on its fresh chain
CONTRIBUTORS, VALIDATORS, ROUNDS = 10, 3, 5
#: Local epochs of the heavy workload: at least 10 s of training a round on one core here (the spec's 3
#: epochs take about 0.6 s for all ten contributors).
HEAVY_EPOCHS = 60
CLOCK_INTERVAL_S = 0.05
_PHASE_CALL = keccak(text="phase(uint256)")[:4] + TASK_ID.to_bytes(32, "big")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Variant:
    """One way of running the task."""

    key: str
    title: str
    kind: str  # "local", "network" or "flower"
    storage: str = "embedded"
    block_time: float | None = 1.0
    mixed_mining: bool = True


LOCAL = Variant("a", "one process, no chain or storage", "local")
NETWORK = Variant("b", "network: anvil (1-s blocks, mixed mining) + embedded store", "network")
IPFS = Variant("c", "network: anvil (1-s blocks, mixed mining) + js-ipfs daemon", "network", "ipfs")
L2 = Variant(
    "b_l2",
    "network: anvil (2-s blocks, interval mining only) + embedded store",
    "network",
    "embedded",
    2.0,
    False,
)
FLOWER = Variant("flower", "Flower simulation (ray backend, same train_local)", "flower")


@dataclass(frozen=True)
class Workload:
    """A task size: contributors, rounds and local epochs (None: the built-in spec's)."""

    key: str
    contributors: int = CONTRIBUTORS
    rounds: int = ROUNDS
    local_epochs: int | None = None


# ---------------------------------------------------------------- a: one process


def _addresses(count: int) -> list[str]:
    return [Account.from_key(key).address for key in dev_private_keys(count)]


def _spec(settings: DemoSettings) -> tuple[TaskSpec, FileRef]:
    """The spec ``cotrain demo`` posts for ``settings`` (same dev accounts) and its initial model's ref."""
    # As cotrain demo lays them out: 0 the owner, 1 the arbiter, then the validators, then the contributors.
    accounts = _addresses(2 + settings.validators + settings.contributors)
    spec = demo_spec(settings, accounts[1], accounts[2 : 2 + settings.validators])
    model = model_file(0, -1, initial_state(spec))
    base = FileRef(cid=compute_cid(model), digest=hashlib.sha256(model).digest())
    return with_initial_model(spec, base.cid, base.digest), base


def run_local(settings: DemoSettings) -> dict[str, Any]:
    """Run the task in this process with the network's training and judging code; per-round seconds.

    Each contributor trains on the shard ``cotrain demo`` gives it, from the same base model with the same
    seed; the updates are encoded as the real update files and judged by :func:`judge_round` once.
    """
    torch.set_num_threads(1)  # as every participant process of the network (OMP_NUM_THREADS=1)
    spec, base = _spec(settings)
    contributors = _addresses(2 + settings.validators + settings.contributors)[2 + settings.validators :]
    train, held_out = builtin_split(spec)
    shards = [train.subset(part) for part in partition_iid(len(train), settings.contributors, 0)]
    state = initial_state(spec)
    rounds = []
    for round_ in range(spec.rounds):
        started = time.perf_counter()
        training = 0.0
        files: dict[str, bytes] = {}
        updates = []
        for order, (address, shard) in enumerate(zip(contributors, shards, strict=True)):
            clock = time.perf_counter()
            result = train_round(spec, state, shard, round_)
            training += time.perf_counter() - clock
            metadata = update_metadata(TASK_ID, round_, address, base.digest, result.samples)
            data = encode_update(result.delta, metadata)
            cid = compute_cid(data)
            files[cid] = data
            updates.append(RevealedUpdate(address, cid, hashlib.sha256(data).digest(), result.samples, order))
        clock = time.perf_counter()
        outcome = judge_round(
            spec,
            TASK_ID,
            round_,
            spec.budget_wei // spec.rounds,
            base,
            state,
            updates,
            lambda update, files=files: files[update.cid],
            held_out,
        )
        validation = time.perf_counter() - clock
        base, state = outcome.record.new_model, outcome.state
        rounds.append(
            {
                "round": round_,
                "wall_s": time.perf_counter() - started,
                "training_s": training,
                "storage_s": 0.0,
                "chain_s": 0.0,
                "validation_s": validation,
                "accuracy": outcome.advisory_metrics.accuracy,
                "model_cid": base.cid,
            }
        )
    return {"rounds": rounds}


# ---------------------------------------------------------------- b, c: the network


class PhaseClock(threading.Thread):
    """Notes, in ``time.perf_counter()`` seconds, when the task's current phase was first seen to change.

    It waits for the demo's ``network.json``, then asks anvil for ``phase(1)`` every
    :data:`CLOCK_INTERVAL_S` with a raw JSON-RPC call (web3 would cost more CPU than the nodes it times).
    """

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.directory = directory
        self.changes: list[tuple[float, Phase]] = []
        self.stopped = threading.Event()
        self.cpu_s: dict[int, tuple[str, float]] = {}  # pid -> (role, CPU seconds so far)

    def run(self) -> None:
        config = self.directory / "network.json"
        while not self.stopped.is_set():
            try:
                network = json.loads(config.read_text(encoding="utf-8"))
                break
            except (OSError, ValueError):
                time.sleep(CLOCK_INTERVAL_S)
        else:
            return
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_call",
                "params": [{"to": network["market"], "data": "0x" + _PHASE_CALL.hex()}, "latest"],
            }
        ).encode()
        request = urllib.request.Request(
            network["rpc_url"], data=body, headers={"Content-Type": "application/json"}
        )
        ticks = 0
        while not self.stopped.wait(CLOCK_INTERVAL_S):
            ticks += 1
            if ticks % 10 == 0:
                self._sample_cpu()
            try:
                with _DIRECT.open(request, timeout=2) as response:
                    answer = json.loads(response.read())
            except (OSError, ValueError):
                continue
            if "result" not in answer:
                continue  # the task does not exist yet
            phase = Phase(int(answer["result"], 16))
            if not self.changes or self.changes[-1][1] != phase:
                self.changes.append((time.perf_counter(), phase))

    def _sample_cpu(self) -> None:
        """Note each child process's CPU time (the last sample before it exits is what is kept)."""
        for child in psutil.Process().children(recursive=True):
            try:
                times = child.cpu_times()
                command = " ".join(child.cmdline())
            except psutil.Error:
                continue
            # A process that has exited but is not reaped yet shows an empty command line: keep its role.
            role = self.cpu_s.get(child.pid, ("other", 0.0))[0] if not command else _role(command)
            self.cpu_s[child.pid] = (role, times.user + times.system)

    def cpu_by_role(self) -> dict[str, float]:
        """CPU seconds used by the network's processes, summed per role (sampled every half second)."""
        totals: dict[str, float] = {}
        for role, seconds in self.cpu_s.values():
            totals[role] = totals.get(role, 0.0) + seconds
        return {role: round(seconds, 2) for role, seconds in sorted(totals.items())}

    def rounds(self, count: int) -> list[dict[str, float]]:
        """Per round: its wall time and the seconds spent in its commit, reveal and validate phases.

        A round starts when its commit phase is first seen and ends when the next round's is (rounds are
        accepted and the next one opened by the same transaction), or the task closes.
        """
        found: list[dict[str, float]] = []
        current: dict[Phase, float] | None = None
        for moment, phase in self.changes:
            if phase == Phase.COMMIT or phase == Phase.CLOSED:
                if current is not None and Phase.COMMIT in current:
                    found.append(_round_times(current, moment))
                current = {phase: moment}
            elif current is not None:
                current.setdefault(phase, moment)
        return found[:count]


def _role(command: str) -> str:
    for role in ("contribute", "validate", "anvil", "jsipfs", "ipfs"):
        if role in command:
            return {"contribute": "contributors", "validate": "validators", "jsipfs": "ipfs"}.get(role, role)
    return "other"


def _round_times(seen: dict[Phase, float], end: float) -> dict[str, float]:
    commit = seen[Phase.COMMIT]
    reveal = seen.get(Phase.REVEAL, seen.get(Phase.VALIDATE, end))
    validate = seen.get(Phase.VALIDATE, end)
    return {
        "wall_s": end - commit,
        "commit_phase_s": reveal - commit,
        "reveal_phase_s": validate - reveal,
        "validate_phase_s": end - validate,
    }


def run_network(settings: DemoSettings) -> dict[str, Any]:
    """Run ``cotrain demo`` with ``settings``; per-round wall time, phases and the participants' split."""
    shutil.rmtree(settings.directory, ignore_errors=True)
    clock = PhaseClock(settings.directory.resolve())
    clock.start()
    output = io.StringIO()
    started = time.perf_counter()
    try:
        result = run_demo(settings, console=Console(file=output, width=160))
    finally:
        clock.stopped.set()
        clock.join()
        (settings.directory.parent / f"{settings.directory.name}.log").write_text(
            output.getvalue(), encoding="utf-8"
        )
    total = time.perf_counter() - started
    walls = clock.rounds(settings.rounds)
    if len(walls) != settings.rounds:
        raise CotrainError(f"the phase clock saw {len(walls)} of {settings.rounds} rounds")
    rounds = []
    for r, wall in zip(result["rounds"], walls, strict=True):
        seconds = r["seconds"]
        rounds.append(
            {
                "round": r["round"],
                **wall,
                **{f"{kind}_s": seconds.get(kind, 0.0) for kind in ("training", "storage", "chain")},
                "validation_s": seconds.get("validation", 0.0),
                "accuracy": r["accuracy"],
                "model_cid": r["model_cid"],
            }
        )
    shutil.rmtree(settings.directory, ignore_errors=True)
    return {
        "rounds": rounds,
        "total_s": total,
        "audit_passed": result["audit"]["rounds_passed"],
        "cpu_s": clock.cpu_by_role(),
    }


# ---------------------------------------------------------------- putting it together

_PER_ROUND = ("wall_s", "training_s", "storage_s", "chain_s", "validation_s", "coordination_s")
_PHASES = ("commit_phase_s", "reveal_phase_s", "validate_phase_s")
_RUN_KEYS = ("total_s", "startup_s", "audit_passed", "cpu_s")


def _per_round_means(run: dict[str, Any]) -> dict[str, float]:
    """One run's median seconds per round of each quantity (coordination: wall less training, validation)."""
    rounds = run["rounds"]
    for r in rounds:
        r["coordination_s"] = r["wall_s"] - r["training_s"] - r["validation_s"]
    keys = [k for k in (*_PER_ROUND, *_PHASES) if k in rounds[0]]
    return {key: statistics.median(r[key] for r in rounds) for key in keys}


def _aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians (with min and max) over repeated runs of each run's mean per round."""
    ok = [run for run in runs if "error" not in run]
    means = [_per_round_means(run) for run in ok]
    out: dict[str, Any] = {
        "runs": len(ok),
        "errors": [run["error"] for run in runs if "error" in run],
        "per_round": {key: summary([m[key] for m in means]) for key in (means[0] if means else {})},
        "final_accuracy": summary([run["rounds"][-1]["accuracy"] for run in ok], 4),
        "final_model_cids": sorted({run["rounds"][-1].get("model_cid", "-") for run in ok}),
        "per_run": [
            {
                "per_round_mean": {k: round(v, 3) for k, v in m.items()},
                "rounds": [{k: _rounded(v) for k, v in r.items()} for r in run["rounds"]],
                **{k: _rounded(run[k]) for k in _RUN_KEYS if k in run},
            }
            for run, m in zip(ok, means, strict=True)
        ],
    }
    return out


def _rounded(value: Any) -> Any:
    return round(value, 3) if isinstance(value, float) else value


def _settings(workload: Workload, variant: Variant, run: int) -> DemoSettings:
    return DemoSettings(
        contributors=workload.contributors,
        validators=VALIDATORS,
        rounds=workload.rounds,
        storage=variant.storage,
        directory=WORK / "overhead" / f"{workload.key}-{variant.key}-{run}",
        block_time=variant.block_time,
        mixed_mining=variant.mixed_mining,
        local_epochs=workload.local_epochs,
    )


def _run_once(workload: Workload, variant: Variant, run: int) -> dict[str, Any]:
    settings = _settings(workload, variant, run)
    try:
        if variant.kind == "local":
            return run_local(settings)
        if variant.kind == "flower":
            return flower.simulate(settings)
        return run_network(settings)
    except (CotrainError, flower.FlowerUnavailable) as error:
        console.print(f"[red]{workload.key} {variant.key} run {run} failed:[/] {error}", markup=True)
        return {"error": f"{type(error).__name__}: {str(error)[:2000]}"}


def _compare(variants: dict[str, dict[str, Any]], baseline: str = "a") -> dict[str, Any]:
    """Ratios of each variant's median wall time per round to the baseline's."""
    base = variants.get(baseline, {}).get("per_round", {}).get("wall_s", {}).get("median")
    return {
        f"{key}/{baseline}": ratio(v.get("per_round", {}).get("wall_s", {}).get("median"), base)
        for key, v in variants.items()
        if key != baseline
    }


def plan(quick: bool) -> list[tuple[Workload, tuple[Variant, ...], int]]:
    """What runs: (workload, variants, repetitions)."""
    if quick:
        return [(Workload("digits", contributors=5, rounds=3), (LOCAL, NETWORK, IPFS), 1)]
    return [
        (Workload("digits"), (LOCAL, NETWORK, IPFS, L2, FLOWER), 3),
        (Workload("digits-heavy", local_epochs=HEAVY_EPOCHS), (LOCAL, NETWORK), 3),
    ]


def run(quick: bool) -> dict[str, Any]:
    """Run every workload and variant of :func:`plan`; medians per round, ratios to the one-process run.

    Parameters
    ----------
    quick : bool
        5 contributors, 3 rounds, variants a-c once (a few minutes); otherwise 10 contributors, 5 rounds,
        three runs of each variant, Flower, and the heavy workload.
    """
    out: dict[str, Any] = {
        "setup": {
            "validators": VALIDATORS,
            "quorum": VALIDATORS // 2 + 1,
            "cores": 1,
            "clock_interval_s": CLOCK_INTERVAL_S,
            "heavy_local_epochs": HEAVY_EPOCHS,
        },
        "variants": {v.key: v.title for v in (LOCAL, NETWORK, IPFS, L2, FLOWER)},
        "workloads": {},
    }
    todo = plan(quick)
    with one_core() as core, progress() as bar:
        out["setup"]["core"] = core
        task = bar.add_task("overhead", total=sum(len(vs) * n for _, vs, n in todo))
        for workload, variants, repeats in todo:
            runs: dict[str, list[dict[str, Any]]] = {v.key: [] for v in variants}
            # Interleaved (a, b, c, a, b, c, ...) so that a change in the machine's load hits every variant.
            for i in range(repeats):
                for variant in variants:
                    bar.update(task, description=f"{workload.key}: {variant.key}, run {i + 1}/{repeats}")
                    runs[variant.key].append(_run_once(workload, variant, i))
                    bar.advance(task)
            results = {key: _aggregate(rs) for key, rs in runs.items()}
            out["workloads"][workload.key] = {
                "contributors": workload.contributors,
                "rounds": workload.rounds,
                "local_epochs": workload.local_epochs,
                "repeats": repeats,
                "variants": results,
                "ratios": _compare(results),
            }
    return out
