"""The attack harness behind ``cotrain experiment robustness``: simulated networks with attackers, judged by
the validator's own code.

A *cell* of the grid is one simulated task: a data set, a partition of its training split among the
contributors (IID, or Dirichlet label skew), a validator pipeline config (the spec's ``aggregation``
section), an attack, the share of contributors running it, and a seed. Each round of a cell:

1. every honest contributor trains on its shard from the round's global model with
   :func:`~cotrain.protocol.task_model.train_round`, as a real contributor node does;
2. every attacker crafts its update with :mod:`cotrain.learning.attacks` (training first on its own, possibly
   poisoned, shard when the attack needs it), knowing the honest updates its attack sees: the round's for the
   omniscient attacks, the previous round's for the stale ones, none otherwise;
3. each update is encoded as the real update file, bound to its task, round, contributor and base model,
   stored in memory under its CID and revealed; honest contributors commit first, attackers last;
4. :func:`~cotrain.protocol.round_outcome.judge_round`, the function validators and auditors run, judges the
   round; its record gives verdicts, reasons and rewards, and its new model is the next round's base.

A cell's result (final and per-round held-out accuracy, the share of the reward budget paid to attackers
and to honest contributors, the verdict reasons each side got) depends only on the cell and the grid's
settings: every random draw is seeded from the cell's seed. Results are appended to a JSON-lines file as
cells finish, so an interrupted grid resumes where it stopped.

The same harness, without attackers, compares ways of training under label skew (:data:`NON_IID_GRID`,
``cotrain experiment robustness --non-iid``): FedProx, which is the task spec's ``training.proximal_mu``,
and server momentum (FedAvgM), which the protocol does not have and the harness simulates after the judge
(:class:`ServerMomentum`).
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from eth_utils import keccak, to_checksum_address

from cotrain.errors import ConfigError, IntegrityError
from cotrain.learning.attacks import ATTACKS, Delta, attack_names, base_name, get_attack
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import evaluate
from cotrain.learning.partition import partition_dirichlet, partition_iid
from cotrain.learning.rules import get_rule, rule_names
from cotrain.learning.tensor_files import RejectReason, UpdateRejected, encode_update
from cotrain.protocol.round_judge import file_ref
from cotrain.protocol.round_outcome import RevealedUpdate, RoundOutcome, judge_round, model_file
from cotrain.protocol.task_model import builtin_split, initial_state, task_model, train_round
from cotrain.protocol.task_spec import FileRef, TaskSpec, load_spec, spec_digest, validate_spec
from cotrain.protocol.update_binding import update_metadata

SPECS = Path(__file__).resolve().parents[1] / "protocol" / "specs"
TASK_ID = 1
ROUND_BUDGET = 10**18
NO_ATTACK = "none"
#: Not an attack: the malicious share of contributors simply stays away. Its accuracy drop is what losing
#: their data costs, the floor no defence can beat (large under label skew, where shards hold few classes).
ABSENT = "absent"
PARTITIONS = ("iid", "dirichlet")
#: The pipeline whose attackers' shares the headline breaks down per attack family.
SCREENED_FEDAVG = "fedavg + screening"
# Every Dirichlet shard holds at least a few examples, so that every contributor can train.
MIN_SHARD = 5


@dataclass(frozen=True)
class ServerMomentum:
    """Server momentum (FedAvgM: Hsu et al. 2019, "Measuring the Effects of Non-Identical Data Distribution
    for Federated Visual Classification"), simulated in float32 on top of each round's judged model.

    Not part of the protocol: a round record pins the judged model itself, and the next round starts from
    it. The harness applies :func:`momentum_step` after the judge to measure whether the protocol should.
    """

    beta: float
    lr: float = 1.0


def momentum_step(
    state: Mapping[str, torch.Tensor],
    judged: Mapping[str, torch.Tensor],
    velocity: Mapping[str, torch.Tensor] | None,
    momentum: ServerMomentum,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One FedAvgM server step from the round's base ``state`` and the model the round judged.

    ``v = beta * v + (judged - state)`` (``v`` is zero before the first round), then
    ``w = state + lr * v``, in float32, entry by entry. With ``beta = 0`` and ``lr = 1`` it is FedAvg.

    Returns
    -------
    tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]
        The next round's base weights and the new velocity.
    """
    moved = {key: judged[key] - state[key] for key in state}
    if velocity is not None:
        moved = {key: momentum.beta * velocity[key] + moved[key] for key in state}
    return {key: state[key] + momentum.lr * moved[key] for key in state}, moved


@dataclass(frozen=True)
class PipelineConfig:
    """A named validator pipeline: the task spec's ``aggregation`` section (rule, params, screening).

    ``training`` overrides the task's ``training`` section (e.g. FedProx's ``proximal_mu``), and
    ``server_momentum`` simulates FedAvgM after the judge; both are empty in the attack grid.
    """

    name: str
    aggregation: Mapping[str, Any]
    training: Mapping[str, Any] = field(default_factory=dict)
    server_momentum: ServerMomentum | None = None


def registered_pipelines() -> tuple[PipelineConfig, ...]:
    """The baselines (no screening) and every registered rule with screening."""
    pipelines = [
        PipelineConfig("fedavg (no screening)", {"rule": "fedavg", "screening": {"enabled": False}}),
        PipelineConfig(SCREENED_FEDAVG, {"rule": "fedavg"}),
        PipelineConfig("median (no screening)", {"rule": "median", "screening": {"enabled": False}}),
    ]
    for name in rule_names():
        if get_rule(name).in_grid and name != "fedavg":
            pipelines.append(PipelineConfig(f"{name} + screening", {"rule": name}))
    return tuple(pipelines)


#: The pipelines the grid compares: a rule registered in :mod:`cotrain.learning.rules` joins them.
PIPELINES: tuple[PipelineConfig, ...] = registered_pipelines()


@dataclass(frozen=True)
class TaskSetup:
    """How a data set's simulated task departs from its built-in spec file (model, input shape, training)."""

    spec_file: str
    model: Mapping[str, Any]
    input_shape: tuple[int, ...]
    training: Mapping[str, Any]


#: Small models and one local epoch keep a cell under a second; see docs/robustness.md.
SETUPS: dict[str, TaskSetup] = {
    "digits": TaskSetup(
        "digits.yaml",
        {"name": "mlp", "params": {"hidden": [32]}},
        (64,),
        {"local_epochs": 1, "batch_size": 16, "lr": 0.01, "optimizer": "adam"},
    ),
    "breast_cancer": TaskSetup(
        "breast_cancer.yaml",
        {"name": "logistic", "params": {}},
        (30,),
        {"local_epochs": 1, "batch_size": 16, "lr": 0.1, "optimizer": "sgd"},
    ),
}


@dataclass(frozen=True)
class Cell:
    """One simulated task of the grid. ``attack`` is :data:`NO_ATTACK` when ``fraction`` is 0."""

    dataset: str
    partition: str
    pipeline: str
    attack: str
    fraction: float
    seed: int


@dataclass(frozen=True)
class Grid:
    """The axes of an experiment and the settings every cell shares."""

    datasets: tuple[str, ...] = ("digits", "breast_cancer")
    pipelines: tuple[PipelineConfig, ...] = PIPELINES
    attacks: tuple[str, ...] = (ABSENT, *attack_names())
    fractions: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3)
    partitions: tuple[str, ...] = PARTITIONS
    seeds: tuple[int, ...] = (0, 1, 2)
    contributors: int = 10
    rounds: int = 5
    dirichlet_alpha: float = 0.3
    setups: Mapping[str, TaskSetup] = field(default_factory=lambda: dict(SETUPS))

    def __post_init__(self) -> None:
        unknown = [d for d in self.datasets if d not in self.setups]
        unknown += [p for p in self.partitions if p not in PARTITIONS]
        unknown += [a for a in self.attacks if a not in attack_names() and a != ABSENT]
        if unknown:
            raise ConfigError(
                f"unknown grid entries {unknown}; data sets {sorted(self.setups)}, partitions "
                f"{list(PARTITIONS)}, attacks {list(attack_names())}"
            )
        names = [p.name for p in self.pipelines]
        if len(set(names)) != len(names):
            raise ConfigError(f"pipeline names must be unique, got {names}")
        if any(not 0 <= f < 0.5 for f in self.fractions):
            raise ConfigError(f"malicious fractions must lie in [0, 0.5), got {self.fractions}")

    def pipeline(self, name: str) -> PipelineConfig:
        """The pipeline config called ``name``."""
        for config in self.pipelines:
            if config.name == name:
                return config
        raise ConfigError(f"no pipeline {name!r} in the grid; it has {[p.name for p in self.pipelines]}")

    def cells(self) -> list[Cell]:
        """Every cell, in a fixed order; fraction 0 appears once per pipeline (attack ``none``)."""
        cells = []
        for dataset in self.datasets:
            for partition in self.partitions:
                for seed in self.seeds:
                    for config in self.pipelines:
                        for fraction in self.fractions:
                            attacks = (
                                (NO_ATTACK,) if attackers(fraction, self.contributors) == 0 else self.attacks
                            )
                            for attack in attacks:
                                cells.append(Cell(dataset, partition, config.name, attack, fraction, seed))
        return cells

    def describe(self) -> dict[str, Any]:
        """The grid's settings as JSON data."""
        data = asdict(self)
        data["pipelines"] = [_describe_pipeline(p) for p in self.pipelines]
        data["setups"] = {name: asdict(setup) for name, setup in self.setups.items()}
        return data


