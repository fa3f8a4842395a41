"""Tests for cotrain.learning.robust, on hand-computed vectors and on the bits of random ones."""

import math

import numpy as np
import pytest
import torch
from cotrain.errors import IntegrityError
from cotrain.learning import robust
from cotrain.learning.aggregation import fedavg
from cotrain.learning.models import build_model
from cotrain.learning.robust import (
    StreamingMean,
    centered_clip,
    clip_to_norm,
    coordinate_median,
    dot,
    flatten,
    krum_scores,
    krum_select,
    l2_norm,
    median_of,
    squared_distances,
    tree_sum,
    trimmed_mean,
    unflatten,
    weighted_mean,
)
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


# ------------------------------------------------------------------------------------ tree_sum


def test_tree_sum_adds_pairs_level_by_level():
    # (1e100 + 1) + (-1e100 + 1) = 1e100 - 1e100 = 0; left to right gives 1.0, the exact sum is 2.0.
    assert tree_sum(_v(1e100, 1.0, -1e100, 1.0)) == 0.0
    # Odd lengths are padded: ((1 + 2) + (3 + 0)) = 6.
    assert tree_sum(_v(1.0, 2.0, 3.0)) == 6.0
    assert tree_sum(_v(-7.25)) == -7.25


def test_tree_sum_pads_with_positive_zero():
    # One value is returned as is; three negative zeros meet a +0.0 pad: (-0 + -0) + (-0 + 0) = +0.
    assert math.copysign(1.0, tree_sum(_v(-0.0))) == -1.0
    assert math.copysign(1.0, tree_sum(_v(-0.0, -0.0))) == -1.0
    assert math.copysign(1.0, tree_sum(_v(-0.0, -0.0, -0.0))) == 1.0


def test_tree_sum_of_a_fixed_vector_is_a_fixed_float():
    # Prepare: built with correctly rounded divisions only, so it is the same array on every machine.
    k = np.arange(1, 100_002, dtype=np.float64)
    values = np.where(k % 3 == 0, -1.0, 1.0) / k + 0.7 / (k + 0.5)

    # Execute
    total = tree_sum(values)

    # Assert: computed once with this implementation; any change of the tree changes the last bits.
    assert total.hex() == "0x1.9978b7194e27cp+3"
    assert math.isclose(total, math.fsum(values.tolist()), rel_tol=1e-14)


@pytest.mark.parametrize("length", [1, 2, 3, 5, 1023, 1024, 1025, 77_777])
def test_tree_sum_is_close_to_the_exact_sum_and_equal_to_the_plain_python_tree(length):
    # Prepare
    values = np.random.default_rng(length).standard_normal(length) * 1e3

    # Execute
    total = tree_sum(values)

    # Assert: the module docstring's definition, written with Python floats.
    level = values.tolist()
    while len(level) > 1:
        if len(level) % 2:
            level.append(0.0)
        level = [level[i] + level[i + 1] for i in range(0, len(level), 2)]
    assert total == level[0]
    assert math.isclose(total, math.fsum(values.tolist()), rel_tol=1e-12, abs_tol=1e-9)


def test_tree_sum_leaves_its_input_alone():
    values = _v(1, 2, 3, 4, 5)

    tree_sum(values)

    assert values.tolist() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros(0), "empty"),
        (_v(1, float("nan")), "finite"),
        (np.zeros((2, 2)), "1-D"),
        ([1.0, 2.0], "numpy array"),
        (np.array([1, 2]), "float64"),
        (_v(1e308, 1e308), "overflowed"),
    ],
)
def test_tree_sum_refuses_bad_input(values, message):
    with pytest.raises(IntegrityError, match=message):
        tree_sum(values)


def test_dot_and_l2_norm_on_hand_computed_vectors():
    assert dot(_v(1, 2, 3), _v(4, 5, 6)) == 32.0
    assert l2_norm(_v(3, 4)) == 5.0
    assert l2_norm(_v(0, 0)) == 0.0
    assert l2_norm(np.array([3, 4], dtype=np.float32)) == 5.0


