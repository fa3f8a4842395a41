"""Tests for cotrain.learning.metrics: hand-computed values, and scikit-learn's where it has the metric."""

import math

import numpy as np
import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import evaluate
from cotrain.learning.metrics import (
    MetricName,
    auprc,
    auroc,
    compute_metrics,
    parse_metric,
    perplexity,
    recall_at_fpr,
    top_k_accuracy,
)
from cotrain.learning.models import build_model
from sklearn import metrics as sk

# scikit-learn's documented example: one negative outranks one positive.
LABELS = np.array([0, 0, 1, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.8])


def test_auroc_by_hand():
    # Of the 4 positive-negative pairs, 3 are ordered right.
    assert auroc(LABELS, SCORES) == pytest.approx(0.75)


def test_auprc_by_hand():
    # Recall 0.5 at precision 1 (0.8), then recall 1 at precision 2/3 (0.35): 0.5 * 1 + 0.5 * 2/3.
    assert auprc(LABELS, SCORES) == pytest.approx(0.5 + 1 / 3)


@pytest.mark.parametrize(("fpr", "recall"), [(0.01, 0.5), (0.49, 0.5), (0.5, 1.0), (0.99, 1.0)])
def test_recall_at_fpr_by_hand(fpr: float, recall: float):
    # Thresholds 0.8, 0.4, 0.35 reach (fpr, recall) (0, .5), (.5, .5), (.5, 1).
    assert recall_at_fpr(LABELS, SCORES, fpr) == recall


def test_tied_scores_count_half():
    labels, scores = np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.2, 0.9])
    assert auroc(labels, scores) == pytest.approx(0.875)
    assert auprc(labels, scores) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)


def test_perplexity_of_a_uniform_guess_is_the_class_count():
    log_probs = np.full((5, 4), math.log(0.25))
    assert perplexity(np.array([0, 1, 2, 3, 0]), log_probs) == pytest.approx(4.0)


def test_perplexity_by_hand():
    log_probs = np.log(np.array([[0.5, 0.5], [0.2, 0.8]]))
    # exp(-(ln 0.5 + ln 0.8) / 2) = 1 / sqrt(0.4)
    assert perplexity(np.array([0, 1]), log_probs) == pytest.approx(1 / math.sqrt(0.4))


def test_top_k_accuracy_by_hand():
    scores = np.array([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05]])
    labels = np.array([2, 2])
    assert top_k_accuracy(labels, scores, 1) == 0.0
    # The second example's class ties with the runner-up: only the 0.9 scores strictly higher.
    assert top_k_accuracy(labels, scores, 2) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_metrics_match_scikit_learn(seed: int):
    rng = np.random.default_rng(seed)
    labels = (rng.random(400) < 0.05).astype(np.int64)
    labels[:2] = [0, 1]
    scores = np.round(rng.normal(size=400) + labels, 1)  # rounded: many ties
    assert auroc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores))
    assert auprc(labels, scores) == pytest.approx(sk.average_precision_score(labels, scores))
    fpr, tpr, _ = sk.roc_curve(labels, scores, drop_intermediate=False)
    assert recall_at_fpr(labels, scores, 0.05) == pytest.approx(tpr[fpr <= 0.05].max())


def test_top_k_accuracy_matches_scikit_learn_without_ties():
    rng = np.random.default_rng(3)
    scores, labels = rng.normal(size=(300, 6)), rng.integers(0, 6, 300)
    for k in (1, 3, 5):
        expected = sk.top_k_accuracy_score(labels, scores, k=k, labels=np.arange(6))
        assert top_k_accuracy(labels, scores, k) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("auroc", MetricName("auroc")),
        ("recall_at_fpr:0.01", MetricName("recall_at_fpr", 0.01)),
        ("top_k_accuracy:3", MetricName("top_k_accuracy", 3)),
    ],
)
def test_metric_names_are_read(text: str, parsed: MetricName):
    assert parse_metric(text) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("f1", "unknown metric 'f1'"),
        ("auroc:2", "takes no parameter"),
        ("recall_at_fpr", "needs a false-positive rate"),
        ("recall_at_fpr:1", "needs a false-positive rate"),
        ("top_k_accuracy:0", "needs a whole number"),
        ("top_k_accuracy:x", "needs a whole number"),
    ],
)
def test_a_bad_metric_is_refused_in_one_line(text: str, message: str):
    with pytest.raises(ConfigError, match=message) as caught:
        parse_metric(text)
    assert "\n" not in str(caught.value)


def test_ranking_needs_both_classes():
    with pytest.raises(ConfigError, match="both classes"):
        auroc(np.zeros(3, dtype=np.int64), np.array([0.1, 0.2, 0.3]))


def test_evaluate_adds_the_named_metrics():
    # Identity weights make the features the logits.
    features = np.array([[2, 0], [0, 1], [1, 0], [0, 3]], dtype=np.float32)
    dataset = ArrayDataset(features, np.array([0, 1, 1, 1], dtype=np.int64), ("a", "b"))
    model = build_model("logistic", {}, input_shape=(2,), num_classes=2, seed=0)
    state = {"1.weight": torch.eye(2), "1.bias": torch.zeros(2)}

    measured = evaluate(model, state, dataset, metrics=["auroc", "perplexity", "top_k_accuracy:1"])

    # Log-odds -2, 1, -1, 3: the negative ranks below every positive.
    assert measured.extra["auroc"] == 1.0
    assert measured.extra["perplexity"] == pytest.approx(math.exp(measured.loss))
    assert measured.extra["top_k_accuracy:1"] == measured.accuracy
    assert compute_metrics([], dataset.labels, np.zeros((4, 2))) == {}
