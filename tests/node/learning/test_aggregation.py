"""Tests for cotrain.learning.aggregation (float FedAvg, the float32 baseline of the benchmarks), on
hand-computed arrays."""

import numpy as np
import pytest
import torch
from cotrain.errors import IntegrityError
from cotrain.learning.aggregation import apply_delta, fedavg


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def test_fedavg_weights_by_sample_count():
    # Prepare
    deltas = [{"w": _t(1, 2), "b": _t(0)}, {"w": _t(5, 6), "b": _t(4)}]
    weights = [1, 3]

    # Execute
    result = fedavg(deltas, weights)

    # Assert: (1 * [1, 2] + 3 * [5, 6]) / 4 and (1 * 0 + 3 * 4) / 4
    assert list(result) == ["b", "w"]
    assert torch.equal(result["w"], _t(4, 5))
    assert torch.equal(result["b"], _t(3))
    assert result["w"].dtype == torch.float32


def test_fedavg_with_float_weights():
    # Prepare
    deltas = [{"w": _t(2, -4)}, {"w": _t(0, 8)}, {"w": _t(6, 0)}]

    # Execute
    result = fedavg(deltas, [0.5, 0.25, 0.25])

    # Assert: 0.5 * [2, -4] + 0.25 * [0, 8] + 0.25 * [6, 0]
    assert torch.equal(result["w"], _t(2.5, 0))


def test_fedavg_takes_numpy_numbers_as_weights():
    result = fedavg([{"w": _t(1)}, {"w": _t(4)}], [np.int64(2), np.float32(1)])

    assert torch.equal(result["w"], _t(2))


def test_fedavg_of_one_delta_is_that_delta():
    delta = {"w": torch.randn(3, 4, generator=torch.Generator().manual_seed(0))}

    result = fedavg([delta], [17])

    assert torch.equal(result["w"], delta["w"])


def test_a_zero_weight_delta_does_not_count():
    result = fedavg([{"w": _t(1)}, {"w": _t(1000)}, {"w": _t(3)}], [1, 0, 1])

    assert torch.equal(result["w"], _t(2))


def test_fedavg_accumulates_in_float64():
    # Prepare: in float32, 1 + 2**-24 rounds back to 1 and both small terms vanish.
    deltas = [{"w": _t(1.0)}, {"w": _t(2**-24)}, {"w": _t(2**-24)}]
    float32_sum = np.float32(np.float32(np.float32(1.0) + np.float32(2**-24)) + np.float32(2**-24))

    # Execute
    result = fedavg(deltas, [1, 1, 1])

    # Assert
    assert result["w"].item() == np.float32((1 + 2**-23) / 3)
    assert result["w"].item() != np.float32(float32_sum / np.float32(3))


def test_fedavg_keeps_a_negative_zero():
    result = fedavg([{"w": _t(-0.0)}], [2])

    assert torch.signbit(result["w"]).item()


def test_fedavg_leaves_its_inputs_alone():
    deltas = [{"w": _t(1, 2)}, {"w": _t(3, 4)}]

    fedavg(deltas, [1, 1])

    assert torch.equal(deltas[0]["w"], _t(1, 2)) and torch.equal(deltas[1]["w"], _t(3, 4))


def test_fedavg_matches_the_documented_arithmetic_in_plain_python():
    # Prepare
    generator = torch.Generator().manual_seed(3)
    deltas = [{"w": torch.randn(50, generator=generator) * 10 ** (i - 2)} for i in range(4)]
    weights = [120, 7, 3.5, 1000]

    # Execute
    result = fedavg(deltas, weights)

    # Assert: Python floats are IEEE doubles, so this is the module docstring's formula step by step.
    total = ((120.0 + 7.0) + 3.5) + 1000.0
    for j in range(50):
        acc = weights[0] * float(deltas[0]["w"][j])
        for delta, weight in zip(deltas[1:], weights[1:], strict=True):
            acc += weight * float(delta["w"][j])
        assert result["w"][j].item() == float(np.float32(acc / total))


def _random_deltas(count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "conv.weight": torch.randn(64, 32, 3, 3, generator=generator) * 1e-3,
            "fc.weight": torch.randn(700, 1000, generator=generator),
            "fc.bias": torch.randn(1000, generator=generator) * 1e4,
        }
        for _ in range(count)
    ]


def test_fedavg_is_bit_identical_across_calls_and_thread_counts():
    # Prepare
    deltas = _random_deltas(5, seed=1)
    weights = [337, 336, 1, 336.5, 2**40]
    threads = torch.get_num_threads()

    # Execute
    try:
        torch.set_num_threads(1)
        single = fedavg(deltas, weights)
        torch.set_num_threads(2)
        double = fedavg(deltas, weights)
        again = fedavg(deltas, weights)
    finally:
        torch.set_num_threads(threads)

    # Assert
    for key in single:
        reference = single[key].numpy().tobytes()
        assert double[key].numpy().tobytes() == reference
        assert again[key].numpy().tobytes() == reference


@pytest.mark.parametrize(
    ("deltas", "weights", "message"),
    [
        ([], [], "no deltas"),
        ([{"w": _t(1)}], [1, 2], "1 deltas but 2 weights"),
        ([{"w": _t(1)}], [-1], "not negative"),
        ([{"w": _t(1)}], [float("nan")], "finite"),
        ([{"w": _t(1)}], [True], "not a number"),
        ([{"w": _t(1)}], ["3"], "not a number"),
        ([{"w": _t(1)}], [2**60], "too large"),
        ([{"w": _t(1)}, {"w": _t(2)}], [0, 0], "sum to zero"),
        ([{"w": _t(1)}, {"v": _t(2)}], [1, 1], "wrong keys"),
        ([{"w": _t(1)}, {"w": _t(1), "b": _t(1)}], [1, 1], "wrong keys"),
        ([{"w": _t(1)}, {"w": _t(1, 2)}], [1, 1], "shape"),
        ([{"w": _t(1)}, {"w": torch.ones(1, dtype=torch.float64)}], [1, 1], "float32"),
    ],
)
def test_fedavg_refuses_inconsistent_inputs(deltas, weights, message):
    with pytest.raises(IntegrityError, match=message):
        fedavg(deltas, weights)


def test_apply_delta_adds_entry_by_entry():
    # Prepare
    state = {"w": _t(1, 2), "b": _t(0.5)}
    delta = {"w": _t(0.25, -2), "b": _t(-0.5)}

    # Execute
    result = apply_delta(state, delta)

    # Assert
    assert list(result) == ["b", "w"]
    assert torch.equal(result["w"], _t(1.25, 0))
    assert torch.equal(result["b"], _t(0))
    assert torch.equal(state["w"], _t(1, 2))


@pytest.mark.parametrize(
    "delta",
    [{"w": _t(1)}, {"w": _t(1, 2), "b": _t(0), "x": _t(0)}, {"w": _t(1, 2, 3), "b": _t(0)}],
)
def test_apply_delta_refuses_a_delta_of_another_layout(delta):
    with pytest.raises(IntegrityError):
        apply_delta({"w": _t(1, 2), "b": _t(0)}, delta)