def test_dot_refuses_vectors_of_different_lengths():
    with pytest.raises(IntegrityError, match="2 and 3 values"):
        dot(_v(1, 2), _v(1, 2, 3))


def test_squared_distances_match_tree_sums_and_are_symmetric():
    # Prepare
    vectors = _random(4, 1001, seed=8)

    # Execute
    distances = squared_distances(vectors)

    # Assert
    for i in range(4):
        assert distances[i, i] == 0.0
        for j in range(4):
            if i != j:
                assert distances[i, j] == tree_sum((vectors[i] - vectors[j]) ** 2)
                assert distances[i, j] == distances[j, i]


@pytest.mark.parametrize("block_values", [1 << 22, 3000, 1001, 7])
def test_squared_distances_give_the_same_bits_in_any_block_size(monkeypatch, block_values):
    # Stacked and per-pair differences, one or many rows per block: the row-wise tree is tree_sum's tree.
    vectors = _random(9, 1001, seed=9)
    monkeypatch.setattr(robust, "_BLOCK_VALUES", block_values)

    distances = squared_distances(vectors)

    expected = [[tree_sum((a - b) ** 2) if a is not b else 0.0 for b in vectors] for a in vectors]
    assert distances.tobytes() == np.array(expected).tobytes()


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


# --------------------------------------------------------------------------- order statistics


def test_coordinate_median_of_an_odd_count_is_the_middle_value():
    assert coordinate_median([_v(1, 5), _v(2, 6), _v(9, -4)]).tolist() == [2.0, 5.0]


def test_coordinate_median_of_an_even_count_is_the_midpoint_of_the_middle_pair():
    # Sorted columns: [1, 3, 4, 10] -> (3 + 4) / 2 and [-1, 0, 0, 8] -> (0 + 0) / 2.
    vectors = [_v(1, 8), _v(3, 0), _v(10, -1), _v(4, 0)]

    assert coordinate_median(vectors).tolist() == [3.5, 0.0]


def test_coordinate_median_treats_negative_zero_as_zero():
    # Prepare
    vectors = [_v(-0.0, -0.0), _v(0.0, -0.0), _v(1.0, -0.0)]

    # Execute
    median = coordinate_median(vectors)

    # Assert: whichever zero a sort puts first, the median is +0.0.
    assert median.tolist() == [0.0, 0.0]
    assert not np.signbit(median).any()


def test_coordinate_median_spans_several_column_blocks():
    # Prepare: more columns than one sorting block holds.
    vectors = _random(5, 70_001, seed=6)

    # Execute
    median = coordinate_median(vectors)

    # Assert
    assert _bits(median) == _bits(np.median(np.stack(vectors), axis=0))


def test_trimmed_mean_drops_each_end_and_keeps_ties():
    # Prepare: column 0 sorted is [1, 1, 1, 5, 100], column 1 is [-50, 2, 2, 2, 2].
    vectors = [_v(1, 2), _v(100, 2), _v(1, -50), _v(5, 2), _v(1, 2)]

    # Execute
    result = trimmed_mean(vectors, trim=1)

    # Assert: ((1 + 1) + 5) / 3 and ((2 + 2) + 2) / 3.
    assert result.tolist() == [7 / 3, 2.0]


def test_trimmed_mean_sums_in_sorted_order():
    # Sorted: (-1e16 + 1) + 1e16 = 0 (-1e16 + 1 rounds to -1e16); in index order (1e16 - 1e16) + 1 = 1.
    vectors = [_v(1e16), _v(-1e16), _v(1.0)]

    assert trimmed_mean(vectors, trim=0).tolist() == [0.0]
    assert weighted_mean(vectors, [1, 1, 1]).tolist() == [1 / 3]


