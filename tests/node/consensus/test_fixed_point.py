"""Fixed-point quantization, hand-computed: ties to even, negatives, the width's bounds, the inverse."""

from __future__ import annotations

import numpy as np
import pytest
from cotrain.consensus.fixed_point import (
    MAX_SCALE_BITS,
    FixedPointOverflow,
    dequantize,
    overflow_count,
    quantize,
)
from cotrain.errors import IntegrityError
from hypothesis import given
from hypothesis import strategies as st


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


@pytest.mark.parametrize(
    ("value", "scale_bits", "expected"),
    [
        (0.25, 1, 0),  # 0.5 to even 0
        (0.75, 1, 2),  # 1.5 to even 2
        (1.25, 1, 2),  # 2.5 to even 2
        (1.75, 1, 4),  # 3.5 to even 4
        (-0.25, 1, 0),  # -0.5 to even 0
        (-0.75, 1, -2),  # -1.5 to even -2
        (-1.25, 1, -2),  # -2.5 to even -2
        (0.3, 1, 1),  # 0.6 up
        (-0.3, 1, -1),  # -0.6 down
        (0.1, 4, 2),  # float32(0.1) * 16 = 1.6000000238... -> 2
        (0.1, 0, 0),
        (-0.0, 8, 0),
        (1.0, 12, 4096),
        (-0.5, 16, -32768),
    ],
)
def test_quantize_rounds_half_to_even(value: float, scale_bits: int, expected: int) -> None:
    # Execute
    q = quantize(f32(value), scale_bits, 32)

    # Assert
    assert q.dtype == np.int64
    assert q.tolist() == [expected]


def test_a_float32_tie_that_float64_arithmetic_would_still_see() -> None:
    # Prepare: 2**-24 + 2**-25 is a float32; scaled by 2**24 it is exactly 1.5, a tie
    value = np.float32(2.0**-24 + 2.0**-25)

    # Execute / Assert
    assert quantize(np.array([value, -value], dtype=np.float32), 24, 32).tolist() == [2, -2]


def test_the_width_bounds_are_inclusive_below_and_exclusive_above() -> None:
    # Prepare: 8 bits hold -128 .. 127; with 4 fraction bits that is -8.0 .. 7.9375
    fits = f32(-8.0, 7.9375, 7.96875)  # 7.96875 * 16 = 127.5, a tie to even 128: too large
    inside = f32(-8.0, 7.9375, -8.03125)  # -8.03125 * 16 = -128.5 -> -128 (even): fits

    # Execute / Assert
    assert quantize(inside, 4, 8).tolist() == [-128, 127, -128]
    assert overflow_count(fits, 4, 8) == 1
    with pytest.raises(FixedPointOverflow, match=r"1 value\(s\) do not fit 8-bit") as raised:
        quantize(fits, 4, 8)
    assert (raised.value.count, raised.value.index, raised.value.width_bits) == (1, 2, 8)
    assert isinstance(raised.value, IntegrityError)


def test_overflow_counts_every_value_outside_and_names_the_first() -> None:
    values = f32(0.0, -9.0, 1.0, 100.0, -8.0)

    assert overflow_count(values, 4, 8) == 2
    with pytest.raises(FixedPointOverflow) as raised:
        quantize(values, 4, 8)
    assert (raised.value.count, raised.value.index) == (2, 1)


def test_the_widest_format_reaches_int64_limits() -> None:
    # -2**63 fits 64 bits, 2**63 does not (2**63 - 1 is no float32, so the largest fitting float32 is
    # 2**63 - 2**39)
    edge = f32(-(2.0**63), 2.0**63 - 2.0**39)

    assert quantize(edge, 0, 64).tolist() == [-(2**63), 2**63 - 2**39]
    assert overflow_count(f32(2.0**63), 0, 64) == 1


def test_dequantize_is_the_exact_inverse_on_the_grid() -> None:
    q = np.array([-32768, -1, 0, 1, 4096, 3], dtype=np.int64)

    assert dequantize(q, 12).tolist() == [-8.0, -(2.0**-12), 0.0, 2.0**-12, 1.0, 3 * 2.0**-12]
    assert dequantize(q, 12).dtype == np.float64


@given(
    st.lists(
        st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-4, max_value=4), min_size=1
    ),
    st.integers(min_value=0, max_value=28),
)
def test_the_round_trip_error_is_at_most_half_a_step(values: list[float], scale_bits: int) -> None:
    array = np.array(values, dtype=np.float32)

    back = dequantize(quantize(array, scale_bits, 32), scale_bits)

    assert np.all(np.abs(back - array.astype(np.float64)) <= 2.0 ** (-scale_bits - 1))


@pytest.mark.parametrize(
    ("values", "scale_bits", "width_bits", "message"),
    [
        (np.array([0.5]), 8, 16, "float32 array"),  # float64 is refused: the format is of float32 updates
        ([0.5], 8, 16, "float32 array"),
        (np.array([1.0, np.nan], dtype=np.float32), 8, 16, "value 1 = .* is not finite"),
        (np.array([np.inf], dtype=np.float32), 8, 16, "not finite"),
        (np.array([0.5], dtype=np.float32), -1, 16, "scale_bits"),
        (np.array([0.5], dtype=np.float32), MAX_SCALE_BITS + 1, 16, "scale_bits"),
        (np.array([0.5], dtype=np.float32), 8, 1, "width_bits"),
        (np.array([0.5], dtype=np.float32), 8, 65, "width_bits"),
        (np.array([0.5], dtype=np.float32), True, 16, "scale_bits"),
    ],
)
def test_invalid_input_is_refused(values: object, scale_bits: int, width_bits: int, message: str) -> None:
    with pytest.raises(IntegrityError, match=message):
        quantize(values, scale_bits, width_bits)  # type: ignore[arg-type]


def test_dequantize_refuses_anything_but_int64() -> None:
    with pytest.raises(IntegrityError, match="int64 array"):
        dequantize(np.array([1, 2], dtype=np.int32), 4)  # type: ignore[arg-type]
