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
- **Accuracy against epsilon**: the same federated runs' held-out accuracy, on digits and breast_cancer.

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

from cotrain.learning.aggregation import apply_delta, fedavg
from cotrain.learning.data import ArrayDataset, load_builtin, split_train_test
from cotrain.learning.evaluation import evaluate
from cotrain.learning.models import build_model
from cotrain.learning.partition import partition_iid
from cotrain.learning.state import model_state
from cotrain.learning.tensor_files import encode_update
from cotrain.learning.training import train_local
from cotrain.privacy.dp import Mechanism, clip_and_noise, epsilon, train_local_dp
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
        The DP-SGD targets of membership inference and accuracy, at :data:`DELTA`.
    shard : int
        Examples per contributor in the membership runs (small, so that training overfits).
    contributors, rounds, local_epochs : int
        The federated runs' shape.
    seed : int
        Seeds every draw.
    """

    inversion_images: int
    inversion_steps: int
    noise_multipliers: tuple[float, ...]
    epsilons: tuple[float, ...]
    shard: int
    contributors: int
    rounds: int
    local_epochs: int
    seed: int = 0


QUICK = Config(4, 150, (0.01, 0.1), (1.0, 8.0), 60, 2, 2, 20)
FULL = Config(8, 400, (0.01, 0.1, 0.5, 1.0), (1.0, 3.0, 8.0), 80, 4, 3, 30)

INVERSION_LR = 0.1
INVERSION_CLIP = 1.0
MODELS: dict[str, tuple[str, dict[str, Any], int]] = {
    # data set: (model, params, batch size)
    "digits": ("mlp", {"hidden": [64]}, 16),
    "breast_cancer": ("logistic", {}, 16),
}
TRAIN_LR = 0.01
DP_CLIP = 1.0


def _digits() -> tuple[ArrayDataset, ArrayDataset]:
    return split_train_test(load_builtin("digits", flat=True), test_fraction=0.25, seed=0)


def _model(dataset: ArrayDataset, name: str, seed: int) -> nn.Module:
    model, params, _ = MODELS[name]
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


def noise_for_epsilon(target: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier (to 1%) whose DP-SGD run of ``steps`` at ``sample_rate`` spends at most
    ``target`` at :data:`DELTA`."""
    low, high = 0.3, 64.0
    while high / low > 1.01:
        middle = math.sqrt(low * high)
        if epsilon([Mechanism.sample(middle, sample_rate, steps)], DELTA) > target:
            low = middle
        else:
            high = middle
    return high


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
    config: Config,
    target_epsilon: float | None,
    local_epochs: int,
) -> FederatedRun:
    """FedAvg over ``shards`` for ``config.rounds`` rounds, with DP-SGD spending ``target_epsilon`` over
    the whole run for each contributor when given."""
    _, _, batch_size = MODELS[name]
    model = _model(shards[0], name, config.seed)
    base = model_state(model)
    state = base
    sigma = None
    spent = None
    if target_epsilon is not None:
        per_epoch = max(math.ceil(len(s) / batch_size) for s in shards)
        sample_rate = 1 / per_epoch
        sigma = noise_for_epsilon(target_epsilon, sample_rate, config.rounds * local_epochs * per_epoch)
        spent = epsilon(
            [Mechanism.sample(sigma, sample_rate, config.rounds * local_epochs * per_epoch)], DELTA
        )
    first_update: dict[str, torch.Tensor] = {}
    for round_ in range(config.rounds):
        deltas = []
        for index, shard in enumerate(shards):
            seed = config.seed * 1000 + round_ * 100 + index
            kwargs: dict[str, Any] = {
                "epochs": local_epochs,
                "batch_size": batch_size,
                "lr": TRAIN_LR,
                "optimizer": "adam",
                "seed": seed,
            }
            if sigma is None:
                result = train_local(model, state, shard, **kwargs)
            else:
                result, _ = train_local_dp(
                    model,
                    state,
                    shard,
                    noise_multiplier=sigma,
                    max_grad_norm=DP_CLIP,
                    delta=DELTA,
                    generator=torch.Generator().manual_seed(seed),
                    **kwargs,
                )
            deltas.append(result.delta)
        if round_ == 0:
            first_update = deltas[0]
        state = apply_delta(state, fedavg(deltas, [len(s) for s in shards]))
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
    rows: list[dict[str, Any]] = []
    for target in (None, *config.epsilons):
        label = "no DP" if target is None else f"DP-SGD eps={target:g}"
        progress(f"membership: {label}")
        run = federated("digits", shards, config, target, local_epochs=config.local_epochs)
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


def run_accuracy(config: Config, progress: Progress) -> list[dict[str, Any]]:
    """Held-out accuracy of federated runs on the whole training split, per data set and setting."""
    rows: list[dict[str, Any]] = []
    for name in MODELS:
        train, test = split_train_test(load_builtin(name, flat=True), test_fraction=0.25, seed=0)
        model = _model(train, name, config.seed)
        shards = [train.subset(p) for p in partition_iid(len(train), config.contributors, config.seed)]
        for target in (None, *config.epsilons):
            label = "no DP" if target is None else f"DP-SGD eps={target:g}"
            progress(f"accuracy: {name}, {label}")
            run = federated(name, shards, config, target, local_epochs=1)
            rows.append(
                {
                    "dataset": name,
                    "setting": label,
                    "target_epsilon": target,
                    "epsilon": run.epsilon,
                    "noise_multiplier": run.noise_multiplier,
                    "accuracy": evaluate(model, run.final, test).accuracy,
                }
            )
    return rows


# ---------------------------------------------------------------- outputs


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.3g}"
    return str(value)


def markdown_tables(results: Mapping[str, Any]) -> str:
    """The three tables of a run, in Markdown."""
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
    lines += [
        "",
        "### Held-out accuracy against epsilon (federated, whole training split)",
        "",
        "| data set | setting | epsilon | noise multiplier | accuracy |",
        "|---|---|---|---|---|",
    ]
    for row in results["accuracy"]:
        lines.append(
            f"| {row['dataset']} | {row['setting']} | {_fmt(row['epsilon'], 2)} | "
            f"{_fmt(row['noise_multiplier'], 2)} | {_fmt(row['accuracy'])} |"
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
    return (len(config.noise_multipliers) + 2) + 3 * (len(config.epsilons) + 1)


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
    }
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "table": out / "table.md", "figure": out / "inversion.png"}
    paths["json"].write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    paths["table"].write_text(markdown_tables(results), encoding="utf-8")
    draw_inversion(pictures).save(paths["figure"])
    return paths