def test_order_statistics_do_not_depend_on_the_order_of_the_vectors():
    # Prepare: rounded values, so many coordinates hold ties, some of them zeros of either sign.
    vectors = [np.round(v) for v in _random(9, 5000, seed=2)]
    vectors[3][:100] = -0.0
    permutation = np.random.default_rng(3).permutation(9)
    shuffled = [vectors[i] for i in permutation]

    # Execute / Assert
    assert _bits(coordinate_median(shuffled)) == _bits(coordinate_median(vectors))
    assert _bits(trimmed_mean(shuffled, 2)) == _bits(trimmed_mean(vectors, 2))


@pytest.mark.parametrize(("count", "trim"), [(2, 1), (4, 2), (1, 1)])
def test_trimmed_mean_needs_more_than_twice_trim_vectors(count, trim):
    with pytest.raises(IntegrityError, match=f"needs more than {2 * trim} vectors"):
        trimmed_mean([_v(1.0)] * count, trim)


@pytest.mark.parametrize("trim", [-1, 1.0, True])
def test_trimmed_mean_refuses_a_bad_trim(trim):
    with pytest.raises(IntegrityError, match="trim must be an integer"):
        trimmed_mean([_v(1.0)] * 5, trim)


def test_coordinate_median_refuses_empty_and_mismatched_input():
    with pytest.raises(IntegrityError, match="no vectors"):
        coordinate_median([])
    with pytest.raises(IntegrityError, match="vector 1 has 1 values"):
        coordinate_median([_v(1, 2), _v(3)])


# ------------------------------------------------------------------------------------------ Krum


def _krum_points() -> list[np.ndarray]:
    # Squared distances: v0-v1 4, v0-v2 4, v0-v3 2, v1-v2 8, v1-v3 2, v2-v3 2,
    # v4 to v0, v1, v2, v3: 3200, 3044, 3044, 3042.
    return [_v(0, 0), _v(2, 0), _v(0, 2), _v(1, 1), _v(40, 40)]


def test_krum_scores_sum_the_closest_neighbours():
    # f = 1, so the n - f - 2 = 2 closest of each:
    # v0: 2 + 4, v1: 2 + 4, v2: 2 + 4, v3: 2 + 2, v4: 3042 + 3044.
    assert krum_scores(_krum_points(), byzantine=1) == [6.0, 6.0, 6.0, 4.0, 6086.0]


def test_krum_select_orders_by_score_then_index():
    assert krum_select(_krum_points(), byzantine=1, select=3) == [3, 0, 1]
    assert krum_select(_krum_points(), byzantine=1, select=5) == [3, 0, 1, 2, 4]


def test_median_of_floats():
    assert median_of([3.0, 1.0, 2.0]) == 2.0
    assert median_of([4.0, 1.0, 2.0, 3.0]) == 2.5


def test_krum_selection_does_not_depend_on_the_order_of_the_vectors():
    # Prepare
    vectors = _random(8, 2000, seed=5)
    vectors[6] = vectors[6] * 50
    permutation = np.random.default_rng(9).permutation(8)
    shuffled = [vectors[i] for i in permutation]

    # Execute
    picked = krum_select(vectors, byzantine=2, select=4)
    picked_shuffled = krum_select(shuffled, byzantine=2, select=4)
    scores = krum_scores(vectors, byzantine=2)
    scores_shuffled = krum_scores(shuffled, byzantine=2)

    # Assert
    assert [int(permutation[i]) for i in picked_shuffled] == picked
    assert [scores_shuffled[list(permutation).index(i)] for i in range(8)] == scores
    assert 6 not in picked


@pytest.mark.parametrize(
    ("count", "byzantine", "select", "message"),
    [
        (4, 2, 1, "byzantine = 2 needs at least 5 vectors, got 4"),
        (2, 0, 1, "byzantine = 0 needs at least 3 vectors, got 2"),
        (5, -1, 1, "byzantine must be an integer >= 0"),
        (5, 1, 0, "select must be an integer >= 1"),
        (5, 1, 6, "cannot select 6 of 5 vectors"),
        (5, 1, True, "select must be an integer"),
    ],
)
def test_krum_refuses_bad_parameters(count, byzantine, select, message):
    vectors = _random(count, 10, seed=0)

    with pytest.raises(IntegrityError, match=message):
        krum_select(vectors, byzantine, select)


