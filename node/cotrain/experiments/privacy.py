"""The leak measurement behind ``cotrain experiment privacy``: attacks on updates and models, with and
without protection, simulated in one process (no chain).

Three measurements, each seeded so that a run is reproducible:

- **Gradient inversion** (Zhu et al. 2019, "Deep Leakage from Gradients"; Geiping et al. 2020): a contributor
  takes one SGD step on one digit, so its update is ``-lr * gradient``. The attacker reads the label from the
  sign of the last layer's bias gradient (the only negative entry of ``softmax - onehot``) and optimizes a
  dummy image with Adam until its gradient's direction matches the update's (cosine matching, so the
  unknown ``lr`` and any clipping do not matter). Settings: the public update, the update after user-level
  DP (:func:`~cotrain.privacy.dp.clip_and_noise`) at several noise multipliers, and the sealed update seen
  by an observer without a reader key, who has nothing to invert.
- **Membership inference** by loss threshold (Yeom et al. 2018): members are training examples, non-members
  held-out examples of the same distribution, the score is minus the example's loss, and the AUC says how
  well it separates them (0.5: not at all). Against one contributor's update (the base model plus the
  update) and against the global model after a few FedAvg rounds, public, with DP-SGD at several epsilons,
  and sealed: a keyless observer of a sealed update has only the public base model to score with.
- **Accuracy against epsilon**: held-out accuracy of federated runs on digits and breast_cancer, without DP,
  with DP-SGD (sample level) and with user-level DP, at a grid of epsilons. DP-SGD needs other
  hyper-parameters than plain SGD (larger sampling rates, a learning rate and a number of steps that suit the
  noise; Abadi et al. 2016, De et al. 2022, Ponomareva et al. 2023 "How to DP-fy ML"), so every setting,
  the non-private one included, picks its rounds, local epochs, learning rate (and, user-level, clip) from
  the same grid by accuracy on a validation split carved out of the training split; the held-out test set
  is used only to report. The chosen recipe then trains on the whole training split once per seed. The
  search itself is not privacy-accounted (Papernot and Steinke 2022 bound what it can add).

The DP noise here comes from seeded generators so that the tables reproduce; a real node must draw fresh
noise (:func:`~cotrain.privacy.dp.fresh_generator`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from cotrain.errors import ConfigError
from cotrain.learning.aggregation import apply_delta, fedavg
from cotrain.learning.data import ArrayDataset, load_builtin, split_train_test
from cotrain.learning.evaluation import evaluate
from cotrain.learning.models import build_model
from cotrain.learning.partition import partition_iid
from cotrain.learning.state import model_state
from cotrain.learning.tensor_files import encode_update
from cotrain.learning.training import train_local
from cotrain.privacy.dp import (
    Mechanism,
    PrivacyLedger,
    clip_and_noise,
    epsilon,
    noise_for_epsilon,
    train_local_dp,
)
from cotrain.privacy.sealed import (
    SealedRejected,
    generate_reader_key,
    open_sealed,
    reader_public,
    seal,
    sealed_public_facts,
)
from cotrain.protocol.update_binding import update_metadata

DELTA = 1e-5
#: The settings' names in the tables.
PUBLIC = "public"
SEALED = "sealed (no key)"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Config:
    """The sizes of one run.

    Attributes
    ----------
    inversion_images : int
        Digits inverted, each from its own single-example update.
    inversion_steps : int
        Adam iterations of the inversion.
    noise_multipliers : tuple[float, ...]
        The user-level DP settings of the inversion.
    epsilons : tuple[float, ...]
        The DP-SGD targets of membership inference, at :data:`DELTA`.
    shard : int
        Examples per contributor in the membership runs (small, so that training overfits).
    contributors : int
        Contributors of every federated run.
    rounds, local_epochs : int
        The membership runs' shape.
    accuracy_epsilons : tuple[float, ...]
        The targets of the accuracy runs, at :data:`DELTA`, for each DP mechanism.
    seeds : tuple[int, ...]
        The accuracy runs' seeds (model, partition, batches, noise); their mean, min and max are reported.
    rounds_grid, epochs_grid, lr_grid : tuple
        The recipes every accuracy setting chooses from: rounds, local epochs and SGD learning rate.
    user_clip_grid : tuple[float, ...]
        The update clips the user-level setting also chooses from.
    seed : int
        Seeds the inversion and membership draws.
    tuning_seeds : tuple[int, ...]
        Each seeds one validation split and the tuning runs on it; a recipe's score is the mean.
    """

    inversion_images: int
    inversion_steps: int
    noise_multipliers: tuple[float, ...]
    epsilons: tuple[float, ...]
    shard: int
    contributors: int
    rounds: int
    local_epochs: int
    accuracy_epsilons: tuple[float, ...]
    seeds: tuple[int, ...]
    rounds_grid: tuple[int, ...]
    epochs_grid: tuple[int, ...]
    lr_grid: tuple[float, ...]
    user_clip_grid: tuple[float, ...]
    seed: int = 0
    tuning_seeds: tuple[int, ...] = (100, 101)


QUICK = Config(
    inversion_images=4,
    inversion_steps=150,
    noise_multipliers=(0.01, 0.1),
    epsilons=(1.0, 8.0),
    shard=60,
    contributors=2,
    rounds=2,
    local_epochs=20,
    accuracy_epsilons=(1.0, 8.0),
    seeds=(0, 1),
    rounds_grid=(2,),
    epochs_grid=(1,),
    lr_grid=(0.5, 2.0),
    user_clip_grid=(0.1,),
    tuning_seeds=(100,),
)
FULL = Config(
    inversion_images=8,
    inversion_steps=400,
    noise_multipliers=(0.01, 0.1, 0.5, 1.0),
    epsilons=(1.0, 3.0, 8.0),
    shard=80,
    contributors=4,
    rounds=3,
    local_epochs=30,
    accuracy_epsilons=(0.5, 1.0, 2.0, 3.0, 4.0, 8.0, 16.0, 32.0),
    seeds=(0, 1, 2),
    rounds_grid=(3, 10),
    epochs_grid=(1, 3),
    lr_grid=(0.25, 0.5, 1.0, 2.0),
    user_clip_grid=(0.1, 1.0),
)

INVERSION_LR = 0.1
INVERSION_CLIP = 1.0
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "digits": ("mlp", {"hidden": [64]}),
    "breast_cancer": ("logistic", {}),
}
#: From the issue: how far below the non-private accuracy (mean over seeds) each data set may fall.
TOLERANCE = {"digits": 0.05, "breast_cancer": 0.02}
VALIDATION_FRACTION = 0.2
#: The accuracy runs' batches: a quarter of the largest shard, so DP-SGD samples at rate 1/4.
STEPS_PER_EPOCH = 4
#: DP-SGD's per-example clip; where every gradient is clipped (digits), C only rescales the learning rate.
DP_CLIP = 1.0
MECHANISMS = ("sample", "user")
NO_DP = "none"
#: The membership runs overfit small shards the way a careless contributor would: Adam, small batches.
MEMBERSHIP_LR, MEMBERSHIP_BATCH = 0.01, 16


def _digits() -> tuple[ArrayDataset, ArrayDataset]:
    return split_train_test(load_builtin("digits", flat=True), test_fraction=0.25, seed=0)


def _model(dataset: ArrayDataset, name: str, seed: int) -> nn.Module:
    model, params = MODELS[name]
    return build_model(
        model, params, input_shape=dataset.input_shape, num_classes=dataset.num_classes, seed=seed
    )


# ---------------------------------------------------------------- gradient inversion


def _gradient(model: nn.Module, features: torch.Tensor, label: torch.Tensor) -> list[torch.Tensor]:
    loss = nn.functional.cross_entropy(model(features), label)
    return list(torch.autograd.grad(loss, list(model.parameters()), create_graph=True))


def single_step_update(model: nn.Module, image: np.ndarray, label: int) -> dict[str, torch.Tensor]:
    """The update of one SGD step at :data:`INVERSION_LR` on one example: ``-lr * gradient``."""
    grads = _gradient(model, torch.from_numpy(image[None]), torch.tensor([label]))
    names = [name for name, _ in model.named_parameters()]
    return {name: (-INVERSION_LR * g).detach() for name, g in zip(names, grads, strict=True)}


def label_from_update(update: Mapping[str, torch.Tensor], bias_key: str) -> int:
    """The label of a single-example update: the last bias's gradient is ``softmax - onehot``, negative only
    at the label, so the update (minus the gradient) is largest there."""
    return int(update[bias_key].argmax())


def invert(
    model: nn.Module, update: Mapping[str, torch.Tensor], shape: tuple[int, ...], steps: int, seed: int
) -> np.ndarray:
    """Reconstruct the one example behind ``update`` by matching the dummy gradient's direction to it."""
    names = [name for name, _ in model.named_parameters()]
    target = [-update[name] for name in names]
    label = torch.tensor([label_from_update(update, names[-1])])
    generator = torch.Generator().manual_seed(seed)
    dummy = torch.randn((1, *shape), generator=generator).requires_grad_(True)
    optimizer = torch.optim.Adam([dummy], lr=0.1)
    target_norm = torch.stack([(t * t).sum() for t in target]).sum().sqrt()
    for _ in range(steps):
        optimizer.zero_grad()
        grads = _gradient(model, dummy, label)
        dot = sum((g * t).sum() for g, t in zip(grads, target, strict=True))
        norm = torch.stack([(g * g).sum() for g in grads]).sum().sqrt()
        loss = 1 - dot / (norm * target_norm + 1e-12)
        loss.backward()
        optimizer.step()
    result: np.ndarray = dummy.detach().numpy()[0]
    return result


