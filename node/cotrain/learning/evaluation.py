"""Measuring a model state on a data set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.metrics import compute_metrics
from cotrain.learning.state import load_state


@dataclass(frozen=True)
class Metrics:
    """How well a state fits a data set.

    Attributes
    ----------
    accuracy : float
        The fraction of examples whose highest logit is the true class (ties go to the lower index).
    loss : float
        The mean cross-entropy.
    samples : int
        The number of examples measured.
    extra : dict[str, float]
        The task's further metrics (``data.validation.metrics``, :mod:`cotrain.learning.metrics`), by name.
    """

    accuracy: float
    loss: float
    samples: int
    extra: dict[str, float] = field(default_factory=dict)


def evaluate(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    dataset: ArrayDataset,
    *,
    batch_size: int = 1024,
    metrics: Sequence[str] = (),
) -> Metrics:
    """Load ``state`` into ``model`` and measure accuracy, mean cross-entropy and ``metrics`` on ``dataset``.

    Parameters
    ----------
    model : torch.nn.Module
        A registry model of the state's architecture; its weights are overwritten with ``state``.
    state : Mapping[str, torch.Tensor]
        The weights to measure.
    dataset : ArrayDataset
        The examples, typically a held-out test set.
    batch_size : int
        Examples per forward pass; it bounds memory and does not change the result beyond rounding.
    metrics : Sequence[str]
        Further metrics by name, as ``data.validation.metrics`` writes them (``auroc``, ``top_k_accuracy:3``).

    Raises
    ------
    ConfigError
        If ``dataset`` is empty, or a metric cannot be computed on it.
    IntegrityError
        If ``state`` does not fit ``model``.
    """
    if len(dataset) == 0:
        raise ConfigError("cannot evaluate on an empty data set")
    load_state(model, state)
    model.eval()
    features = torch.from_numpy(dataset.features)
    labels = torch.from_numpy(dataset.labels)
    loss_sum = 0.0
    correct = 0
    log_probs = []
    with torch.inference_mode():
        for begin in range(0, len(dataset), batch_size):
            logits = model(features[begin : begin + batch_size])
            target = labels[begin : begin + batch_size]
            loss_sum += nn.functional.cross_entropy(logits, target, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == target).sum().item())
            if metrics:
                log_probs.append(torch.log_softmax(logits.double(), dim=1).numpy())
    extra = compute_metrics(metrics, dataset.labels, np.concatenate(log_probs)) if metrics else {}
    return Metrics(
        accuracy=correct / len(dataset), loss=loss_sum / len(dataset), samples=len(dataset), extra=extra
    )
