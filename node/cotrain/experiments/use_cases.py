"""``cotrain experiment use-cases``: does joining pay for each seed case's data owners?

For each case (:mod:`cotrain.cases`) and seed, three models are trained for the same number of rounds, with
the case's spec (its ``training.seed`` replaced by the seed) and measured on the case's held-out set with its
metrics:

- *alone*: each participant trains only on its own shard, continuing from its own model every round
  (:func:`~cotrain.protocol.task_model.train_round`, as a contributor would with no one to join);
- *federated*: every participant trains on its shard from the round's global model and the validators'
  judge (:func:`~cotrain.experiments.robustness.judge_simulated`: the real update files, screening and
  fixed-point aggregation) makes the next one;
- *centralized*: one model trained on the pooled shards, what a single party holding all the data would get
  (which the task exists to avoid).

Simulated in one process, no chain: the chain changes nothing that is measured here. Every number is the mean
over seeds (and, for *alone*, over participants), with the spread over seeds beside it.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cotrain.cases import CASE_NAMES, case_files, get_case
from cotrain.experiments.robustness import contributor_address, judge_simulated
from cotrain.learning.aggregation import apply_delta
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import Metrics, evaluate
from cotrain.learning.local_data import load_local_data
from cotrain.protocol.round_judge import file_ref
from cotrain.protocol.round_outcome import model_file
from cotrain.protocol.task_model import initial_state, task_model, train_round
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec

SETTINGS = ("alone", "federated", "centralized")


@dataclass(frozen=True)
class Config:
    """What to run: the cases, participants per case, rounds and seeds."""

    cases: tuple[str, ...]
    contributors: int
    rounds: int
    seeds: tuple[int, ...]


QUICK = Config(cases=CASE_NAMES, contributors=2, rounds=1, seeds=(0,))
FULL = Config(cases=CASE_NAMES, contributors=4, rounds=5, seeds=(0, 1, 2))

Progress = Callable[[str], None]


def case_spec(case: str, seed: int) -> TaskSpec:
    """The case's spec trained with ``seed`` (initial weights and shuffles)."""
    data = load_spec(get_case(case).spec_path, pinning_held_out=True).model_dump(mode="json")
    data["training"]["seed"] = seed
    return validate_spec(data, source=f"{case} spec", pinning_held_out=True)


def _read(spec: TaskSpec, path: Path) -> ArrayDataset:
    shape, classes = tuple(spec.data.input_shape), spec.data.num_classes
    return load_local_data(path, input_shape=shape, num_classes=classes, contract=spec.data.columns)


def _pooled(parts: Sequence[ArrayDataset]) -> ArrayDataset:
    features = np.concatenate([part.features for part in parts])
    labels = np.concatenate([part.labels for part in parts])
    return ArrayDataset(features, labels, parts[0].classes)


def _scores(measured: Metrics) -> dict[str, float]:
    return {"accuracy": measured.accuracy, **measured.extra}


def _measure(spec: TaskSpec, state: dict[str, torch.Tensor], held_out: ArrayDataset) -> dict[str, float]:
    metrics = spec.data.validation.metrics or ()
    return _scores(evaluate(task_model(spec), state, held_out, metrics=metrics))


def train_alone(spec: TaskSpec, data: ArrayDataset, rounds: int) -> dict[str, torch.Tensor]:
    """A model trained on ``data`` only: ``rounds`` rounds of local training, each from the last one's."""
    state = initial_state(spec)
    for round_ in range(rounds):
        state = apply_delta(state, train_round(spec, state, data, round_).delta)
    return state


def train_federated(
    spec: TaskSpec, shards: Sequence[ArrayDataset], rounds: int, held_out: ArrayDataset
) -> Metrics:
    """The federated model after ``rounds`` rounds judged as validators judge them; its held-out metrics."""
    state = initial_state(spec)
    base = file_ref(model_file(1, -1, state))
    addresses = [contributor_address(i) for i in range(len(shards))]
    measured = None
    for round_ in range(rounds):
        submissions = [
            (address, train_round(spec, state, shard, round_).delta, len(shard))
            for address, shard in zip(addresses, shards, strict=True)
        ]
        outcome = judge_simulated(spec, round_, base, state, submissions, held_out)
        state, base, measured = outcome.state, file_ref(outcome.model_file), outcome.advisory_metrics
    assert measured is not None  # rounds >= 1
    return measured


