"""Tests for cotrain.protocol.task_model's private training: the mechanism a round spends and the update a
contributor sends under ``privacy.dp``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.privacy.dp import Mechanism, epsilon
from cotrain.protocol.task_model import (
    builtin_split,
    initial_state,
    round_mechanism,
    train_private_round,
    train_round,
)
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec

SPECS = Path(__file__).resolve().parents[3] / "node" / "cotrain" / "protocol" / "specs"


def _spec(**dp: Any) -> TaskSpec:
    data = load_spec(SPECS / "breast_cancer.yaml").model_dump(mode="json")
    data["privacy"] = {
        "dp": {
            "mechanism": "user",
            "noise_multiplier": 0.5,
            "clip_norm": 0.2,
            "delta": 1e-5,
            "max_epsilon": 9,
        }
        | dp
    }
    return validate_spec(data)


def _norm(delta: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.double().square().sum()) for t in delta.values()))


def test_a_round_spends_one_release_or_an_epoch_of_sampled_steps_per_local_epoch() -> None:
    user, sample = _spec(), _spec(mechanism="sample", noise_multiplier=1.1)
    assert round_mechanism(user, 100) == Mechanism.user(0.5)
    # 100 examples in batches of 32: 4 batches, so rate 1/4 and 4 steps per local epoch (5 epochs).
    assert sample.training.batch_size == 32 and sample.training.local_epochs == 5
    assert round_mechanism(sample, 100) == Mechanism.sample(1.1, 0.25, 20)
    with pytest.raises(ConfigError, match=r"sets no privacy\.dp"):
        round_mechanism(load_spec(SPECS / "breast_cancer.yaml"), 100)


def test_user_dp_clips_the_trained_update_and_adds_fresh_noise() -> None:
    spec = _spec(noise_multiplier=0.05)
    train = builtin_split(spec)[0].subset(list(range(60)))
    base = initial_state(spec)
    plain = train_round(spec, base, train, 0).delta

    first = train_private_round(spec, base, train, 0)
    second = train_private_round(spec, base, train, 0)

    assert first.mechanism == Mechanism.user(0.05) and first.samples == 60
    assert _norm(plain) > 0.2  # so clipping bites
    values = sum(t.numel() for t in plain.values())
    # Clipped to 0.2, plus noise of standard deviation 0.01 on each of the 62 values.
    expected = math.sqrt(0.2**2 + values * 0.01**2)
    assert _norm(first.delta) == pytest.approx(expected, rel=0.25)
    assert any(not torch.equal(first.delta[k], second.delta[k]) for k in first.delta)


def test_dp_sgd_spends_what_the_round_mechanism_says() -> None:
    spec = _spec(mechanism="sample", noise_multiplier=1.0, clip_norm=1.0)
    train = builtin_split(spec)[0].subset(list(range(70)))

    result = train_private_round(spec, initial_state(spec), train, 1)

    assert result.mechanism == round_mechanism(spec, 70) == Mechanism.sample(1.0, 1 / 3, 15)
    assert 10 < epsilon([result.mechanism], 1e-5) < 10.5  # Opacus RDP: 10.18
    assert all(torch.isfinite(t).all() for t in result.delta.values())


def test_private_training_needs_a_dp_spec() -> None:
    spec = load_spec(SPECS / "breast_cancer.yaml")
    train = builtin_split(spec)[0].subset(list(range(10)))
    with pytest.raises(ConfigError, match=r"sets no privacy\.dp"):
        train_private_round(spec, initial_state(spec), train, 0)