def _sealed_observer(update: Mapping[str, torch.Tensor]) -> bool:
    """Seal ``update`` to a reader and try to open it with another key; whether the observer got it."""
    metadata = update_metadata(1, 0, "0x" + "11" * 20, b"\0" * 32, 1)
    sealed = seal(encode_update(update, metadata), [reader_public(generate_reader_key())], metadata)
    try:
        binding = sealed_public_facts(sealed)["binding"]
        open_sealed(sealed, generate_reader_key(), binding, len(sealed))
    except SealedRejected:
        return False
    return True


def _match_accuracy(reconstructions: np.ndarray, originals: np.ndarray) -> float:
    distances = ((reconstructions[:, None, :] - originals[None, :, :]) ** 2).mean(axis=2)
    return float((distances.argmin(axis=1) == np.arange(len(originals))).mean())


def run_inversion(config: Config, progress: Progress) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """The inversion table and the images (``"original"`` and one row per setting) for the figure."""
    train, _ = _digits()
    rng = np.random.default_rng(config.seed)
    picks = rng.choice(len(train), size=config.inversion_images, replace=False)
    images, labels = train.features[picks], train.labels[picks]
    model = _model(train, "digits", config.seed)
    updates = [single_step_update(model, x, int(y)) for x, y in zip(images, labels, strict=True)]
    bias_key = [name for name, _ in model.named_parameters()][-1]
    settings: list[tuple[str, float | None]] = [(PUBLIC, None)]
    settings += [(f"user DP sigma={s:g}", s) for s in config.noise_multipliers]
    rows: list[dict[str, Any]] = []
    pictures: dict[str, np.ndarray] = {"original": images}
    for name, sigma in settings:
        progress(f"inversion: {name}")
        generator = torch.Generator().manual_seed(config.seed + 1)
        seen = [u if sigma is None else clip_and_noise(u, INVERSION_CLIP, sigma, generator) for u in updates]
        recon = np.stack(
            [
                invert(model, u, train.input_shape, config.inversion_steps, config.seed + i)
                for i, u in enumerate(seen)
            ]
        )
        pictures[name] = recon
        rows.append(
            {
                "setting": name,
                "noise_multiplier": sigma,
                "epsilon": None if sigma is None else epsilon([Mechanism.user(sigma)], DELTA),
                "mse": float(((recon - images) ** 2).mean()),
                "match_accuracy": _match_accuracy(recon, images),
                "labels_recovered": float(
                    np.mean([label_from_update(u, bias_key) == y for u, y in zip(seen, labels, strict=True)])
                ),
                "note": None,
            }
        )
    progress(f"inversion: {SEALED}")
    opened = any(_sealed_observer(u) for u in updates)
    rows.append(
        {
            "setting": SEALED,
            "noise_multiplier": None,
            "epsilon": None,
            "mse": None,
            "match_accuracy": None,
            "labels_recovered": None,
            "note": "opened by a keyless observer (a bug)" if opened else "no update to invert",
        }
    )
    return rows, pictures


