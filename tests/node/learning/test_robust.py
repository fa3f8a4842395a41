"""Tests for cotrain.learning.robust (flatten, unflatten and the float64 weighted mean behind the float FedAvg
baseline), on hand-computed vectors and on the bits of random ones."""

import math

import numpy as np
import pytest
import torch
from cotrain.errors import IntegrityError
from cotrain.learning.aggregation import fedavg
from cotrain.learning.models import build_model
from cotrain.learning.robust import StreamingMean, flatten, unflatten, weighted_mean
from cotrain.learning.state import model_state


def _v(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def _random(count: int, length: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(length) * 10.0 ** rng.integers(-3, 4) for _ in range(count)]


def _bits(vector: np.ndarray) -> bytes:
    return vector.tobytes()


# ------------------------------------------------------------------------------------- flatten


def test_flatten_concatenates_in_sorted_key_order():
    # Prepare
    delta = {"b": torch.tensor([3.0, 4.0]), "a": torch.tensor([[1.0, 2.0], [0.5, -0.0]])}

    # Execute
    vector = flatten(delta)

    # Assert
    assert vector.dtype == np.float64
    assert vector.tolist() == [1.0, 2.0, 0.5, -0.0, 3.0, 4.0]
    assert math.copysign(1.0, vector[3]) == -1.0


def test_flatten_then_unflatten_gives_back_a_real_model_state_bit_for_bit():
    # Prepare
    model = build_model("cnn", {"channels": [8, 16]}, input_shape=(1, 8, 8), num_classes=10, seed=5)
    state = model_state(model)

    # Execute
    vector = flatten(state)
    restored = unflatten(vector, state)

    # Assert
    assert vector.size == sum(t.numel() for t in state.values())
    assert list(restored) == sorted(state)
    for key, tensor in state.items():
        assert restored[key].dtype == torch.float32
        assert restored[key].shape == tensor.shape
        assert restored[key].numpy().tobytes() == tensor.numpy().tobytes()


def test_unflatten_rounds_to_nearest_float32():
    # Prepare: 1 + 2**-24 lies halfway between two float32 values (ties to even: 1.0);
    # 1 + 3 * 2**-25 lies above the middle (rounds up to 1 + 2**-23).
    vector = _v(1 + 2**-24, 1 + 3 * 2**-25, -2.5)

    # Execute
    result = unflatten(vector, {"w": torch.zeros(3)})

    # Assert
    assert result["w"].tolist() == [1.0, 1 + 2**-23, -2.5]


def test_unflatten_shapes_entries_like_the_layout():
    like = {"w": torch.zeros(2, 2), "b": torch.zeros(1)}

    result = unflatten(_v(9, 1, 2, 3, 4), like)

    assert list(result) == ["b", "w"]
    assert result["b"].tolist() == [9.0]
    assert result["w"].tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        (_v(1, 2), "has 2 values but the layout holds 3"),
        (_v(1, 2, 3, 4), "has 4 values but the layout holds 3"),
        (_v(1, 1e39, 3), "float32 range"),
        (_v(1, float("nan"), 3), "finite"),
    ],
)
def test_unflatten_refuses_a_vector_that_does_not_fit(vector, message):
    with pytest.raises(IntegrityError, match=message):
        unflatten(vector, {"w": torch.zeros(3)})


@pytest.mark.parametrize(
    ("delta", "message"),
    [
        ({}, "no entries"),
        ({"w": torch.zeros(0)}, "empty"),
        ({"w": torch.tensor([1, 2])}, "floating-point"),
        ({"w": torch.tensor([1.0, float("inf")])}, "finite"),
    ],
)
def test_flatten_refuses_what_is_not_a_finite_float_delta(delta, message):
    with pytest.raises(IntegrityError, match=message):
        flatten(delta)


# ------------------------------------------------------------------------------------- means


def test_weighted_mean_on_hand_computed_vectors():
    # (1 * [1, 2] + 3 * [5, 6]) / 4
    assert weighted_mean([_v(1, 2), _v(5, 6)], [1, 3]).tolist() == [4.0, 5.0]


def test_weighted_mean_has_fedavgs_arithmetic():
    # Prepare
    rng = np.random.default_rng(4)
    deltas = [torch.from_numpy(rng.standard_normal(500).astype(np.float32)) for _ in range(5)]
    weights = [120, 7, 3.5, 1000, 0]

    # Execute
    mean = weighted_mean([d.double().numpy() for d in deltas], weights)
    averaged = fedavg([{"w": d} for d in deltas], weights)

    # Assert
    assert torch.equal(torch.from_numpy(mean.astype(np.float32)), averaged["w"])
    total = (((120.0 + 7.0) + 3.5) + 1000.0) + 0.0
    acc = deltas[0].double().numpy() * 120.0
    for delta, weight in zip(deltas[1:], weights[1:], strict=True):
        acc = acc + delta.double().numpy() * float(weight)
    assert _bits(mean) == _bits(acc / total)


def test_streaming_mean_is_bit_identical_to_weighted_mean():
    # Prepare
    vectors = _random(6, 3000, seed=1)
    weights = [3, 1.5, 2**40, 0, 7, 1]
    stream = StreamingMean()

    # Execute
    for vector, weight in zip(vectors, weights, strict=True):
        stream.add(vector, weight)

    # Assert
    assert stream.count == 6
    assert _bits(stream.result()) == _bits(weighted_mean(vectors, weights))
    assert _bits(stream.result()) == _bits(weighted_mean(vectors, weights))


def test_streaming_mean_keeps_a_negative_zero():
    stream = StreamingMean()
    stream.add(_v(-0.0), 2)

    assert math.copysign(1.0, stream.result()[0]) == -1.0


def test_streaming_mean_refuses_bad_input_and_stays_unchanged():
    # Prepare
    stream = StreamingMean()

    # Execute / Assert
    with pytest.raises(IntegrityError, match="no vectors"):
        stream.result()
    stream.add(_v(2, 4), 1)
    with pytest.raises(IntegrityError, match="has 3 values but vector 0 has 2"):
        stream.add(_v(1, 2, 3), 1)
    with pytest.raises(IntegrityError, match="not negative"):
        stream.add(_v(1, 2), -1)
    assert stream.count == 1
    assert stream.result().tolist() == [2.0, 4.0]
    zero = StreamingMean()
    zero.add(_v(1.0), 0)
    with pytest.raises(IntegrityError, match="sum to zero"):
        zero.result()


@pytest.mark.parametrize(
    ("vectors", "weights", "message"),
    [
        ([], [], "no vectors"),
        ([_v(1)], [1, 2], "1 vectors but 2 weights"),
        ([_v(1), _v(1, 2)], [1, 1], "vector 1 has 2 values but vector 0 has 1"),
        ([_v(1), _v(2)], [0, 0], "sum to zero"),
        ([_v(1)], [True], "not a number"),
        ([_v(1)], [float("inf")], "finite"),
        ([_v(float("nan"))], [1], "vector 0 holds nan"),
        ([_v(1e308), _v(1e308)], [1, 1], "overflowed"),
    ],
)
def test_weighted_mean_refuses_bad_input(vectors, weights, message):
    with pytest.raises(IntegrityError, match=message):
        weighted_mean(vectors, weights)
