"""Advisory held-out metrics beyond accuracy: ranking quality for rare positives (AUROC, average precision,
recall at a false-positive rate) and language-model quality (perplexity, top-k accuracy).

A task names the ones it wants in ``data.validation.metrics`` as text: ``auroc``, ``auprc``,
``recall_at_fpr:F`` (``0 < F < 1``), ``perplexity``, ``top_k_accuracy:K`` (``K >= 1``). Validators and
auditors compute them on the held-out set beside the record, never in it: they come from torch forward
passes, whose last bits differ between machines. The functions here are pure numpy on the model's
log-probabilities; the binary ones score the class of index 1 as the positive class (``classes: [legit,
fraud]`` makes ``fraud`` positive).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cotrain.errors import ConfigError

#: Metric names, and whether each takes a parameter after a colon.
METRIC_PARAMETERS: dict[str, str | None] = {
    "auroc": None,
    "auprc": None,
    "recall_at_fpr": "a false-positive rate between 0 and 1, e.g. recall_at_fpr:0.01",
    "perplexity": None,
    "top_k_accuracy": "a whole number of guesses of at least 1, e.g. top_k_accuracy:3",
}
#: The metrics that rank one positive class against the other: they need exactly two classes.
BINARY_METRICS = frozenset({"auroc", "auprc", "recall_at_fpr"})


@dataclass(frozen=True)
class MetricName:
    """A parsed metric: its ``name`` and its parameter (``None``, a rate, or a count)."""

    name: str
    parameter: float | int | None = None


def parse_metric(text: str) -> MetricName:
    """Read ``auroc``, ``recall_at_fpr:0.01``, ``top_k_accuracy:3``, ...

    Raises
    ------
    ConfigError
        In one line, for an unknown name, a missing or surplus parameter, or one out of range.
    """
    name, colon, value = text.partition(":")
    if name not in METRIC_PARAMETERS:
        raise ConfigError(f"unknown metric {name!r}; use one of {', '.join(METRIC_PARAMETERS)}")
    wants = METRIC_PARAMETERS[name]
    if wants is None:
        if colon:
            raise ConfigError(f"metric {name!r} takes no parameter; write just {name}")
        return MetricName(name)
    if name == "top_k_accuracy":
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"metric {text!r}: {name} needs {wants}")
        return MetricName(name, int(value))
    try:
        rate = float(value)
    except ValueError:
        rate = math.nan
    if not 0 < rate < 1:
        raise ConfigError(f"metric {text!r}: {name} needs {wants}")
    return MetricName(name, rate)


def _binary(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels as booleans and scores as float64, checked: both classes present, one score per label."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise ConfigError(f"need one score per label, got shapes {labels.shape} and {scores.shape}")
    positive = labels == 1
    if positive.all() or not positive.any():
        raise ConfigError("ranking metrics need both classes among the held-out labels")
    return positive, scores


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve's points (false-positive rates, true-positive rates), one per distinct score taken as
    the threshold (highest first), starting at (0, 0). Tied scores enter together."""
    positive, scores = _binary(labels, scores)
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    ends = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # the last index of each tied block
    true_positives = np.cumsum(hits)[ends]
    false_positives = ends + 1 - true_positives
    fpr = np.r_[0.0, false_positives / (~positive).sum()]
    tpr = np.r_[0.0, true_positives / positive.sum()]
    return fpr, tpr


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """The area under the ROC curve: the chance that a random positive scores above a random negative,
    ties counting half (Hanley and McNeil 1982)."""
    fpr, tpr = roc_points(labels, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def auprc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: ``sum_n (R_n - R_{n-1}) * P_n`` over the distinct score thresholds, highest first
    (the step-wise area under the precision-recall curve, as scikit-learn's ``average_precision_score``)."""
    fpr, tpr = roc_points(labels, scores)
    positive = np.asarray(labels) == 1
    true_positives = tpr[1:] * positive.sum()
    predicted = true_positives + fpr[1:] * (~positive).sum()
    precision = true_positives / predicted
    return float(np.sum(np.diff(tpr) * precision))


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float) -> float:
    """The highest recall (true-positive rate) of a threshold whose false-positive rate is at most ``fpr``:
    the frauds caught when one may flag at most that share of the legitimate transactions."""
    rates, recalls = roc_points(labels, scores)
    return float(recalls[rates <= fpr].max())


def perplexity(labels: np.ndarray, log_probs: np.ndarray) -> float:
    """``exp`` of the mean negative log-probability of the true class: the number of equally likely words
    the model is as unsure as (lower is better; a uniform guess over ``C`` classes scores ``C``)."""
    picked = np.asarray(log_probs, dtype=np.float64)[np.arange(len(labels)), labels]
    return float(np.exp(-picked.mean()))


def top_k_accuracy(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """The fraction of examples whose true class is among the ``k`` highest scores; a class tied with the
    ``k``-th counts as among them (only the classes scoring strictly higher push it out)."""
    scores = np.asarray(scores, dtype=np.float64)
    true = scores[np.arange(len(labels)), labels]
    higher = (scores > true[:, None]).sum(axis=1)
    return float((higher < k).mean())


def compute_metrics(names: Sequence[str], labels: np.ndarray, log_probs: np.ndarray) -> dict[str, float]:
    """Every metric in ``names`` (as a spec writes them) on ``log_probs`` ``(N, classes)``, keyed by name.

    Raises
    ------
    ConfigError
        For a bad name, or a ranking metric on held-out labels of one class only.
    """
    results = {}
    for text in names:
        metric = parse_metric(text)
        if metric.name in BINARY_METRICS:
            scores = log_probs[:, 1] - log_probs[:, 0]  # log-odds of the positive class, monotone in p
            if metric.name == "auroc":
                results[text] = auroc(labels, scores)
            elif metric.name == "auprc":
                results[text] = auprc(labels, scores)
            else:
                results[text] = recall_at_fpr(labels, scores, float(metric.parameter or 0.0))
        elif metric.name == "perplexity":
            results[text] = perplexity(labels, log_probs)
        else:
            results[text] = top_k_accuracy(labels, log_probs, int(metric.parameter or 1))
    return results
