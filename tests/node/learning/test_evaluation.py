"""Tests for cotrain.learning.evaluation."""

import math

import numpy as np
import pytest
import torch
from cotrain.errors import ConfigError, IntegrityError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import evaluate
from cotrain.learning.models import build_model

IDENTITY = {"1.weight": torch.eye(2), "1.bias": torch.zeros(2)}


def _examples() -> ArrayDataset:
    features = np.array([[2, 0], [0, 1], [1, 0]], dtype=np.float32)
    return ArrayDataset(features, np.array([0, 1, 1], dtype=np.int64), ("a", "b"))


def _logistic() -> torch.nn.Module:
    return build_model("logistic", {}, input_shape=(2,), num_classes=2, seed=0)


def test_hand_computed_accuracy_and_loss():
    # Prepare: identity weights make the features the logits; the third example is misclassified.
    expected_loss = (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 3

    # Execute
    metrics = evaluate(_logistic(), IDENTITY, _examples())

    # Assert
    assert metrics.accuracy == pytest.approx(2 / 3)
    assert metrics.loss == pytest.approx(expected_loss, rel=1e-6)
    assert metrics.samples == 3


def test_batch_size_does_not_change_the_result():
    whole = evaluate(_logistic(), IDENTITY, _examples())
    one_by_one = evaluate(_logistic(), IDENTITY, _examples(), batch_size=1)

    assert one_by_one.accuracy == whole.accuracy
    assert one_by_one.loss == pytest.approx(whole.loss, rel=1e-6)


def test_empty_data_set_is_a_config_error():
    with pytest.raises(ConfigError):
        evaluate(_logistic(), IDENTITY, _examples().subset([]))


def test_state_of_another_shape_is_an_integrity_error():
    with pytest.raises(IntegrityError):
        evaluate(_logistic(), {"1.weight": torch.eye(3), "1.bias": torch.zeros(3)}, _examples())
