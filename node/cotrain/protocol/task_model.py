"""What a task spec means to the learning code: its model, initial weights, local training and held-out data.

Every participant derives these from the spec alone, so contributors, validators and auditors agree on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, check_schema, load_builtin, split_train_test
from cotrain.learning.models import build_model
from cotrain.learning.state import model_state
from cotrain.learning.training import TrainResult, train_local
from cotrain.protocol.task_spec import TaskSpec

#: Metadata keys binding an update file to its task, round, contributor and base model.
UPDATE_BINDING = ("task_id", "round", "contributor", "base_digest", "samples")


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


def update_metadata(task_id: int, round_: int, contributor: str, base_digest: bytes, samples: int) -> dict:
    """The header metadata of an update file (all strings, as safetensors requires)."""
    return {
        "task_id": str(task_id),
        "round": str(round_),
        "contributor": contributor.lower(),
        "base_digest": "0x" + base_digest.hex(),
        "samples": str(samples),
    }


def binding_matches(metadata: Mapping[str, str], expected: Mapping[str, str]) -> bool:
    """Whether an update's metadata binds it to exactly the expected task, round, contributor and base."""
    return all(metadata.get(key) == expected[key] for key in UPDATE_BINDING if key != "samples")