# ---------------------------------------------------------------- membership inference and accuracy


def losses(model: nn.Module, state: Mapping[str, torch.Tensor], dataset: ArrayDataset) -> np.ndarray:
    """Each example's cross-entropy under ``state``."""
    model.load_state_dict(dict(state))
    model.eval()
    with torch.inference_mode():
        logits = model(torch.from_numpy(dataset.features))
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(dataset.labels), reduction="none")
    return loss.numpy()


def mia_auc(
    model: nn.Module, state: Mapping[str, torch.Tensor], members: ArrayDataset, others: ArrayDataset
) -> float:
    """The loss-threshold attack's AUC: members should have the lower loss."""
    scores = -np.concatenate([losses(model, state, members), losses(model, state, others)])
    truth = np.concatenate([np.ones(len(members)), np.zeros(len(others))])
    return float(roc_auc_score(truth, scores))


@dataclass(frozen=True)
class Recipe:
    """How the contributors of one federated run train.

    Attributes
    ----------
    rounds, local_epochs : int
        FedAvg rounds, and passes over its shard each contributor makes per round.
    lr : float
        The learning rate.
    clip : float
        DP-SGD: the per-example gradient clip; user-level DP: the update clip; unused without DP.
    optimizer : str
        ``"sgd"`` or ``"adam"``.
    batch_size : int, optional
        None: a :data:`STEPS_PER_EPOCH` th of the largest shard.
    """

    rounds: int
    local_epochs: int
    lr: float
    clip: float = DP_CLIP
    optimizer: str = "sgd"
    batch_size: int | None = None

    def batch(self, shards: Sequence[ArrayDataset]) -> int:
        """The batch size for ``shards``."""
        if self.batch_size is not None:
            return self.batch_size
        return math.ceil(max(len(s) for s in shards) / STEPS_PER_EPOCH)