def run_case(case: str, config: Config, progress: Progress | None = None) -> list[dict[str, Any]]:
    """One row per seed and setting: ``case``, ``seed``, ``setting`` and the held-out ``scores`` (for
    *alone*, the mean over participants, and each participant's under ``participants``)."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        written = case_files(case, Path(folder), config.contributors)
        first = case_spec(case, config.seeds[0])
        shards = [_read(first, path) for path in written.shards]
        held_out = _read(first, written.held_out)
    for seed in config.seeds:
        spec = case_spec(case, seed)
        if progress:
            progress(f"{case} seed {seed}: alone")
        alone = [_measure(spec, train_alone(spec, shard, config.rounds), held_out) for shard in shards]
        mean = {name: statistics.fmean(s[name] for s in alone) for name in alone[0]}
        rows.append({"case": case, "seed": seed, "setting": "alone", "scores": mean, "participants": alone})
        if progress:
            progress(f"{case} seed {seed}: federated")
        federated = _scores(train_federated(spec, shards, config.rounds, held_out))
        rows.append({"case": case, "seed": seed, "setting": "federated", "scores": federated})
        if progress:
            progress(f"{case} seed {seed}: centralized")
        central = _measure(spec, train_alone(spec, _pooled(shards), config.rounds), held_out)
        rows.append({"case": case, "seed": seed, "setting": "centralized", "scores": central})
    return rows


def step_count(config: Config) -> int:
    """How many progress steps :func:`run` reports."""
    return len(config.cases) * len(config.seeds) * len(SETTINGS)


def _cell(values: Sequence[float]) -> str:
    mean = statistics.fmean(values)
    spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{mean:.3f}{spread}"


def markdown(config: Config, rows: Sequence[dict[str, Any]]) -> str:
    """The results as docs/use-cases.md: one table per case, a row per setting, a column per metric."""
    intro = (
        "Written by `cotrain experiment use-cases` (`cotrain.experiments.use_cases`; simulated in one "
        "process, rounds judged by the validators' own code). For each seed case (`cotrain demo --case "
        "NAME`), the held-out metrics of a model each participant trains alone on its own shard (mean over "
        "participants), the federated model, and a model trained on the pooled shards, after the same number "
        f"of rounds with the case's spec: {config.contributors} participants, {config.rounds} rounds, seeds "
        f"{', '.join(map(str, config.seeds))} (mean ± standard deviation over seeds). Perplexity: lower is "
        "better (a uniform guess over the phone case's 1001 words scores 1001); every other metric: higher "
        "is better. Perplexity punishes confident mistakes, so a model trained many epochs on little text "
        "(or on text unlike the held-out set) can score above 1001 while its top-3 accuracy still beats "
        "chance."
    )
    lines = ["# Use cases: alone, federated, centralized", "", textwrap.fill(intro, width=110)]
    for case in config.cases:
        cells = [row for row in rows if row["case"] == case]
        names = list(cells[0]["scores"])
        lines += ["", f"## {case}: {get_case(case).summary}", ""]
        lines += [
            "| model | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for setting in SETTINGS:
            chosen = [row["scores"] for row in cells if row["setting"] == setting]
            lines.append(f"| {setting} | " + " | ".join(_cell([c[n] for c in chosen]) for n in names) + " |")
        alone = [row["participants"] for row in cells if row["setting"] == "alone"]
        main = names[1] if len(names) > 1 else names[0]
        per = [statistics.fmean(seed[i][main] for seed in alone) for i in range(len(alone[0]))]
        lines += [
            "",
            f"Alone, each participant's {main}: "
            + ", ".join(
                f"{name} {value:.3f}" for name, value in zip(get_case(case).owners, per, strict=False)
            )
            + ".",
        ]
    return "\n".join(lines) + "\n"


def run(config: Config, out: Path, progress: Progress | None = None) -> dict[str, Path]:
    """Run ``config`` and write ``results.json`` and ``use-cases.md`` into ``out``; return their paths."""
    rows = [row for case in config.cases for row in run_case(case, config, progress)]
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    results.write_text(
        json.dumps({"config": asdict(config), "rows": rows}, indent=2) + "\n", encoding="utf-8"
    )
    table = out / "use-cases.md"
    table.write_text(markdown(config, rows), encoding="utf-8")
    return {"results": results, "table": table}