def _describe_pipeline(config: PipelineConfig) -> dict[str, Any]:
    data: dict[str, Any] = {"name": config.name, "aggregation": dict(config.aggregation)}
    if config.training:
        data["training"] = dict(config.training)
    if config.server_momentum is not None:
        data["server_momentum"] = asdict(config.server_momentum)
    return data


#: The default grid (8,652 cells); see docs/robustness.md for its cost.
FULL_GRID = Grid()

#: A small grid for a quick look: one seed, IID and non-IID, 30% attackers, three pipelines, three rounds,
#: every base attack and a few variants.
QUICK_GRID = Grid(
    pipelines=tuple(
        p
        for p in PIPELINES
        if p.name in ("fedavg (no screening)", "fedavg + screening", "median + screening")
    ),
    attacks=(
        ABSENT,
        *ATTACKS,
        "label_flip+jitter",
        "alie+jitter",
        "copycat+jitter",
        "alie+evade",
        "alie+stale",
    ),
    fractions=(0.0, 0.3),
    seeds=(0,),
    rounds=3,
)


# ---------------------------------------------------------------- non-IID: FedProx and server momentum


def spec_setup(spec_file: str) -> TaskSetup:
    """A built-in spec's own model and local training, unchanged."""
    spec = load_spec(SPECS / spec_file)
    return TaskSetup(spec_file, spec.model.model_dump(mode="json"), tuple(spec.data.input_shape), {})