def run_noise(mechanism: str, target: float, recipe: Recipe, shards: Sequence[ArrayDataset]) -> float:
    """The noise multiplier with which every contributor of a ``recipe`` run over ``shards`` spends at most
    ``target``: ``"user"`` noises each round's update once; ``"sample"`` is DP-SGD, whose sampling rate
    ``1 / ceil(N / batch)`` depends on the shard's size ``N``, so the shard that spends most decides."""
    if mechanism == "user":
        return noise_for_epsilon(target, DELTA, lambda sigma: [Mechanism.user(sigma)] * recipe.rounds)
    if mechanism != "sample":
        raise ConfigError(f"mechanism must be 'sample' or 'user', got {mechanism!r}")
    batch = recipe.batch(shards)

    def dp_sgd(steps_per_epoch: int) -> Callable[[float], list[Mechanism]]:
        steps = recipe.rounds * recipe.local_epochs * steps_per_epoch
        return lambda sigma: [Mechanism.sample(sigma, 1 / steps_per_epoch, steps)]

    steps_per_epoch = sorted({math.ceil(len(s) / batch) for s in shards})
    return max(noise_for_epsilon(target, DELTA, dp_sgd(n)) for n in steps_per_epoch)


@dataclass(frozen=True)
class FederatedRun:
    """What one simulated federated run produced."""

    base: dict[str, torch.Tensor]
    first_update: dict[str, torch.Tensor]
    final: dict[str, torch.Tensor]
    epsilon: float | None
    noise_multiplier: float | None


