"""What fixed-point updates cost in accuracy: the measurement that picks the exact core's format (issue 11).

``python -m bench.fixed_point [--quick]`` -> ``bench/results[/quick]/fixed_point.json`` and a markdown table.

Both built-in tasks (digits: the CNN of ``specs/digits.yaml``; breast_cancer: the logistic model of
``specs/breast_cancer.yaml``), their training split shared among 10 contributors, IID or Dirichlet(0.3)
(:mod:`cotrain.learning.partition`), 5 rounds of local training by
:func:`cotrain.protocol.task_model.train_round` exactly as contributors run it, then aggregated two ways:

- **float32** (the reference): today's :func:`cotrain.learning.aggregation.fedavg` (float64 accumulation,
  mean rounded to float32) and :func:`~cotrain.learning.aggregation.apply_delta` (one float32 addition);
- **fixed point** ``(width, scale)``: each update quantized by :func:`cotrain.consensus.fixed_point.quantize`;
  one that does not fit the width is left out, as a validator would reject it (counted as an overflow; a round
  where all overflow keeps its base); then, per coordinate, the exact sample-weighted mean
  :func:`cotrain.consensus.coordinate.weighted_mean` (one division, ties to even); then the new model is
  ``float32(base + dequantize(mean))``: the float32 base widened exactly, one float64 addition, one rounding
  to float32 (both to nearest, ties to even).

Each aggregation drives its own run of all rounds, so the quantization error compounds as it would in a real
task. Round 0 trains from the same initial model in every run, so its local training is computed once
(training is deterministic: same base, data and round give the same bits). Each seed moves the spec's
``training.seed`` (initial weights, shuffling) and the partition. The metric is held-out accuracy after the
last round (:func:`cotrain.learning.evaluation.evaluate`), compared with the float32 run of the same seed.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cotrain.consensus.coordinate import weighted_mean
from cotrain.consensus.fixed_point import dequantize, overflow_count, quantize
from cotrain.learning.aggregation import apply_delta, fedavg
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import evaluate
from cotrain.learning.partition import partition_dirichlet, partition_iid
from cotrain.learning.robust import flatten, unflatten
from cotrain.learning.training import TrainResult
from cotrain.protocol.task_model import builtin_split, initial_state, task_model, train_round
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec

from bench.common import progress, run_standalone

DATASETS = ("digits", "breast_cancer")
PARTITIONS = ("iid", "dirichlet")
#: (width_bits, scale_bits). The deltas stay below 1 in magnitude (the result's ``max_abs_delta``: 0.07
#: to 0.25 in a quick run), so a 32-bit word can spend up to 30 bits on the fraction; 24- and 16-bit words
#: are tried from coarse scales to ones tight enough (q16.16 holds |x| < 0.5) that large updates overflow.
FORMATS = (
    (32, 12),
    (32, 16),
    (32, 20),
    (32, 24),
    (32, 28),
    (32, 30),
    (24, 16),
    (24, 20),
    (16, 8),
    (16, 12),
    (16, 14),
    (16, 16),
)
CONTRIBUTORS, ROUNDS, QUICK_ROUNDS, ALPHA = 10, 5, 2, 0.3
#: Ten seeds, not three: on digits with Dirichlet shards, any change of rounding (even the float32 control)
#: flips one or two of the 359 held-out examples in some seeds, and ten seeds resolve a mean to 0.03 point.
SEEDS, QUICK_SEEDS = tuple(range(10)), (0,)
MIN_SHARD = 5  # every Dirichlet shard can train (as in the accuracy and robustness experiments)
FLOAT32 = "float32"
#: A control: the weighted mean accumulated in float32 (as a framework summing float32 arrays does) instead
#: of float64. It differs from FLOAT32 only in last bits, so its accuracy difference is the yardstick: how
#: far any other valid float rounding moves the result.
FLOAT32_SUMS = "float32 sums (control)"

State = dict[str, torch.Tensor]
Aggregator = Callable[[State, Sequence[TrainResult]], tuple[State, int]]


def format_name(width_bits: int, scale_bits: int) -> str:
    """``"q32.24"``: a 32-bit signed integer with 24 fraction bits."""
    return f"q{width_bits}.{scale_bits}"


def builtin_spec(dataset: str, seed: int) -> TaskSpec:
    """The built-in ``specs/<dataset>.yaml`` with ``training.seed`` moved by ``seed``."""
    path = Path(str(files("cotrain.protocol") / "specs" / f"{dataset}.yaml"))
    data = load_spec(path).model_dump(mode="json")
    data["training"]["seed"] += seed
    return validate_spec(data, source=f"{dataset} spec, seed {seed}")


def float32_round(base: State, results: Sequence[TrainResult]) -> tuple[State, int]:
    """Today's aggregation: float32 fedavg by sample count, applied by one float32 addition (no overflow)."""
    return apply_delta(base, fedavg([r.delta for r in results], [r.samples for r in results])), 0