#: The baseline of the non-IID grid: the spec's default pipeline, FedAvg with screening.
FEDAVG = PipelineConfig("fedavg", {"rule": "fedavg"})


def _fedprox(mu: float) -> PipelineConfig:
    return PipelineConfig(f"fedprox mu={mu}", FEDAVG.aggregation, training={"proximal_mu": mu})


def _fedavgm(beta: float, lr: float = 1.0) -> PipelineConfig:
    return PipelineConfig(
        f"fedavgm beta={beta} lr={lr}", FEDAVG.aggregation, server_momentum=ServerMomentum(beta, lr)
    )


#: FedAvg against FedProx (client side) and FedAvgM (server side), every one judged by fedavg + screening.
#: ``server lr 1.5`` is momentum's control: a longer server step without memory. ``beta=0.9 lr=0.1`` moves
#: as far as FedAvg in the long run (lr / (1 - beta) = 1).
NON_IID_SETTINGS: tuple[PipelineConfig, ...] = (
    FEDAVG,
    *(_fedprox(mu) for mu in (0.01, 0.1, 1.0)),
    *(_fedavgm(beta) for beta in (0.3, 0.5, 0.9)),
    _fedavgm(0.9, 0.1),
    PipelineConfig("server lr 1.5", FEDAVG.aggregation, server_momentum=ServerMomentum(0.0, 1.5)),
    PipelineConfig(
        "fedprox mu=0.1 + fedavgm beta=0.5",
        FEDAVG.aggregation,
        training={"proximal_mu": 0.1},
        server_momentum=ServerMomentum(0.5),
    ),
)

#: No attackers; the robustness grid's digits task (MLP, 1 local epoch) and the shipped digits spec's own
#: CNN with 3 local epochs, where BENCHMARKS.md section 5 measured FedAvg 13.7 points below centralised
#: training under Dirichlet(0.3) skew. Five seeds, the attack grid's 10 contributors and 5 rounds.
NON_IID_GRID = Grid(
    datasets=("digits", "digits_cnn"),
    pipelines=NON_IID_SETTINGS,
    attacks=(),
    fractions=(0.0,),
    seeds=(0, 1, 2, 3, 4),
    setups={**SETUPS, "digits_cnn": spec_setup("digits.yaml")},
)

#: A smoke run of the non-IID grid: the MLP, one seed, three settings, three rounds.
QUICK_NON_IID_GRID = Grid(
    datasets=("digits",),
    pipelines=(FEDAVG, _fedprox(0.1), _fedavgm(0.5)),
    attacks=(),
    fractions=(0.0,),
    seeds=(0,),
    rounds=3,
)


def attackers(fraction: float, contributors: int) -> int:
    """How many of ``contributors`` attack at ``fraction`` (rounded to the nearest whole contributor)."""
    return round(fraction * contributors)


def cell_key(cell: Cell, grid: Grid) -> str:
    """A readable key plus a digest of everything that determines the cell's result, for resuming.

    The digest covers the cell, the grid's settings and the cell's whole validated spec, so a change of a
    default threshold in the spec schema makes every affected cell run again. Code changes do not: after
    changing the pipeline's code, start over with a fresh results file.
    """
    inputs = {
        "cell": asdict(cell),
        "contributors": grid.contributors,
        "alpha": grid.dirichlet_alpha if cell.partition == "dirichlet" else None,
        "spec": "0x" + spec_digest(cell_spec(cell, grid)).hex(),
    }
    momentum = grid.pipeline(cell.pipeline).server_momentum
    if momentum is not None:
        inputs["server_momentum"] = asdict(momentum)
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:12]
    readable = "/".join(str(v) for v in asdict(cell).values())
    return f"{readable}#{digest}"