def federated(
    name: str,
    shards: Sequence[ArrayDataset],
    recipe: Recipe,
    seed: int,
    mechanism: str = NO_DP,
    target_epsilon: float | None = None,
) -> FederatedRun:
    """FedAvg over ``shards`` as ``recipe`` says, from the model ``seed`` draws.

    With ``mechanism`` ``"sample"`` (DP-SGD, :func:`~cotrain.privacy.dp.train_local_dp`) or ``"user"``
    (:func:`~cotrain.privacy.dp.clip_and_noise` on each round's update), every contributor spends at most
    ``target_epsilon`` over the whole run; the run's epsilon is the largest its contributors' ledgers record.
    """
    model = _model(shards[0], name, seed)
    base = model_state(model)
    state = base
    sigma = None
    if mechanism != NO_DP:
        if target_epsilon is None:
            raise ConfigError(f"a {mechanism!r} DP run needs a target epsilon")
        sigma = run_noise(mechanism, target_epsilon, recipe, shards)
    ledgers = [PrivacyLedger() for _ in shards]
    first_update: dict[str, torch.Tensor] = {}
    for round_ in range(recipe.rounds):
        deltas = []
        for index, shard in enumerate(shards):
            contributor_seed = seed * 1000 + round_ * 100 + index
            kwargs: dict[str, Any] = {
                "epochs": recipe.local_epochs,
                "batch_size": recipe.batch(shards),
                "lr": recipe.lr,
                "optimizer": recipe.optimizer,
                "seed": contributor_seed,
            }
            generator = torch.Generator().manual_seed(contributor_seed)
            if mechanism == "sample" and sigma is not None:
                result, _ = train_local_dp(
                    model,
                    state,
                    shard,
                    noise_multiplier=sigma,
                    max_grad_norm=recipe.clip,
                    delta=DELTA,
                    generator=generator,
                    **kwargs,
                )
                ledgers[index].record(round_, result.mechanism)
                delta = result.delta
            else:
                delta = train_local(model, state, shard, **kwargs).delta
                if mechanism == "user" and sigma is not None:
                    delta = clip_and_noise(delta, recipe.clip, sigma, generator)
                    ledgers[index].record(round_, Mechanism.user(sigma))
            deltas.append(delta)
        if round_ == 0:
            first_update = deltas[0]
        state = apply_delta(state, fedavg(deltas, [len(s) for s in shards]))
    spent = None if sigma is None else max(ledger.spent(DELTA) for ledger in ledgers)
    return FederatedRun(base, first_update, state, spent, sigma)


def _concat(parts: Sequence[ArrayDataset]) -> ArrayDataset:
    return ArrayDataset(
        np.concatenate([p.features for p in parts]),
        np.concatenate([p.labels for p in parts]),
        parts[0].classes,
    )


