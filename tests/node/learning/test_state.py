"""Tests for cotrain.learning.state."""

import pytest
import torch
from cotrain.errors import ConfigError, IntegrityError
from cotrain.learning.models import build_model
from cotrain.learning.state import check_same_layout, float32_state, layout, load_state, model_state


def test_float32_state_sorts_detaches_and_copies():
    # Prepare
    source = {"b": torch.ones(2, dtype=torch.float64, requires_grad=True), "a": torch.zeros(3)}

    # Execute
    state = float32_state(source)
    state["a"] += 1

    # Assert
    assert list(state) == ["a", "b"]
    assert all(t.dtype == torch.float32 and not t.requires_grad for t in state.values())
    assert torch.equal(source["a"], torch.zeros(3))


def test_float32_state_refuses_integer_tensors():
    with pytest.raises(ConfigError, match="floating-point"):
        float32_state({"steps": torch.tensor(3)})


def test_layout_names_shapes_and_dtypes():
    assert layout({"w": torch.zeros(2, 3), "b": torch.zeros(3)}) == {
        "b": ((3,), torch.float32),
        "w": ((2, 3), torch.float32),
    }


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"w": torch.zeros(2)}, "wrong keys"),
        ({"w": torch.zeros(2), "b": torch.zeros(1), "x": torch.zeros(1)}, "wrong keys"),
        ({"w": torch.zeros(3), "b": torch.zeros(1)}, "shape"),
        ({"w": torch.zeros(2, dtype=torch.float64), "b": torch.zeros(1)}, "dtype"),
    ],
)
def test_check_same_layout_names_the_difference(other, message):
    reference = {"w": torch.zeros(2), "b": torch.zeros(1)}
    with pytest.raises(IntegrityError, match=message):
        check_same_layout(reference, other, what="delta 1")


def test_load_state_copies_a_fitting_state_and_refuses_another():
    model = build_model("logistic", {}, input_shape=(4,), num_classes=2, seed=0)
    state = {key: torch.full_like(value, 0.5) for key, value in model_state(model).items()}

    load_state(model, state)

    assert all(torch.equal(model_state(model)[k], state[k]) for k in state)
    with pytest.raises(IntegrityError):
        load_state(model, {"1.weight": torch.zeros(2, 4)})