# ---------------------------------------------------------------- one cell


def cell_spec(cell: Cell, grid: Grid) -> TaskSpec:
    """The task spec of ``cell``: the data set's built-in spec with the grid's model, training, rounds,
    contributors, budget and the cell's pipeline as its ``aggregation`` section (and its ``training``
    overrides)."""
    setup = grid.setups[cell.dataset]
    config = grid.pipeline(cell.pipeline)
    data = json.loads(_spec_json(setup.spec_file))
    data["name"] = f"robustness-{cell.dataset}"
    data["model"] = dict(setup.model)
    data["data"]["input_shape"] = list(setup.input_shape)
    data["training"] = {**data["training"], **setup.training, **config.training, "seed": cell.seed}
    data["aggregation"] = dict(config.aggregation)
    data["rounds"] = grid.rounds
    data["contributors"] = {**data["contributors"], "min": 1, "max": grid.contributors}
    data["budget_wei"] = ROUND_BUDGET * grid.rounds
    return validate_spec(data, source=f"robustness spec for {cell.dataset}")


@lru_cache(maxsize=8)
def _spec_json(spec_file: str) -> str:
    return json.dumps(load_spec(SPECS / spec_file).model_dump(mode="json"))


@lru_cache(maxsize=8)
def _split(spec_file: str, input_shape: tuple[int, ...]) -> tuple[ArrayDataset, ArrayDataset]:
    data = load_spec(SPECS / spec_file).model_dump(mode="json")
    data["model"] = {"name": "logistic", "params": {}}
    data["data"]["input_shape"] = list(input_shape)
    return builtin_split(validate_spec(data))


def shards(cell: Cell, grid: Grid, train: ArrayDataset) -> list[ArrayDataset]:
    """Each contributor's local data: the training split cut IID or with Dirichlet label skew."""
    if cell.partition == "iid":
        parts = partition_iid(len(train), grid.contributors, cell.seed)
    else:
        parts = partition_dirichlet(
            train.labels, grid.contributors, grid.dirichlet_alpha, cell.seed, min_size=MIN_SHARD
        )
    return [train.subset(indices) for indices in parts]


def attacker_indices(cell: Cell, grid: Grid) -> list[int]:
    """Which contributors attack: a seeded draw, nested across fractions (10% of them are among 20%)."""
    order = np.random.Generator(np.random.PCG64([cell.seed, 1])).permutation(grid.contributors)
    return sorted(int(i) for i in order[: attackers(cell.fraction, grid.contributors)])


def contributor_address(index: int) -> str:
    """The simulated contributor ``index``'s address."""
    return to_checksum_address(keccak(f"cotrain-robustness-{index}".encode())[-20:])