def float32_sums_round(base: State, results: Sequence[TrainResult]) -> tuple[State, int]:
    """The control: ``acc = w_1 d_1 + ... + w_n d_n`` and ``acc / W``, every operation rounded to float32."""
    total = np.float32(0)
    acc = np.zeros_like(flatten(base), dtype=np.float32)
    for result in results:
        weight = np.float32(result.samples)
        acc = acc + weight * flatten(result.delta).astype(np.float32)
        total = np.float32(total + weight)
    return apply_delta(base, unflatten((acc / total).astype(np.float64), base)), 0


def fixed_point_round(
    base: State, results: Sequence[TrainResult], width_bits: int, scale_bits: int
) -> tuple[State, int]:
    """One round in fixed point (module docstring); returns the new state and how many updates overflowed."""
    quantized, weights, overflowing = [], [], 0
    for result in results:
        values = flatten(result.delta).astype(np.float32)  # float32 -> float64 -> float32: exact
        if overflow_count(values, scale_bits, width_bits):
            overflowing += 1  # a validator rejects it: it takes no part in the mean
            continue
        quantized.append(quantize(values, scale_bits, width_bits))
        weights.append(result.samples)
    if not quantized:
        return dict(base), overflowing
    columns = np.stack(quantized).T.tolist()  # (coordinates, updates) of Python ints
    mean = np.array([weighted_mean(column, weights) for column in columns], dtype=np.int64)
    return unflatten(flatten(base) + dequantize(mean, scale_bits), base), overflowing


def _state_key(round_: int, state: Mapping[str, torch.Tensor]) -> tuple[int, bytes]:
    return round_, hashlib.sha256(flatten(state).tobytes()).digest()


def federated_run(
    spec: TaskSpec,
    shards: Sequence[ArrayDataset],
    held_out: ArrayDataset,
    rounds: int,
    aggregate: Aggregator,
    trained: dict[tuple[int, bytes], list[TrainResult]],
) -> dict[str, Any]:
    """Run ``rounds`` rounds aggregated by ``aggregate``: final held-out metrics, overflows, max |delta|, and
    (under ``"first_state"``, for :func:`compare` to measure and drop) the model after round 0.

    ``trained`` caches local training by (round, base state digest), shared between runs of one task.
    """
    state = initial_state(spec)
    overflowing, max_abs = 0, 0.0
    first_state = state
    for round_ in range(rounds):
        key = _state_key(round_, state)
        if key not in trained:
            trained[key] = [train_round(spec, state, shard, round_) for shard in shards]
        results = trained[key]
        max_abs = max(max_abs, *(float(np.abs(flatten(r.delta)).max()) for r in results))
        state, overflow = aggregate(state, results)
        overflowing += overflow
        if round_ == 0:
            first_state = state
    metrics = evaluate(task_model(spec), state, held_out)
    return {
        "accuracy": metrics.accuracy,
        "loss": metrics.loss,
        "overflowing_updates": overflowing,
        "updates": rounds * len(shards),
        "max_abs_delta": max_abs,
        "first_state": first_state,
    }


