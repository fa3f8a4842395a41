"""What a task spec means to the learning code: its model, initial weights, local training and held-out data.

Every participant derives these from the spec alone, so contributors, validators and auditors agree on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, check_schema, load_builtin, split_train_test
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.learning.models import build_model
from cotrain.learning.state import model_state
from cotrain.learning.training import TrainResult, train_local
from cotrain.protocol.task_spec import TaskSpec


def task_model(spec: TaskSpec) -> nn.Module:
    """The spec's registry model, with the initial weights drawn from ``training.seed``."""
    return build_model(
        spec.model.name,
        dict(spec.model.params),
        input_shape=tuple(spec.data.input_shape),
        num_classes=spec.data.num_classes,
        seed=spec.training.seed,
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
) -> TrainResult:
    """Train on ``data`` as every contributor of the task does in ``round_``: the spec's model and
    hyper-parameters, seeded with ``training.seed + round_``."""
    return train_local(
        task_model(spec),
        base_state,
        data,
        epochs=spec.training.local_epochs,
        batch_size=spec.training.batch_size,
        lr=spec.training.lr,
        optimizer=spec.training.optimizer,
        seed=spec.training.seed + round_,
        progress=progress,
    )


def builtin_split(spec: TaskSpec) -> tuple[ArrayDataset, ArrayDataset]:
    """The (train, held-out) split of the spec's built-in data set, identical on every machine."""
    if spec.data.builtin is None:
        raise ConfigError(f"task {spec.name!r} names no built-in data set; contributors bring their own data")
    dataset = load_builtin(spec.data.builtin, flat=len(spec.data.input_shape) == 1)
    check_schema(dataset, input_shape=tuple(spec.data.input_shape), num_classes=spec.data.num_classes)
    split = spec.data.validation
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