def run_cell(cell: Cell, grid: Grid) -> dict[str, Any]:
    """Simulate ``cell`` round by round and return its result as JSON data.

    Returns
    -------
    dict
        The cell's fields and key, the number of attackers, ``accuracy`` (held-out, after the last round),
        ``accuracy_per_round``, ``attacker_reward_share`` and ``honest_reward_share`` (of the whole reward
        budget), ``attacker_slash_wei``, and ``attacker_reasons`` / ``honest_reasons``: how many of each
        side's updates got each reason code, over all rounds.
    """
    spec = cell_spec(cell, grid)
    setup = grid.setups[cell.dataset]
    train, held_out = _split(setup.spec_file, tuple(setup.input_shape))
    local = shards(cell, grid, train)
    bad = set(attacker_indices(cell, grid))
    attack = None if not bad or cell.attack == ABSENT else get_attack(cell.attack)
    honest = [i for i in range(grid.contributors) if i not in bad]
    commit_order = {index: order for order, index in enumerate(honest + sorted(bad))}
    addresses = [contributor_address(i) for i in range(grid.contributors)]
    poisoned = {i: attack.poison(local[i]) if attack and attack.poison else local[i] for i in bad}
    momentum = grid.pipeline(cell.pipeline).server_momentum
    velocity: dict[str, torch.Tensor] | None = None

    state = initial_state(spec)
    base = file_ref(model_file(TASK_ID, -1, state))
    accuracy: list[float] = []
    rewards = Counter[str]()
    slashes = 0
    reasons: dict[str, Counter[str]] = {"attacker": Counter(), "honest": Counter()}
    previous: Sequence[Delta] = []  # the previous round's honest updates, public since its reveals
    for round_ in range(grid.rounds):
        deltas = {i: train_round(spec, state, local[i], round_).delta for i in honest}
        this_round = [deltas[i] for i in honest]
        if attack is not None:
            known = attack.known(this_round, previous)
            for i in sorted(bad):
                if attack.trains:
                    own = train_round(spec, state, poisoned[i], round_).delta
                else:
                    own = {key: torch.zeros_like(value) for key, value in state.items()}
                rng = np.random.Generator(np.random.PCG64([cell.seed, round_, i, 2]))
                deltas[i] = attack.craft(own, known, rng, grid.contributors, len(bad))
        previous = this_round
        submissions = [
            (
                addresses[i],
                deltas[i],
                len(local[i]) * (attack.claims if attack is not None and i in bad else 1),
            )
            for i in sorted(deltas, key=commit_order.__getitem__)
        ]
        outcome = judge_simulated(spec, round_, base, state, submissions, held_out)
        side = {addresses[i].lower(): "attacker" if i in bad else "honest" for i in range(grid.contributors)}
        for entry in outcome.record.updates:
            rewards[side[entry.contributor]] += entry.reward
            reasons[side[entry.contributor]][entry.reason.value] += 1
            if side[entry.contributor] == "attacker":
                slashes += entry.slash
        if momentum is None:
            accuracy.append(outcome.advisory_metrics.accuracy)
            state = outcome.state
            base = file_ref(outcome.model_file)
        else:
            state, velocity = momentum_step(state, outcome.state, velocity, momentum)
            accuracy.append(evaluate(task_model(spec), state, held_out).accuracy)
            base = file_ref(model_file(TASK_ID, round_, state))
    budget = ROUND_BUDGET * grid.rounds
    return {
        "key": cell_key(cell, grid),
        **asdict(cell),
        "attackers": len(bad),
        "accuracy": accuracy[-1],
        "accuracy_per_round": accuracy,
        "attacker_reward_share": rewards["attacker"] / budget,
        "honest_reward_share": rewards["honest"] / budget,
        "attacker_slash_wei": str(slashes),
        "attacker_reasons": dict(sorted(reasons["attacker"].items())),
        "honest_reasons": dict(sorted(reasons["honest"].items())),
    }


def judge_simulated(
    spec: TaskSpec,
    round_: int,
    base: FileRef,
    state: dict[str, torch.Tensor],
    submissions: Sequence[tuple[str, Delta, int]],
    held_out: ArrayDataset,
) -> RoundOutcome:
    """Judge a simulated round as validators do: each ``(address, delta, samples)`` of ``submissions``, in
    commit order, encoded as the real update file bound to task ``TASK_ID``, ``round_`` and ``base``, stored
    in memory under its CID and revealed, then :func:`~cotrain.protocol.round_outcome.judge_round` with a
    round budget of ``ROUND_BUDGET``."""
    files: dict[str, bytes] = {}
    updates = []
    for order, (address, delta, samples) in enumerate(submissions):
        data = encode_update(delta, update_metadata(TASK_ID, round_, address, base.digest, samples))
        ref = file_ref(data)
        files[ref.cid] = data
        updates.append(RevealedUpdate(address, ref.cid, ref.digest, samples, order))
    return judge_round(spec, TASK_ID, round_, ROUND_BUDGET, base, state, updates, _fetcher(files), held_out)


def _fetcher(files: Mapping[str, bytes]) -> Callable[[RevealedUpdate], bytes]:
    def fetch(update: RevealedUpdate) -> bytes:
        data = files.get(update.cid)
        if data is None:
            raise UpdateRejected(RejectReason.MISSING, f"no file {update.cid}")
        if hashlib.sha256(data).digest() != update.digest:
            raise IntegrityError(f"file {update.cid} does not hash to its revealed digest")
        return data

    return fetch


# ---------------------------------------------------------------- the grid


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    """The results already in a JSON-lines file, by key; a line cut short by a crash is ignored."""
    results: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return results
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            result = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(result, dict) and "key" in result:
            results[result["key"]] = result
    return results


def _single_thread() -> None:
    torch.set_num_threads(1)