def compare(
    dataset: str,
    partition: str,
    seed: int,
    *,
    rounds: int,
    contributors: int,
    formats: Sequence[tuple[int, int]],
    train_limit: int | None = None,
) -> dict[str, Any]:
    """One task (data set, partition, seed) aggregated in float32 and in each fixed-point format.

    Parameters
    ----------
    train_limit : int, optional
        Use only the first this many training examples (tests); the held-out split is unchanged.

    Returns
    -------
    dict
        ``{"dataset", "partition", "seed", "shard_sizes", "runs": {name: run}}`` with ``name`` ``"float32"``
        or :func:`format_name`, each run as :func:`federated_run` returns it plus ``accuracy_difference``
        (points, the format's accuracy minus float32's; 0 for float32), ``loss_difference`` (the held-out
        cross-entropy's, a finer signal than accuracy on 359 or 143 examples) and
        ``first_round_max_abs_difference`` (the largest weight difference from float32's model after round
        0, whose updates every run shares).
    """
    spec = builtin_spec(dataset, seed)
    train, held_out = builtin_split(spec)
    if train_limit is not None:
        train = train.subset(np.arange(min(train_limit, len(train)), dtype=np.int64))
    if partition == "iid":
        parts = partition_iid(len(train), contributors, seed)
    else:
        parts = partition_dirichlet(train.labels, contributors, ALPHA, seed, MIN_SHARD)
    shards = [train.subset(p) for p in parts]
    trained: dict[tuple[int, bytes], list[TrainResult]] = {}
    aggregators: dict[str, Aggregator] = {FLOAT32: float32_round, FLOAT32_SUMS: float32_sums_round}
    for width, scale in formats:
        aggregators[format_name(width, scale)] = lambda b, r, w=width, s=scale: fixed_point_round(b, r, w, s)
    runs = {
        name: federated_run(spec, shards, held_out, rounds, aggregate, trained)
        for name, aggregate in aggregators.items()
    }
    reference = runs[FLOAT32]
    first = flatten(reference["first_state"])
    for run_ in runs.values():
        # The same round-0 updates aggregated two ways: the format's own error, before training amplifies it.
        run_["first_round_max_abs_difference"] = float(np.abs(flatten(run_["first_state"]) - first).max())
    for run_ in runs.values():
        del run_["first_state"]
        run_["accuracy_difference"] = round(100 * (run_["accuracy"] - reference["accuracy"]), 4)
        run_["loss_difference"] = run_["loss"] - reference["loss"]
    return {
        "dataset": dataset,
        "partition": partition,
        "seed": seed,
        "held_out": len(held_out),
        "shard_sizes": sorted(len(p) for p in parts),
        "runs": runs,
    }


def summarise(cells: Sequence[dict[str, Any]], formats: Sequence[tuple[int, int]]) -> dict[str, Any]:
    """Per format and (data set, partition): accuracy difference over seeds (mean, largest magnitude, all),
    the fraction of updates that overflowed, and the float32 accuracy it is measured against."""
    names = [FLOAT32, FLOAT32_SUMS, *(format_name(w, s) for w, s in formats)]
    groups: dict[str, list[dict[str, Any]]] = {}
    for cell in cells:
        groups.setdefault(f"{cell['dataset']}/{cell['partition']}", []).append(cell)
    table: dict[str, Any] = {}
    for name in names:
        row: dict[str, Any] = {}
        for group, members in groups.items():
            differences = [c["runs"][name]["accuracy_difference"] for c in members]
            overflowing = sum(c["runs"][name]["overflowing_updates"] for c in members)
            updates = sum(c["runs"][name]["updates"] for c in members)
            row[group] = {
                "accuracy_mean": round(statistics.fmean(c["runs"][name]["accuracy"] for c in members), 4),
                "difference_mean": round(statistics.fmean(differences), 4),
                "difference_worst": max(differences, key=abs),
                "differences": differences,
                "first_round_max_abs_difference": max(
                    c["runs"][name]["first_round_max_abs_difference"] for c in members
                ),
                "loss_difference_worst": max((c["runs"][name]["loss_difference"] for c in members), key=abs),
                "overflow_fraction": round(overflowing / updates, 4),
            }
        table[name] = row
    max_abs = {
        group: max(run_["max_abs_delta"] for c in members for run_ in c["runs"].values())
        for group, members in groups.items()
    }
    return {"formats": table, "max_abs_delta": max_abs}