def run_membership(config: Config, progress: Progress) -> list[dict[str, Any]]:
    """Membership AUCs on digits, against contributor 0's first update and against the final global model,
    per setting; members are the contributors' small shards, non-members as many held-out examples."""
    train, test = _digits()
    model = _model(train, "digits", config.seed)
    rng = np.random.default_rng(config.seed)
    parts = partition_iid(len(train), config.contributors, config.seed)
    shards = [train.subset(rng.permutation(p)[: config.shard]) for p in parts]
    members = _concat(shards)
    held_out = test.subset(np.arange(len(members)))
    held_out_one = held_out.subset(np.arange(len(shards[0])))
    recipe = Recipe(
        config.rounds, config.local_epochs, MEMBERSHIP_LR, optimizer="adam", batch_size=MEMBERSHIP_BATCH
    )
    rows: list[dict[str, Any]] = []
    for target in (None, *config.epsilons):
        label = "no DP" if target is None else f"DP-SGD eps={target:g}"
        progress(f"membership: {label}")
        mechanism = NO_DP if target is None else "sample"
        run = federated("digits", shards, recipe, config.seed, mechanism, target)
        rows.append(
            {
                "setting": label,
                "target_epsilon": target,
                "epsilon": run.epsilon,
                "noise_multiplier": run.noise_multiplier,
                "update_auc": mia_auc(
                    model, apply_delta(run.base, run.first_update), shards[0], held_out_one
                ),
                "global_auc": mia_auc(model, run.final, members, held_out),
                "global_accuracy": evaluate(model, run.final, test).accuracy,
                "note": None,
            }
        )
    public = rows[0]
    rows.append(
        {
            **public,
            "setting": SEALED,
            "target_epsilon": None,
            "update_auc": mia_auc(model, run.base, shards[0], held_out_one),
            "note": "update: scored with the public base model, all a keyless observer has; "
            "global: models stay public under sealing, so as without protection",
        }
    )
    return rows


def _label(mechanism: str, target: float | None) -> str:
    if mechanism == NO_DP:
        return "no DP"
    return f"{'DP-SGD' if mechanism == 'sample' else 'user DP'} eps={target:g}"


def _iid_shards(dataset: ArrayDataset, contributors: int, seed: int) -> list[ArrayDataset]:
    return [dataset.subset(p) for p in partition_iid(len(dataset), contributors, seed)]


def recipes(config: Config, mechanism: str) -> list[Recipe]:
    """The grid a setting chooses its recipe from, fewest rounds and epochs first (a tie keeps the
    first)."""
    clips = config.user_clip_grid if mechanism == "user" else (DP_CLIP,)
    return [
        Recipe(rounds, epochs, lr, clip)
        for rounds in sorted(config.rounds_grid)
        for epochs in sorted(config.epochs_grid)
        for lr in config.lr_grid
        for clip in clips
    ]


def tune(
    name: str, train: ArrayDataset, config: Config, mechanism: str, target: float | None
) -> tuple[Recipe, float]:
    """The recipe of :func:`recipes` with the best mean validation accuracy over ``config.tuning_seeds``,
    and that accuracy: each seed splits ``train`` into a training and a validation part
    (:data:`VALIDATION_FRACTION`, stratified) and runs every recipe on the training part."""
    splits = []
    for seed in config.tuning_seeds:
        fit, validation = split_train_test(train, test_fraction=VALIDATION_FRACTION, seed=seed)
        splits.append(
            (seed, _iid_shards(fit, config.contributors, seed), validation, _model(fit, name, seed))
        )
    best: tuple[Recipe, float] | None = None
    for recipe in recipes(config, mechanism):
        scores = []
        for seed, shards, validation, model in splits:
            run = federated(name, shards, recipe, seed, mechanism, target)
            scores.append(evaluate(model, run.final, validation).accuracy)
        accuracy = float(np.mean(scores))
        if best is None or accuracy > best[1]:
            best = (recipe, accuracy)
    if best is None:
        raise ConfigError("the recipe grid is empty")
    return best


