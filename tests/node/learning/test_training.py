"""Tests for cotrain.learning.training."""

import math

import numpy as np
import pytest
import torch
from cotrain.errors import ConfigError, IntegrityError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import evaluate
from cotrain.learning.models import build_model
from cotrain.learning.state import load_state, model_state
from cotrain.learning.training import train_local

HYPER = {"epochs": 2, "batch_size": 16, "lr": 0.01, "optimizer": "adam", "seed": 42}


@pytest.fixture(scope="module")
def small_digits(digits) -> ArrayDataset:
    return digits.subset(np.arange(150))


def _cnn(seed: int = 0) -> torch.nn.Module:
    return build_model("cnn", {"channels": [4, 8]}, input_shape=(1, 8, 8), num_classes=10, seed=seed)


def _bits(state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    return {key: tensor.numpy().tobytes() for key, tensor in state.items()}


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_is_bit_deterministic(small_digits, optimizer):
    # Prepare
    global_state = model_state(_cnn())
    hyper = {**HYPER, "optimizer": optimizer}

    # Execute
    first = train_local(_cnn(), global_state, small_digits, **hyper)
    second = train_local(_cnn(), global_state, small_digits, **hyper)

    # Assert
    assert _bits(first.delta) == _bits(second.delta)
    assert first.loss == second.loss


def test_another_seed_shuffles_differently(small_digits):
    global_state = model_state(_cnn())

    first = train_local(_cnn(), global_state, small_digits, **HYPER)
    other = train_local(_cnn(), global_state, small_digits, **{**HYPER, "seed": 43})

    assert _bits(first.delta) != _bits(other.delta)


def test_training_starts_from_the_global_state_not_the_model_weights(small_digits):
    global_state = model_state(_cnn(seed=0))

    from_same = train_local(_cnn(seed=0), global_state, small_digits, **HYPER)
    from_other = train_local(_cnn(seed=9), global_state, small_digits, **HYPER)

    assert _bits(from_same.delta) == _bits(from_other.delta)


def test_delta_is_trained_minus_global_and_leaves_the_global_state_alone(small_digits):
    # Prepare
    model = _cnn()
    global_state = model_state(_cnn(seed=5))
    snapshot = {key: tensor.clone() for key, tensor in global_state.items()}

    # Execute
    result = train_local(model, global_state, small_digits, **HYPER)

    # Assert
    trained = model_state(model)
    assert list(result.delta) == sorted(global_state)
    assert all(result.delta[k].dtype == torch.float32 for k in result.delta)
    assert all(torch.equal(result.delta[k], trained[k] - snapshot[k]) for k in snapshot)
    assert all(torch.equal(global_state[k], snapshot[k]) for k in snapshot)
    assert result.samples == len(small_digits)
    assert math.isfinite(result.loss)


def test_training_restores_the_global_rng_and_determinism_flag(small_digits):
    torch.manual_seed(1)
    untouched = torch.rand(2)
    torch.manual_seed(1)

    train_local(_cnn(), model_state(_cnn()), small_digits, **HYPER)

    assert torch.equal(torch.rand(2), untouched)
    assert not torch.are_deterministic_algorithms_enabled()


def test_progress_is_reported_after_every_step(small_digits):
    calls: list[tuple[int, int]] = []

    train_local(
        _cnn(), model_state(_cnn()), small_digits, **HYPER, progress=lambda s, t: calls.append((s, t))
    )

    steps = 2 * math.ceil(150 / 16)
    assert calls == [(step, steps) for step in range(1, steps + 1)]


def test_training_improves_the_model(breast_cancer):
    # Prepare
    model = build_model("logistic", {}, input_shape=(30,), num_classes=2, seed=0)
    start = model_state(model)
    before = evaluate(model, start, breast_cancer)

    # Execute
    result = train_local(
        model, start, breast_cancer, epochs=3, batch_size=32, lr=0.1, optimizer="sgd", seed=0
    )

    # Assert
    after = evaluate(model, {k: start[k] + result.delta[k] for k in start}, breast_cancer)
    assert after.loss < before.loss / 2
    assert after.accuracy > 0.95


@pytest.mark.parametrize(
    "override",
    [
        {"epochs": 0},
        {"epochs": 1.5},
        {"batch_size": 0},
        {"batch_size": True},
        {"lr": 0},
        {"lr": float("inf")},
        {"optimizer": "rmsprop"},
        {"seed": -1},
        {"proximal_mu": -0.1},
        {"proximal_mu": float("nan")},
        {"proximal_mu": float("inf")},
        {"proximal_mu": True},
        {"proximal_mu": "0.1"},
        {"class_weights": [1.0] * 9 + [0.0]},
        {"class_weights": [1.0] * 9 + [float("nan")]},
        {"class_weights": [1.0] * 9},
    ],
)
def test_bad_hyperparameters_are_a_config_error(small_digits, override):
    with pytest.raises(ConfigError) as refused:
        train_local(_cnn(), model_state(_cnn()), small_digits, **{**HYPER, **override})

    assert next(iter(override)) in str(refused.value)
    assert "\n" not in str(refused.value)


def test_an_empty_data_set_is_a_config_error(small_digits):
    with pytest.raises(ConfigError, match="empty"):
        train_local(_cnn(), model_state(_cnn()), small_digits.subset([]), **HYPER)


def test_a_global_state_that_does_not_fit_the_model_is_an_integrity_error(small_digits):
    other_architecture = build_model("cnn", {"channels": [4]}, input_shape=(1, 8, 8), num_classes=10, seed=0)

    with pytest.raises(IntegrityError):
        train_local(_cnn(), model_state(other_architecture), small_digits, **HYPER)


def _norm(delta: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(tensor.double().pow(2).sum()) for tensor in delta.values()))


