"""What a task spec means to the learning code: its model, initial weights, local training and held-out data.

Every participant derives these from the spec alone, so contributors, validators and auditors agree on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, check_schema, load_builtin, split_train_test
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.learning.device import CPU
from cotrain.learning.models import build_layers, build_model
from cotrain.learning.state import model_state
from cotrain.learning.training import TrainResult, train_local
from cotrain.privacy.dp import DPTrainResult, Mechanism, clip_and_noise, fresh_generator, train_local_dp
from cotrain.protocol.task_spec import TaskSpec


def task_model(spec: TaskSpec) -> nn.Module:
    """The spec's model (its ``model.layers``, or the preset ``model.name``), with the initial weights drawn
    from ``training.seed``."""
    shape, classes, seed = tuple(spec.data.input_shape), spec.data.num_classes, spec.training.seed
    if spec.model.layers is not None:
        return build_layers(spec.model.layers, input_shape=shape, num_classes=classes, seed=seed)
    return build_model(
        spec.model.name, dict(spec.model.params), input_shape=shape, num_classes=classes, seed=seed
    )


def initial_state(spec: TaskSpec) -> dict[str, torch.Tensor]:
    """The round-0 weights a task owner stores (as a model file) when posting the task."""
    return model_state(task_model(spec))


def train_round(
    spec: TaskSpec,
    base_state: Mapping[str, torch.Tensor],
    data: ArrayDataset,
    round_: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    device: torch.device = CPU,
) -> TrainResult:
    """Train on ``data`` as every contributor of the task does in ``round_``: the spec's model and
    hyper-parameters (FedProx's term when ``training.proximal_mu`` is set, the class-weighted loss when
    ``training.class_weights`` is), seeded with ``training.seed + round_``, on ``device``."""
    model = task_model(spec)
    return train_local(
        model,
        base_state,
        data,
        **_hyperparameters(spec, round_),
        proximal_mu=spec.training.proximal_mu or 0.0,
        class_weights=spec.training.class_weights,
        progress=progress,
        device=device,
    )


def _hyperparameters(spec: TaskSpec, round_: int) -> dict[str, Any]:
    training = spec.training
    return {
        "epochs": training.local_epochs,
        "batch_size": training.batch_size,
        "lr": training.lr,
        "optimizer": training.optimizer,
        "seed": training.seed + round_,
    }


def round_mechanism(spec: TaskSpec, samples: int) -> Mechanism:
    """The privacy mechanism one round of the task is for a contributor holding ``samples`` examples, as
    Opacus's accountant counts it: "user" one Gaussian release; "sample" ``local_epochs * ceil(N / B)``
    steps sampled at rate ``1 / ceil(N / B)``.

    Raises
    ------
    ConfigError
        If the spec has no ``privacy.dp`` or ``samples`` is below 1.
    """
    if spec.privacy is None or spec.privacy.dp is None:
        raise ConfigError(f"task {spec.name!r} sets no privacy.dp")
    if samples < 1:
        raise ConfigError("a contributor needs at least one example")
    dp = spec.privacy.dp
    if dp.mechanism == "user":
        return Mechanism.user(dp.noise_multiplier)
    batches = math.ceil(samples / spec.training.batch_size)
    return Mechanism.sample(dp.noise_multiplier, 1 / batches, spec.training.local_epochs * batches)


def train_private_round(
    spec: TaskSpec,
    base_state: Mapping[str, torch.Tensor],
    data: ArrayDataset,
    round_: int,
    *,
    progress: Callable[[int, int], None] | None = None,
    device: torch.device = CPU,
) -> DPTrainResult:
    """:func:`train_round` under the spec's ``privacy.dp``: DP-SGD (mechanism "sample") or the trained
    update clipped and noised (mechanism "user"), with noise from the operating system's randomness.

    Raises
    ------
    ConfigError
        If the spec has no ``privacy.dp``, or as :func:`train_round`.
    """
    mechanism = round_mechanism(spec, len(data))
    dp = spec.privacy.dp if spec.privacy is not None else None
    assert dp is not None
    if dp.mechanism == "user":
        result = train_round(spec, base_state, data, round_, progress=progress, device=device)
        noised = clip_and_noise(result.delta, dp.clip_norm, dp.noise_multiplier, fresh_generator())
        return DPTrainResult(delta=noised, samples=result.samples, loss=result.loss, mechanism=mechanism)
    trained, _ = train_local_dp(
        task_model(spec),
        base_state,
        data,
        **_hyperparameters(spec, round_),
        noise_multiplier=dp.noise_multiplier,
        max_grad_norm=dp.clip_norm,
        delta=dp.delta,
        progress=progress,
        device=device,
    )
    if trained.mechanism != mechanism:
        raise ConfigError(f"DP-SGD ran {trained.mechanism}, not the accounted {mechanism}")
    return trained


def builtin_split(spec: TaskSpec) -> tuple[ArrayDataset, ArrayDataset]:
    """The (train, held-out) split of the spec's built-in data set, identical on every machine."""
    if spec.data.builtin is None:
        raise ConfigError(f"task {spec.name!r} names no built-in data set; contributors bring their own data")
    dataset = load_builtin(spec.data.builtin, flat=len(spec.data.input_shape) == 1)
    check_schema(dataset, input_shape=tuple(spec.data.input_shape), num_classes=spec.data.num_classes)
    split = spec.data.validation
    # validate_spec requires both with a built-in data set.
    assert split.test_fraction is not None and split.split_seed is not None
    return split_train_test(dataset, test_fraction=split.test_fraction, seed=split.split_seed)


def pinned_held_out_digest(spec: TaskSpec) -> bytes:
    """The digest every validator's and auditor's held-out set must have: ``data.validation.held_out_digest``,
    or, when the spec leaves it out, the digest of the built-in split (:func:`builtin_split`)."""
    pinned = spec.data.validation.held_out_digest
    return pinned if pinned is not None else dataset_digest(builtin_split(spec)[1])


def check_held_out(spec: TaskSpec, held_out: ArrayDataset, source: str) -> ArrayDataset:
    """Return ``held_out`` if its digest is the one ``spec`` pins (:func:`pinned_held_out_digest`).

    Raises
    ------
    ConfigError
        In one line naming ``source`` (what the set was loaded from), its digest and the pinned one.
    """
    have, want = dataset_digest(held_out), pinned_held_out_digest(spec)
    if have != want:
        raise ConfigError(
            f"held-out set {source} has digest 0x{have.hex()}, but the task's spec pins 0x{want.hex()}: "
            "every validator must use the same held-out set; get the task owner's"
        )
    return held_out


def check_held_out_pin(spec: TaskSpec) -> None:
    """Refuse to post a spec whose held-out set is not pinned, or whose pin is not its built-in split's.

    Raises
    ------
    ConfigError
        If the spec has no built-in data set and no ``held_out_digest`` (possible only with
        ``validate_spec(..., pinning_held_out=True)``), or a built-in set and another split's digest.
    """
    pinned = spec.data.validation.held_out_digest
    if spec.data.builtin is None and pinned is None:
        raise ConfigError(
            f"task {spec.name!r} has no built-in data set and does not pin its held-out set: "
            "set data.validation.held_out_digest (`cotrain task post --held-out FILE` computes it)"
        )
    if spec.data.builtin is None or pinned is None:
        return
    split = dataset_digest(builtin_split(spec)[1])
    if pinned != split:
        raise ConfigError(
            f"data.validation.held_out_digest 0x{pinned.hex()} is not the digest of the {spec.data.builtin} "
            f"split the spec names (0x{split.hex()}); correct it or leave it out"
        )