def run_accuracy(config: Config, progress: Progress) -> list[dict[str, Any]]:
    """Held-out accuracy of federated runs on the whole training split, per data set and setting: each
    setting's recipe tuned on validation (:func:`tune`), then run once per seed of ``config.seeds``."""
    rows: list[dict[str, Any]] = []
    settings: list[tuple[str, float | None]] = [(NO_DP, None)]
    settings += [(m, e) for m in MECHANISMS for e in config.accuracy_epsilons]
    for name in MODELS:
        train, test = split_train_test(load_builtin(name, flat=True), test_fraction=0.25, seed=0)
        for mechanism, target in settings:
            progress(f"accuracy: {name}, {_label(mechanism, target)}")
            recipe, validation = tune(name, train, config, mechanism, target)
            accuracies: list[float] = []
            spent: list[float] = []
            sigma = None
            for seed in config.seeds:
                shards = _iid_shards(train, config.contributors, seed)
                run = federated(name, shards, recipe, seed, mechanism, target)
                accuracies.append(evaluate(_model(train, name, seed), run.final, test).accuracy)
                if run.epsilon is not None:
                    spent.append(run.epsilon)
                sigma = run.noise_multiplier
            rows.append(
                {
                    "dataset": name,
                    "mechanism": mechanism,
                    "setting": _label(mechanism, target),
                    "target_epsilon": target,
                    "epsilon": max(spent) if spent else None,
                    "noise_multiplier": sigma,
                    "recipe": asdict(recipe),
                    "batch_size": recipe.batch(shards),
                    "validation_accuracy": validation,
                    "accuracies": accuracies,
                    "accuracy": float(np.mean(accuracies)),
                    "accuracy_min": min(accuracies),
                    "accuracy_max": max(accuracies),
                }
            )
    return rows


def smallest_epsilon_meeting(
    baseline: float, tolerance: float, by_epsilon: Mapping[float, float]
) -> float | None:
    """The smallest epsilon of ``by_epsilon`` (epsilon: accuracy) from which on every accuracy of the grid is
    at least ``baseline - tolerance``; None if the largest epsilon's already is not."""
    # Accuracies are ratios of counts: a hair of slack keeps float rounding from deciding a tie.
    floor = baseline - tolerance - 1e-9
    smallest = None
    for eps in sorted(by_epsilon, reverse=True):
        if by_epsilon[eps] < floor:
            break
        smallest = eps
    return smallest


