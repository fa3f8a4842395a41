"""Section 5: what federating costs in accuracy, against centralised training on the same data.

The built-in digits task (the CNN of ``specs/digits.yaml``, Adam, batch 32) trained two ways on the same
training split and evaluated on the same held-out split:

- federated: the split divided among 10 contributors, IID or with Dirichlet(0.3) label skew
  (:mod:`cotrain.learning.partition`), 5 rounds of the spec's 3 local epochs, FedAvg by sample count (the
  validators' own float64 :func:`~cotrain.learning.aggregation.fedavg`);
- centralised: one ``train_local`` over the whole split for the same 15 epochs.

Each seed changes the model's initial weights, the shuffling and the partition. Everything runs in this
process with the learning layer alone: no chain, no storage.
"""

from __future__ import annotations

import statistics
import time
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from cotrain.learning.aggregation import apply_delta, fedavg
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import evaluate
from cotrain.learning.partition import partition_dirichlet, partition_iid
from cotrain.learning.training import train_local
from cotrain.protocol.task_model import builtin_split, initial_state, task_model
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec

from bench.common import progress, summary

CONTRIBUTORS, ROUNDS, ALPHA = 10, 5, 0.3
SEEDS, QUICK_SEEDS = (0, 1, 2, 3, 4), (0,)
MIN_SHARD = 5  # every Dirichlet shard can train (as in the robustness experiment)


def digits_spec(seed: int) -> TaskSpec:
    """The built-in digits spec with ``training.seed`` moved by ``seed``."""
    data = load_spec(Path(str(files("cotrain.protocol") / "specs" / "digits.yaml"))).model_dump(mode="json")
    data["training"]["seed"] += seed
    return validate_spec(data, source=f"digits spec, seed {seed}")


def _train(spec: TaskSpec, state: dict[str, torch.Tensor], data: ArrayDataset, epochs: int, seed: int):
    t = spec.training
    return train_local(
        task_model(spec),
        state,
        data,
        epochs=epochs,
        batch_size=t.batch_size,
        lr=t.lr,
        optimizer=t.optimizer,
        seed=seed,
    )


def federated(spec: TaskSpec, shards: list[ArrayDataset], held_out: ArrayDataset) -> list[float]:
    """Held-out accuracy after each round of FedAvg over ``shards``."""
    state = initial_state(spec)
    accuracies = []
    for round_ in range(ROUNDS):
        results = [
            _train(spec, state, shard, spec.training.local_epochs, spec.training.seed + round_)
            for shard in shards
        ]
        delta = fedavg([r.delta for r in results], [r.samples for r in results])
        state = apply_delta(state, delta)
        accuracies.append(evaluate(task_model(spec), state, held_out).accuracy)
    return accuracies


def centralised(spec: TaskSpec, train: ArrayDataset, held_out: ArrayDataset) -> float:
    """Held-out accuracy after training on all of ``train`` for the federated run's total epochs."""
    result = _train(spec, initial_state(spec), train, ROUNDS * spec.training.local_epochs, spec.training.seed)
    return evaluate(task_model(spec), apply_delta(initial_state(spec), result.delta), held_out).accuracy


def run(quick: bool) -> dict[str, Any]:
    """Federated (IID, Dirichlet 0.3) and centralised accuracy for each seed; medians and gaps.

    Parameters
    ----------
    quick : bool
        One seed (seconds); otherwise five.
    """
    torch.set_num_threads(1)
    seeds = QUICK_SEEDS if quick else SEEDS
    per_seed = []
    started = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("accuracy", total=3 * len(seeds))
        for seed in seeds:
            spec = digits_spec(seed)
            train, held_out = builtin_split(spec)
            partitions = {
                "iid": partition_iid(len(train), CONTRIBUTORS, seed),
                "dirichlet": partition_dirichlet(train.labels, CONTRIBUTORS, ALPHA, seed, MIN_SHARD),
            }
            row: dict[str, Any] = {"seed": seed}
            for name, parts in partitions.items():
                bar.update(task, description=f"accuracy: seed {seed}, federated {name}")
                curve = federated(spec, [train.subset(p) for p in parts], held_out)
                row[f"federated_{name}"] = curve[-1]
                row[f"federated_{name}_per_round"] = [round(a, 4) for a in curve]
                row[f"{name}_shard_sizes"] = sorted(len(p) for p in parts)
                bar.advance(task)
            bar.update(task, description=f"accuracy: seed {seed}, centralised")
            row["centralised"] = centralised(spec, train, held_out)
            bar.advance(task)
            per_seed.append(row)
    columns = ("centralised", "federated_iid", "federated_dirichlet")
    gaps = {
        f"centralised_minus_{name}": summary([r["centralised"] - r[name] for r in per_seed], 4)
        for name in columns[1:]
    }
    return {
        "dataset": "digits",
        "model": "cnn (specs/digits.yaml)",
        "contributors": CONTRIBUTORS,
        "rounds": ROUNDS,
        "local_epochs": digits_spec(0).training.local_epochs,
        "centralised_epochs": ROUNDS * digits_spec(0).training.local_epochs,
        "dirichlet_alpha": ALPHA,
        "seeds": list(seeds),
        "accuracy": {name: summary([r[name] for r in per_seed], 4) for name in columns},
        "mean_accuracy": {name: round(statistics.fmean(r[name] for r in per_seed), 4) for name in columns},
        "gaps": gaps,
        "per_seed": per_seed,
        "seconds": round(time.perf_counter() - started, 1),
    }