def run(quick: bool) -> dict[str, Any]:
    """Every data set, partition, seed and format (quick: one seed, two rounds); see the module docstring."""
    torch.set_num_threads(1)
    seeds = QUICK_SEEDS if quick else SEEDS
    rounds = QUICK_ROUNDS if quick else ROUNDS
    cells = []
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("fixed point", total=len(DATASETS) * len(PARTITIONS) * len(seeds))
        for dataset in DATASETS:
            for partition in PARTITIONS:
                for seed in seeds:
                    bar.update(task, description=f"fixed point: {dataset}, {partition}, seed {seed}")
                    clock = time.perf_counter()
                    cell = compare(
                        dataset, partition, seed, rounds=rounds, contributors=CONTRIBUTORS, formats=FORMATS
                    )
                    cell["seconds"] = round(time.perf_counter() - clock, 1)
                    cells.append(cell)
                    bar.advance(task)
    return {
        "datasets": list(DATASETS),
        "models": {d: builtin_spec(d, 0).model.name for d in DATASETS},
        "partitions": list(PARTITIONS),
        "dirichlet_alpha": ALPHA,
        "contributors": CONTRIBUTORS,
        "rounds": rounds,
        "seeds": list(seeds),
        "formats": [{"name": format_name(w, s), "width_bits": w, "scale_bits": s} for w, s in FORMATS],
        "summary": summarise(cells, FORMATS),
        "per_task": cells,
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown_table(result: dict[str, Any]) -> str:
    """The summary as a markdown table: per format, accuracy difference in points vs float32 (mean and
    largest magnitude over seeds) per data set and partition, and the fraction of updates that overflowed."""
    summary = result["summary"]["formats"]
    groups = list(next(iter(summary.values())))
    labels = {"iid": "IID", "dirichlet": f"Dir({result['dirichlet_alpha']})"}
    titles = [f"{g.split('/')[0]} {labels[g.split('/')[1]]}" for g in groups]
    lines = [
        "| format | "
        + " | ".join(titles)
        + " | max \\|Δ w\\| round 0 | max \\|Δ loss\\| | overflowing updates (max) |",
        "|---|" + "---|" * (len(groups) + 3),
    ]
    reference = summary[FLOAT32]
    lines.append(
        f"| {FLOAT32} (accuracy) | "
        + " | ".join(f"{reference[g]['accuracy_mean']:.4f}" for g in groups)
        + " | - | - | - |"
    )
    for name, row in summary.items():
        if name == FLOAT32:
            continue
        cells = [f"{row[g]['difference_mean']:+.2f} / {row[g]['difference_worst']:+.2f}" for g in groups]
        overflow = max(row[g]["overflow_fraction"] for g in groups)
        loss = max(abs(row[g]["loss_difference_worst"]) for g in groups)
        weight = max(row[g]["first_round_max_abs_difference"] for g in groups)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {weight:.1e} | {loss:.1e} | {overflow:.1%} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the experiment, write its JSON with the machine and versions, and print the markdown table."""
    result = run_standalone(
        "fixed_point",
        __doc__.splitlines()[0],
        "One seed, two rounds (under a minute).",
        run,
        markdown_table,
        argv,
    )
    print("max |delta|:", result["summary"]["max_abs_delta"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