# -------------------------------------------------------------------------------------- clipping


def test_centered_clip_with_a_huge_radius_from_zero_is_the_mean():
    # Prepare: no difference is clipped, and x - 0 is x, so one step lands on the plain mean.
    vectors = _random(5, 1000, seed=7)

    # Execute
    result = centered_clip(vectors, tau=math.inf, iterations=1, start=np.zeros(1000))

    # Assert
    assert _bits(result) == _bits(weighted_mean(vectors, [1.0] * 5))


def test_centered_clip_with_a_large_radius_converges_to_the_mean():
    vectors = _random(5, 1000, seed=7)

    result = centered_clip(vectors, tau=1e9, iterations=3)

    np.testing.assert_allclose(result, weighted_mean(vectors, [1.0] * 5), rtol=0, atol=1e-9)


def test_centered_clip_on_hand_computed_steps():
    # Prepare: the median [0] is the start; with tau = 1 the far vector pulls by at most 1 / 3.
    vectors = [_v(0.0), _v(0.0), _v(10.0)]

    # Execute
    one = centered_clip(vectors, tau=1.0, iterations=1)
    two = centered_clip(vectors, tau=1.0, iterations=2)

    # Assert: step 1: (0 + 0 + 10 * (1 / 10)) / 3; step 2: v = 1/3, differences -1/3, -1/3 (not
    # clipped) and 10 - 1/3 (clipped to length 1).
    assert one.tolist() == [1 / 3]
    v = 1 / 3
    far = 10.0 - v
    assert two.tolist() == [v + (((0.0 - v) + (0.0 - v)) + far * (1.0 / math.sqrt(far * far))) / 3]


def test_centered_clip_with_a_tiny_radius_stays_near_the_start():
    # Prepare
    vectors = _random(6, 500, seed=4)
    start = coordinate_median(vectors)

    # Execute
    result = centered_clip(vectors, tau=1e-6, iterations=3)

    # Assert: each step moves by at most tau.
    assert 0 < l2_norm(result - start) <= 3e-6 * (1 + 1e-12)
    assert _bits(centered_clip(vectors, tau=0.0, iterations=3)) == _bits(start)
    assert _bits(centered_clip(vectors, tau=5.0, iterations=0, start=vectors[2])) == _bits(vectors[2])


@pytest.mark.parametrize(
    ("tau", "iterations", "start", "message"),
    [
        (-1.0, 1, None, "tau must be a number >= 0"),
        (float("nan"), 1, None, "tau must be a number >= 0"),
        (1.0, -1, None, "iterations must be an integer >= 0"),
        (1.0, 1.5, None, "iterations must be an integer >= 0"),
        (1.0, 1, _v(1, 2, 3), "start has 3 values but the vectors have 2"),
        (1.0, 1, _v(1, float("inf")), "start holds inf"),
    ],
)
def test_centered_clip_refuses_bad_parameters(tau, iterations, start, message):
    with pytest.raises(IntegrityError, match=message):
        centered_clip([_v(1, 2), _v(3, 4)], tau, iterations, start)


def test_clip_to_norm_scales_only_long_vectors():
    # Prepare
    vector = _v(3, 4)

    # Execute
    short = clip_to_norm(vector, 1.0)
    untouched = clip_to_norm(vector, 5.0)

    # Assert: one division (1 / 5), then one product per value.
    assert short.tolist() == [3.0 * 0.2, 4.0 * 0.2]
    assert math.isclose(l2_norm(short), 1.0, rel_tol=1e-15)
    assert untouched.tolist() == [3.0, 4.0]
    assert untouched is not vector
    assert clip_to_norm(vector, math.inf).tolist() == [3.0, 4.0]
    assert clip_to_norm(vector, 0.0).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("max_norm", [-1.0, float("nan"), "1", None])
def test_clip_to_norm_refuses_a_bad_limit(max_norm):
    with pytest.raises(IntegrityError, match="max_norm must be a number"):
        clip_to_norm(_v(3, 4), max_norm)