def targets(accuracy: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per data set and DP mechanism: the non-private mean accuracy, the :data:`TOLERANCE` below it, and the
    smallest grid epsilon meeting it (:func:`smallest_epsilon_meeting`)."""
    summary: list[dict[str, Any]] = []
    for name in MODELS:
        rows = [row for row in accuracy if row["dataset"] == name]
        baseline = next(row["accuracy"] for row in rows if row["mechanism"] == NO_DP)
        for mechanism in MECHANISMS:
            by_epsilon = {
                row["target_epsilon"]: row["accuracy"] for row in rows if row["mechanism"] == mechanism
            }
            summary.append(
                {
                    "dataset": name,
                    "mechanism": mechanism,
                    "baseline": baseline,
                    "tolerance": TOLERANCE[name],
                    "smallest_epsilon": smallest_epsilon_meeting(baseline, TOLERANCE[name], by_epsilon),
                    "largest_epsilon": max(by_epsilon),
                }
            )
    return summary


# ---------------------------------------------------------------- outputs


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)


def markdown_tables(results: Mapping[str, Any]) -> str:
    """The three tables of a run, and the epsilons meeting the accuracy targets, in Markdown."""
    lines = [
        "### Gradient inversion of one single-example update (digits, mlp)",
        "",
        "| setting | epsilon (one round) | MSE | best-match accuracy | labels recovered | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["inversion"]:
        lines.append(
            f"| {row['setting']} | {_fmt(row['epsilon'], 1)} | {_fmt(row['mse'])} | "
            f"{_fmt(row['match_accuracy'], 2)} | {_fmt(row['labels_recovered'], 2)} | {row['note'] or ''} |"
        )
    lines += [
        "",
        "### Membership inference by loss threshold, AUC (digits, mlp, small shards)",
        "",
        "| setting | epsilon | update AUC | global model AUC | global accuracy | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in results["membership"]:
        lines.append(
            f"| {row['setting']} | {_fmt(row['epsilon'], 2)} | {_fmt(row['update_auc'])} | "
            f"{_fmt(row['global_auc'])} | {_fmt(row['global_accuracy'])} | {row['note'] or ''} |"
        )
    seeds = len(results["config"]["seeds"])
    lines += [
        "",
        f"### Held-out accuracy against epsilon (federated, whole training split, {seeds} seeds)",
        "",
        "Each setting's recipe (rounds x local epochs, SGD learning rate, clip) is the best of the same grid "
        "on a validation split of the training split; accuracy is on the held-out test split, mean and range "
        "over the seeds.",
        "",
        "| data set | setting | epsilon | noise multiplier | rounds x epochs | lr | clip | validation "
        "| accuracy | min - max |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["accuracy"]:
        recipe = row["recipe"]
        clip = "-" if row["mechanism"] == NO_DP else _fmt(recipe["clip"], 2)
        lines.append(
            f"| {row['dataset']} | {row['setting']} | {_fmt(row['epsilon'], 2)} | "
            f"{_fmt(row['noise_multiplier'], 2)} | {recipe['rounds']} x {recipe['local_epochs']} | "
            f"{recipe['lr']:g} | {clip} | {_fmt(row['validation_accuracy'])} | {_fmt(row['accuracy'])} | "
            f"{_fmt(row['accuracy_min'])} - {_fmt(row['accuracy_max'])} |"
        )
    lines += [
        "",
        "Smallest grid epsilon whose mean accuracy, and that of every larger grid epsilon, is within the "
        "target of the non-private mean:",
        "",
    ]
    for row in results["targets"]:
        name = "DP-SGD" if row["mechanism"] == "sample" else "user DP"
        met = row["smallest_epsilon"]
        verdict = (
            f"epsilon {met:g}" if met is not None else f"not met up to epsilon {row['largest_epsilon']:g}"
        )
        lines.append(
            f"- {row['dataset']}, {name} (within {row['tolerance'] * 100:g} points of "
            f"{_fmt(row['baseline'])}): {verdict}"
        )
    return "\n".join(lines) + "\n"


def draw_inversion(pictures: Mapping[str, np.ndarray], scale: int = 8) -> Any:
    """Originals in the top row, each setting's reconstructions below, 8x8 images upscaled."""
    from PIL import Image, ImageDraw

    label_width, cell = 150, 8 * scale + 4
    rows = list(pictures.items())
    columns = len(rows[0][1])
    canvas = Image.new("L", (label_width + columns * cell, len(rows) * cell), 255)
    draw = ImageDraw.Draw(canvas)
    for r, (name, images) in enumerate(rows):
        draw.text((4, r * cell + cell // 2 - 5), name, fill=0)
        for c, image in enumerate(images):
            pixels = image.reshape(8, 8)
            low, high = float(pixels.min()), float(pixels.max())
            # Each image spans black to white: digits ink is what matters, not the standardized scale.
            gray = (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
            tile = Image.fromarray((255 - gray * 255).astype(np.uint8)).resize(
                (8 * scale, 8 * scale), Image.Resampling.NEAREST
            )
            canvas.paste(tile, (label_width + c * cell + 2, r * cell + 2))
    return canvas


def step_count(config: Config) -> int:
    """How many times :func:`run` reports progress: once per setting of each measurement."""
    accuracy = len(MODELS) * (1 + len(MECHANISMS) * len(config.accuracy_epsilons))
    return (len(config.noise_multipliers) + 2) + (len(config.epsilons) + 1) + accuracy


def run(config: Config, out: Path, progress: Progress | None = None) -> dict[str, Path]:
    """Run the three measurements; write ``results.json``, ``table.md`` and ``inversion.png`` in ``out``."""
    report = progress or (lambda _: None)
    inversion, pictures = run_inversion(config, report)
    membership = run_membership(config, report)
    accuracy = run_accuracy(config, report)
    results = {
        "config": asdict(config),
        "delta": DELTA,
        "inversion": inversion,
        "membership": membership,
        "accuracy": accuracy,
        "targets": targets(accuracy),
    }
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "table": out / "table.md", "figure": out / "inversion.png"}
    paths["json"].write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    paths["table"].write_text(markdown_tables(results), encoding="utf-8")
    draw_inversion(pictures).save(paths["figure"])
    return paths