def test_proximal_mu_of_zero_trains_bit_for_bit_as_without_the_term(small_digits):
    global_state = model_state(_cnn())

    plain = train_local(_cnn(), global_state, small_digits, **HYPER)
    zero = train_local(_cnn(), global_state, small_digits, **HYPER, proximal_mu=0.0)
    proximal = train_local(_cnn(), global_state, small_digits, **HYPER, proximal_mu=0.1)

    assert _bits(zero.delta) == _bits(plain.delta)
    assert zero.loss == plain.loss
    assert _bits(proximal.delta) != _bits(plain.delta)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_proximal_training_is_bit_deterministic(small_digits, optimizer):
    global_state = model_state(_cnn())
    hyper = {**HYPER, "optimizer": optimizer, "proximal_mu": 1.0}

    first = train_local(_cnn(), global_state, small_digits, **hyper)
    second = train_local(_cnn(), global_state, small_digits, **hyper)

    assert _bits(first.delta) == _bits(second.delta)
    assert first.loss == second.loss


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_proximal_term_pulls_the_update_towards_zero_as_mu_grows(small_digits, optimizer):
    # Prepare
    global_state = model_state(_cnn())
    hyper = {**HYPER, "optimizer": optimizer}

    # Execute
    mus = (0.0, 0.1, 1.0, 5.0)
    results = [train_local(_cnn(), global_state, small_digits, **hyper, proximal_mu=mu) for mu in mus]

    # Assert
    norms = [_norm(result.delta) for result in results]
    assert norms == sorted(norms, reverse=True)
    assert len(set(norms)) == len(norms)
    assert norms[-1] < 0.75 * norms[0]
    # The reported loss is the cross-entropy alone: held closer to the start, it falls less.
    assert results[-1].loss > results[0].loss


def _predicted_share(
    model: torch.nn.Module, state: dict[str, torch.Tensor], data: ArrayDataset, c: int
) -> float:
    load_state(model, state)
    model.eval()
    with torch.inference_mode():
        return float((model(torch.from_numpy(data.features)).argmax(dim=1) == c).float().mean())


def test_class_weights_push_predictions_towards_the_heavier_class(breast_cancer):
    # Prepare
    def trained(weights: list[float] | None) -> float:
        model = build_model("logistic", {}, input_shape=(30,), num_classes=2, seed=0)
        start = model_state(model)
        result = train_local(
            model,
            start,
            breast_cancer,
            epochs=1,
            batch_size=64,
            lr=0.05,
            optimizer="sgd",
            seed=0,
            class_weights=weights,
        )
        return _predicted_share(model, {k: start[k] + result.delta[k] for k in start}, breast_cancer, 0)

    # Execute
    plain, first_heavy, second_heavy = trained(None), trained([20.0, 1.0]), trained([1.0, 20.0])

    # Assert: more examples land in class 0 when its errors cost twenty times more.
    assert second_heavy < plain < first_heavy