def run_grid(
    grid: Grid,
    runs_path: Path,
    *,
    workers: int = 1,
    on_result: Callable[[Cell, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every cell of ``grid`` not yet in ``runs_path`` and append each result there as it finishes.

    Parameters
    ----------
    grid : Grid
        The experiment.
    runs_path : Path
        A JSON-lines file of results; created if missing, never truncated.
    workers : int
        Cells run at once; above 1, in worker processes using one torch thread each.
    on_result : Callable[[Cell, dict], None], optional
        Called after each new result is written, e.g. to advance a progress bar.

    Returns
    -------
    list[dict]
        The results of every cell of the grid, in :meth:`Grid.cells` order.
    """
    cells = grid.cells()
    done = load_results(runs_path)
    todo = [cell for cell in cells if cell_key(cell, grid) not in done]
    runs_path.parent.mkdir(parents=True, exist_ok=True)
    with runs_path.open("a", encoding="utf-8") as out:
        # A crash can leave a partial last line; start the next result on a line of its own.
        if out.tell() and not runs_path.read_bytes().endswith(b"\n"):
            out.write("\n")

        def record(cell: Cell, result: dict[str, Any]) -> None:
            out.write(json.dumps(result, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
            done[result["key"]] = result
            if on_result is not None:
                on_result(cell, result)

        for cell, result in _results(todo, grid, workers):
            record(cell, result)
    return [done[cell_key(cell, grid)] for cell in cells]


def _results(cells: Sequence[Cell], grid: Grid, workers: int) -> Iterator[tuple[Cell, dict[str, Any]]]:
    if workers <= 1 or len(cells) <= 1:
        for cell in cells:
            yield cell, run_cell(cell, grid)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_thread) as pool:
        futures = {pool.submit(run_cell, cell, grid): cell for cell in cells}
        for future in as_completed(futures):
            yield futures[future], future.result()


# ---------------------------------------------------------------- summaries


def summarize(results: Sequence[Mapping[str, Any]], grid: Grid) -> dict[str, Any]:
    """Average each (data set, partition, pipeline, attack, fraction) over its seeds.

    ``drop_pp`` is the pipeline's own no-attack accuracy minus its accuracy under the attack, in percentage
    points, averaged over the seeds (the same seed's runs paired); ``drop_vs_absent_pp`` is the same against
    the run where the attackers stayed away, i.e. what the attack costs beyond their missing data. Reward
    shares are of the whole budget.
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for result in results:
        key = (
            result["dataset"],
            result["partition"],
            result["pipeline"],
            result["attack"],
            result["fraction"],
        )
        groups.setdefault(key, []).append(result)
    cells = []
    for (dataset, partition, pipeline, attack, fraction), runs in groups.items():
        runs = sorted(runs, key=lambda r: r["seed"])
        accuracies = [r["accuracy"] for r in runs]
        cells.append(
            {
                "dataset": dataset,
                "partition": partition,
                "pipeline": pipeline,
                "attack": attack,
                "fraction": fraction,
                "seeds": [r["seed"] for r in runs],
                "accuracy_mean": _mean(accuracies),
                "accuracy_std": float(np.std(accuracies)) if accuracies else math.nan,
                "accuracy_min": min(accuracies),
                "drop_pp": _drop_vs(groups, runs, (dataset, partition, pipeline, NO_ATTACK, 0.0)),
                "drop_vs_absent_pp": _drop_vs(groups, runs, (dataset, partition, pipeline, ABSENT, fraction)),
                "attacker_reward_share": _mean([r["attacker_reward_share"] for r in runs]),
                "honest_reward_share": _mean([r["honest_reward_share"] for r in runs]),
                "attacker_reasons": dict(
                    sorted(sum((Counter(r["attacker_reasons"]) for r in runs), Counter()).items())
                ),
                "honest_reasons": dict(
                    sorted(sum((Counter(r["honest_reasons"]) for r in runs), Counter()).items())
                ),
            }
        )
    return {"settings": grid.describe(), "cells": cells}


def _drop_vs(
    groups: Mapping[tuple, list[Mapping[str, Any]]], runs: Sequence[Mapping[str, Any]], key: tuple
) -> float | None:
    """Mean paired accuracy drop of ``runs`` against the group ``key``'s runs of the same seeds, in points."""
    reference = {r["seed"]: r["accuracy"] for r in groups.get(key, [])}
    drops = [reference[r["seed"]] - r["accuracy"] for r in runs if r["seed"] in reference]
    return 100 * _mean(drops) if drops else None


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def lookup(summary: Mapping[str, Any]) -> dict[tuple, Mapping[str, Any]]:
    """The summary's cells by (data set, partition, pipeline, attack, fraction)."""
    return {
        (c["dataset"], c["partition"], c["pipeline"], c["attack"], c["fraction"]): c for c in summary["cells"]
    }


def _pair(values: Sequence[float | None], fmt: str) -> str:
    return " / ".join(
        "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt) for v in values
    )


def markdown_tables(summary: Mapping[str, Any]) -> str:
    """Per data set, at the largest malicious fraction: the accuracy drop, then the share of the reward
    budget paid to attackers; rows attacks (each base attack followed by its variants), columns pipelines,
    each entry ``IID / non-IID``."""
    settings = summary["settings"]
    cells = lookup(summary)
    fraction = max(settings["fractions"])
    pipelines = [p["name"] for p in settings["pipelines"]]
    partitions = settings["partitions"]
    attacks = _by_family(settings["attacks"])
    label = " / ".join(_partition_label(p) for p in partitions)
    header = ["| attack | " + " | ".join(pipelines) + " |", "|---" * (len(pipelines) + 1) + "|"]

    def row(name: str, dataset: str, attack: str, fraction: float, field: str, scale: float) -> str:
        entries = [
            _pair(
                [
                    _scaled(cells.get((dataset, p, pipeline, attack, fraction), {}).get(field), scale)
                    for p in partitions
                ],
                ".1f",
            )
            for pipeline in pipelines
        ]
        return f"| {name} | " + " | ".join(entries) + " |"

    lines = []
    for dataset in settings["datasets"]:
        lines += [
            f"### {dataset}: accuracy drop (percentage points) with {fraction:.0%} attackers, {label}",
            "",
            *header,
            row("accuracy, no attack (%)", dataset, NO_ATTACK, 0.0, "accuracy_mean", 100),
            *(row(a, dataset, a, fraction, "drop_pp", 1) for a in attacks),
            "",
            f"### {dataset}: share of the reward budget paid to attackers (%) with {fraction:.0%} attackers, "
            f"{label}",
            "",
            *header,
            *(row(a, dataset, a, fraction, "attacker_reward_share", 100) for a in attacks),
            "",
        ]
    return "\n".join(lines)


def _by_family(attacks: Sequence[str]) -> list[str]:
    """``attacks`` with each base attack's variants right after it (stable otherwise)."""
    families = list(dict.fromkeys(base_name(a) for a in attacks))
    return sorted(attacks, key=lambda a: families.index(base_name(a)))


def _scaled(value: float | None, scale: float) -> float | None:
    return None if value is None else scale * value


def headline(summary: Mapping[str, Any]) -> str:
    """The worst case over every attack and variant at the largest malicious fraction, as markdown.

    One row per data set and pipeline: the worst accuracy drop IID and non-IID (percentage points, against
    the pipeline without attack), the worst non-IID drop beyond ``absent``, the attackers' largest and the
    honest contributors' smallest share of the reward budget (over both partitions), each naming its
    attack, and how many honest updates were slashed in all those cells (``absent`` included). Then, per
    attack family, the attackers' largest share over its variants with ``fedavg + screening``.
    """
    settings = summary["settings"]
    cells = lookup(summary)
    fraction = max(settings["fractions"])
    attacks = [a for a in settings["attacks"] if a != ABSENT]
    partitions = settings["partitions"]

    def value(dataset: str, partition: str, pipeline: str, attack: str, field: str) -> float | None:
        result = cells.get((dataset, partition, pipeline, attack, fraction), {}).get(field)
        return None if result is None else float(result)

    def shares(
        dataset: str, pipeline: str, names: Sequence[str], highest: bool, field: str, every: str = "attack"
    ) -> str:
        pick = max if highest else min
        per_attack = {
            a: _pick(pick, [value(dataset, p, pipeline, a, field) for p in partitions]) for a in names
        }
        return _extreme(per_attack, highest, "{:.1%}", every)

    lines = [
        f"### Headline: {fraction:.0%} attackers, worst over {len(attacks)} attacks and variants",
        "",
        "| data set | pipeline | worst drop, IID | worst drop, non-IID | non-IID beyond `absent` | "
        "attackers' reward share (max) | honest share (min) | honest updates slashed |",
        "|---" * 8 + "|",
    ]
    for dataset in settings["datasets"]:
        for pipeline in (p["name"] for p in settings["pipelines"]):
            drops = [
                _extreme({a: value(dataset, p, pipeline, a, field) for a in attacks}, True, "{:.1f}")
                for p, field in (
                    ("iid", "drop_pp"),
                    ("dirichlet", "drop_pp"),
                    ("dirichlet", "drop_vs_absent_pp"),
                )
            ]
            honest_slashed = _slashed(
                cells.get((dataset, p, pipeline, a, fraction), {}).get("honest_reasons", {})
                for p in partitions
                for a in settings["attacks"]
            )
            lines.append(
                f"| {dataset} | {pipeline} | " + " | ".join(drops) + " | "
                f"{shares(dataset, pipeline, attacks, True, 'attacker_reward_share')} | "
                f"{shares(dataset, pipeline, attacks, False, 'honest_reward_share')} | {honest_slashed} |"
            )
    if SCREENED_FEDAVG in (p["name"] for p in settings["pipelines"]):
        lines += [
            "",
            f"### Attackers' reward share (max over each family's variants), {SCREENED_FEDAVG}",
            "",
            "| attack | " + " | ".join(settings["datasets"]) + " |",
            "|---" * (len(settings["datasets"]) + 1) + "|",
        ]
        for family in dict.fromkeys(base_name(a) for a in attacks):
            members = [a for a in attacks if base_name(a) == family]
            lines.append(
                f"| {family} | "
                + " | ".join(
                    shares(d, SCREENED_FEDAVG, members, True, "attacker_reward_share", "variant")
                    for d in settings["datasets"]
                )
                + " |"
            )
    return "\n".join(lines) + "\n"


def _slashed(reason_counts: Iterable[Mapping[str, int]]) -> int:
    """How many of the counted verdicts slash: all but ``ok`` and the reasons the round judge spares."""
    # Imported here, so that the count follows the judge's set as it is when the outputs are written.
    from cotrain.protocol.round_judge import NOT_SLASHED

    spared = {"ok"} | {reason.value for reason in NOT_SLASHED}
    return sum(n for counts in reason_counts for reason, n in counts.items() if reason not in spared)


def _pick(pick: Callable[..., float], values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None and not math.isnan(v)]
    return pick(present) if present else None


def _extreme(values: Mapping[str, float | None], highest: bool, fmt: str, every: str = "attack") -> str:
    """The largest (or smallest) of ``values`` and the attack it came from: ``every attack`` (``every
    variant``, per ``every``) when all tie, ``NAME and N more`` when some do; ``-`` when there is none."""
    present = {a: v for a, v in values.items() if v is not None and not math.isnan(v)}
    if not present:
        return "-"
    worst = (max if highest else min)(present.values())
    names = [a for a, v in present.items() if v == worst]
    if len(names) == 1:
        label = names[0]
    elif len(names) == len(present):
        label = f"every {every}"
    else:
        label = f"{names[0]} and {len(names) - 1} more"
    return f"{fmt.format(worst)} ({label})"


def _partition_label(partition: str) -> str:
    return "IID" if partition == "iid" else "non-IID"


def write_outputs(results: Sequence[Mapping[str, Any]], grid: Grid, out: Path) -> dict[str, Path]:
    """Write ``results.json`` (settings, per-cell summaries), ``headline.md``, ``table.md`` and
    ``heatmap.png`` in ``out``."""
    from cotrain.experiments.heatmap import draw_heatmap

    summary = summarize(results, grid)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "results.json",
        "headline": out / "headline.md",
        "table": out / "table.md",
        "heatmap": out / "heatmap.png",
    }
    paths["json"].write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    paths["headline"].write_text(headline(summary), encoding="utf-8")
    paths["table"].write_text(markdown_tables(summary), encoding="utf-8")
    draw_heatmap(summary).save(paths["heatmap"])
    return paths


def non_iid_table(results: Sequence[Mapping[str, Any]], grid: Grid) -> str:
    """Per data set, one row per setting of ``grid`` without attackers: the held-out accuracy after the last
    round (%), mean over the seeds and the lowest, IID and Dirichlet; then the Dirichlet accuracy against the
    grid's first setting on the same seeds, as the mean difference in points and the seeds it won on."""
    accuracy = {
        (r["dataset"], r["partition"], r["pipeline"], r["seed"]): 100 * r["accuracy"]
        for r in results
        if r["attack"] == NO_ATTACK
    }
    baseline = grid.pipelines[0].name
    labels = {"iid": "IID", "dirichlet": f"Dir({grid.dirichlet_alpha})"}
    skewed = "dirichlet" in grid.partitions
    columns = [f"{labels[p]}: mean (min)" for p in grid.partitions]
    if skewed:
        columns.append(f"{labels['dirichlet']} vs {baseline}, same seeds")
    lines = []
    for dataset in grid.datasets:
        setup = grid.setups[dataset]
        epochs = {**json.loads(_spec_json(setup.spec_file))["training"], **setup.training}["local_epochs"]
        lines += [
            f"### {dataset}: {setup.model['name']}, local epochs {epochs}, {grid.rounds} rounds, "
            f"{grid.contributors} contributors, {len(grid.seeds)} seeds",
            "",
            "| setting | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for config in grid.pipelines:
            cells = []
            for partition in grid.partitions:
                values = [accuracy[(dataset, partition, config.name, seed)] for seed in grid.seeds]
                cells.append(f"{_mean(values):.1f} ({min(values):.1f})")
            if skewed:
                gains = [
                    accuracy[(dataset, "dirichlet", config.name, seed)]
                    - accuracy[(dataset, "dirichlet", baseline, seed)]
                    for seed in grid.seeds
                ]
                ahead = sum(gain > 0 for gain in gains)
                cells.append(
                    "-" if config.name == baseline else f"{_mean(gains):+.1f} ({ahead} of {len(gains)} ahead)"
                )
            lines.append(f"| {config.name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_non_iid_outputs(results: Sequence[Mapping[str, Any]], grid: Grid, out: Path) -> dict[str, Path]:
    """Write ``results.json`` (settings, per-cell summaries) and ``table.md`` (:func:`non_iid_table`) in
    ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "table": out / "table.md"}
    summary = summarize(results, grid)
    paths["json"].write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    paths["table"].write_text(non_iid_table(results, grid), encoding="utf-8")
    return paths
