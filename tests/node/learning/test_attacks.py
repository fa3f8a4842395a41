"""Tests for cotrain.learning.attacks: each attack on hand-made deltas, with the values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.learning.attacks import (
    ATTACKS,
    JITTER_RELATIVE_NORM,
    alie_z,
    attack_names,
    base_name,
    copy_update,
    delta_norm,
    disguised_free_ride,
    flip_labels,
    free_ride,
    gaussian_noise,
    get_attack,
    honest_spread,
    inner_product_manipulation,
    little_is_enough,
    live_attack_names,
    scale,
    sign_flip,
)
from cotrain.learning.data import ArrayDataset


def _delta(w: list[list[float]], b: list[float]) -> dict[str, torch.Tensor]:
    return {"w": torch.tensor(w, dtype=torch.float32), "b": torch.tensor(b, dtype=torch.float32)}


def _as_lists(delta: dict[str, torch.Tensor]) -> dict[str, list]:
    assert all(t.dtype == torch.float32 for t in delta.values())
    return {key: delta[key].tolist() for key in delta}


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


DELTA = _delta([[1.0, -2.0], [0.5, 0.0]], [3.0])  # norm sqrt(1 + 4 + 0.25 + 9) = sqrt(14.25)


def test_flip_labels_maps_each_label_to_its_mirror_class() -> None:
    # Prepare
    data = ArrayDataset(
        np.zeros((4, 2), dtype=np.float32), np.array([0, 1, 5, 9], dtype=np.int64), tuple("0123456789")
    )
    # Execute
    flipped = flip_labels(data)
    # Assert
    assert flipped.labels.tolist() == [9, 8, 4, 0]
    assert flipped.labels.dtype == np.int64
    assert flipped.classes == data.classes
    assert np.array_equal(flipped.features, data.features)
    assert data.labels.tolist() == [0, 1, 5, 9]  # the input is untouched


def test_flip_labels_swaps_two_classes() -> None:
    data = ArrayDataset(np.zeros((3, 1), dtype=np.float32), np.array([0, 1, 1]), ("malignant", "benign"))
    assert flip_labels(data).labels.tolist() == [1, 0, 0]


def test_sign_flip_negates_every_entry() -> None:
    assert _as_lists(sign_flip(DELTA)) == {"b": [-3.0], "w": [[-1.0, 2.0], [-0.5, -0.0]]}
    assert _as_lists(sign_flip(DELTA, 2.0)) == {"b": [-6.0], "w": [[-2.0, 4.0], [-1.0, -0.0]]}


def test_scale_multiplies_by_one_hundred() -> None:
    assert _as_lists(scale(DELTA)) == {"b": [300.0], "w": [[100.0, -200.0], [50.0, 0.0]]}
    assert delta_norm(scale(DELTA)) == pytest.approx(100 * math.sqrt(14.25), rel=1e-12)


def test_delta_norm_is_over_all_entries() -> None:
    assert delta_norm(DELTA) == math.sqrt(14.25)


def test_gaussian_noise_draws_with_sigma_from_the_honest_norm() -> None:
    # Prepare: 5 coordinates, norm sqrt(14.25), so sigma = sqrt(14.25 / 5); keys are drawn in sorted order.
    sigma = math.sqrt(14.25 / 5)
    reference = _rng(5)
    expected_b = reference.normal(0.0, sigma, size=(1,))
    expected_w = reference.normal(0.0, sigma, size=(2, 2))
    # Execute
    noise = gaussian_noise(DELTA, _rng(5))
    # Assert
    assert noise["b"].tolist() == expected_b.astype(np.float32).tolist()
    assert noise["w"].tolist() == expected_w.astype(np.float32).tolist()


def test_gaussian_noise_is_as_large_as_the_honest_update() -> None:
    honest = {"w": torch.full((100, 100), 0.01), "b": torch.full((100,), -0.02)}
    noise = gaussian_noise(honest, _rng(1))
    assert delta_norm(noise) == pytest.approx(delta_norm(honest), rel=0.02)
    # and it is noise: nearly orthogonal to the honest direction
    dot = sum(float((noise[k].double() * honest[k].double()).sum()) for k in honest)
    assert abs(dot) / (delta_norm(noise) * delta_norm(honest)) < 0.05


def test_disguised_free_ride_is_a_tenth_of_the_honest_norm() -> None:
    honest = {"w": torch.full((100, 100), 0.01), "b": torch.full((100,), -0.02)}
    disguised = disguised_free_ride(honest, _rng(2))
    assert delta_norm(disguised) == pytest.approx(0.1 * delta_norm(honest), rel=0.02)
    assert disguised["w"].shape == (100, 100) and disguised["b"].shape == (100,)


@pytest.mark.parametrize(
    ("total", "attackers", "z"),
    [
        (10, 1, 0.0),  # s = 6 - 1 = 5, Phi^-1(5 / 10)
        (10, 2, 0.2533471031357997),  # s = 4, Phi^-1(0.6)
        (10, 3, 0.5244005127080407),  # s = 3, Phi^-1(0.7)
        (50, 12, 0.5828415072712162),  # s = 14, Phi^-1(0.72)
    ],
)
def test_alie_z_follows_baruch_et_al(total: int, attackers: int, z: float) -> None:
    assert alie_z(total, attackers) == pytest.approx(z, abs=1e-12)


@pytest.mark.parametrize(("total", "attackers"), [(10, 0), (10, 10), (3, 5)])
def test_alie_z_refuses_impossible_counts(total: int, attackers: int) -> None:
    with pytest.raises(ConfigError, match="attackers"):
        alie_z(total, attackers)


def test_little_is_enough_is_mean_minus_z_std() -> None:
    # Prepare: per coordinate the honest values are (1, 2, 3) and (4, 4, 4), and b is (0, -3, 6).
    known = [_delta([[1.0, 4.0]], [0.0]), _delta([[2.0, 4.0]], [-3.0]), _delta([[3.0, 4.0]], [6.0])]
    z = 0.5244005127080407  # 10 workers, 3 attackers
    # Execute
    crafted = little_is_enough(known, 10, 3)
    # Assert: sample std of (1, 2, 3) is 1, of (4, 4, 4) is 0, of (0, -3, 6) is sqrt(21)
    assert crafted["w"][0].tolist() == pytest.approx([2.0 - z, 4.0], abs=1e-6)
    assert crafted["b"].tolist() == pytest.approx([1.0 - z * math.sqrt(21.0)], abs=1e-6)
    assert crafted["w"].dtype == torch.float32


def test_inner_product_manipulation_is_minus_epsilon_times_the_mean() -> None:
    known = [_delta([[2.0, 4.0]], [1.0]), _delta([[4.0, 8.0]], [-3.0])]
    assert inner_product_manipulation(known)["w"][0].tolist() == pytest.approx([-0.3, -0.6], abs=1e-7)
    assert inner_product_manipulation(known)["b"].tolist() == pytest.approx([0.1], abs=1e-7)
    assert _as_lists(inner_product_manipulation(known, 10.0)) == {"b": [10.0], "w": [[-30.0, -60.0]]}


def test_free_ride_is_zero_with_the_same_layout() -> None:
    assert _as_lists(free_ride(DELTA)) == {"b": [0.0], "w": [[0.0, 0.0], [0.0, 0.0]]}


def test_copy_update_copies_the_update_the_generator_picks() -> None:
    known = [_delta([[1.0, 1.0]], [1.0]), _delta([[2.0, 2.0]], [2.0]), _delta([[3.0, 3.0]], [3.0])]
    victim = int(_rng(9).integers(3))
    copied = copy_update(known, _rng(9))
    assert _as_lists(copied) == _as_lists(known[victim])
    copied["w"] += 1  # a copy, not a view of the victim's tensors
    assert known[victim]["w"].tolist() == [[victim + 1.0, victim + 1.0]]


@pytest.mark.parametrize("attack", [little_is_enough, inner_product_manipulation, copy_update])
def test_omniscient_attacks_need_the_honest_updates(attack) -> None:
    args = {little_is_enough: ([], 10, 3), inner_product_manipulation: ([],), copy_update: ([], _rng())}
    with pytest.raises(ConfigError, match="honest updates"):
        attack(*args[attack])


def test_registry_crafts_each_attack_from_the_same_inputs() -> None:
    # Prepare
    own = _delta([[1.0, -1.0]], [2.0])
    known = [_delta([[2.0, 0.0]], [1.0]), _delta([[4.0, 2.0]], [3.0])]
    # Execute
    crafted = {name: attack.craft(own, known, _rng(3), 10, 3) for name, attack in ATTACKS.items()}
    # Assert
    assert _as_lists(crafted["label_flip"]) == _as_lists(own)  # it poisons the data, not the delta
    assert ATTACKS["label_flip"].poison is flip_labels
    assert _as_lists(crafted["sign_flip"]) == {"b": [-2.0], "w": [[-1.0, 1.0]]}
    assert _as_lists(crafted["scaled"]) == {"b": [200.0], "w": [[100.0, -100.0]]}
    assert crafted["ipm"]["w"][0].tolist() == pytest.approx([-0.3, -0.1], abs=1e-7)
    assert _as_lists(crafted["ipm_large"]) == {"b": [-20.0], "w": [[-30.0, -10.0]]}
    assert _as_lists(crafted["free_rider"]) == {"b": [0.0], "w": [[0.0, 0.0]]}
    assert _as_lists(crafted["copycat"]) in [_as_lists(k) for k in known]
    assert _as_lists(crafted["inflate"]) == _as_lists(own)  # honest work; only its sample count lies
    assert ATTACKS["inflate"].claims == 100 and ATTACKS["inflate"].trains
    assert ATTACKS["copycat"].commits_last and not ATTACKS["sign_flip"].commits_last
    assert {name for name, attack in ATTACKS.items() if not attack.trains} == {
        "alie",
        "ipm",
        "ipm_large",
        "free_rider",
        "copycat",
    }


def test_get_attack_names_the_known_ones() -> None:
    assert get_attack("alie").omniscient
    with pytest.raises(ConfigError, match="sign_flip"):
        get_attack("sign-flip")


# ---------------------------------------------------------------- variants


def _minus(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: a[key].double() - b[key].double() for key in a}


def _direction(rng: np.random.Generator, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """The unit noise direction :func:`perturb` draws: standard normals, keys in sorted order."""
    draws = {key: rng.standard_normal(size=shapes[key]) for key in sorted(shapes)}
    length = math.sqrt(sum(float(np.square(d).sum()) for d in draws.values()))
    return {key: d / length for key, d in draws.items()}


def test_variants_are_named_base_plus_variant_with_what_each_attacker_sees() -> None:
    names = attack_names()
    assert names[: len(ATTACKS)] == tuple(ATTACKS)
    # 11 bases; no free_rider+jitter; stale only for omniscient bases.
    assert len(ATTACKS) == 11
    assert len(names) == len(ATTACKS) + 10 + 11 + 4
    assert "free_rider+jitter" not in names and "free_rider+evade" in names
    assert [n for n in names if n.endswith("+stale")] == [
        "alie+stale",
        "ipm+stale",
        "ipm_large+stale",
        "copycat+stale",
    ]
    assert {base_name(n) for n in names} == set(ATTACKS)
    assert get_attack("copycat+jitter").sees == "round" and get_attack("copycat+jitter").commits_last
    assert get_attack("label_flip+jitter").poison is flip_labels and get_attack("label_flip+jitter").live
    assert get_attack("sign_flip+evade").omniscient and get_attack("sign_flip+evade").trains
    stale = get_attack("alie+stale")
    assert (stale.sees, stale.omniscient, stale.trains, stale.commits_last) == (
        "previous_round",
        False,
        True,
        False,
    )
    assert set(live_attack_names()) == {
        "label_flip",
        "sign_flip",
        "gaussian",
        "scaled",
        "free_rider",
        "disguised_free_rider",
        "inflate",
        "label_flip+jitter",
        "sign_flip+jitter",
        "gaussian+jitter",
        "scaled+jitter",
        "disguised_free_rider+jitter",
        "inflate+jitter",
    }
    # An over-claimer's variants claim as much as it does; nothing else claims more than it trained on.
    assert {n: get_attack(n).claims for n in names if get_attack(n).claims != 1} == {
        "inflate": 100,
        "inflate+jitter": 100,
        "inflate+evade": 100,
    }


def test_an_attack_knows_the_updates_its_sight_allows() -> None:
    this_round, previous_round = [DELTA], [DELTA, DELTA]
    assert get_attack("alie").known(this_round, previous_round) == this_round
    assert get_attack("alie+stale").known(this_round, previous_round) == previous_round
    assert get_attack("sign_flip+jitter").known(this_round, previous_round) == []


def test_jitter_adds_each_attackers_own_noise_of_a_fixed_share_of_the_norm() -> None:
    # Prepare: 10,000 coordinates; sign_flip keeps the honest norm.
    own = {"w": torch.linspace(-1.0, 1.0, 10_000).reshape(100, 100), "b": torch.full((3,), 0.5)}
    attack = get_attack("sign_flip+jitter")
    # Execute: two attackers with their own generators
    first, second = (attack.craft(own, [], _rng(seed), 10, 3) for seed in (11, 12))
    # Assert
    noises = [_minus(crafted, sign_flip(own)) for crafted in (first, second)]
    for noise in noises:
        assert delta_norm(noise) == pytest.approx(JITTER_RELATIVE_NORM * delta_norm(own), rel=1e-4)
    assert delta_norm(_minus(first, second)) > 0.2 * delta_norm(own)  # independent, so about 0.15 x sqrt(2)
    assert JITTER_RELATIVE_NORM == 0.15


def test_jittered_alie_differs_per_attacker_around_the_same_vector() -> None:
    known = [_delta([[1.0, 4.0]], [0.0]), _delta([[2.0, 4.0]], [-3.0]), _delta([[3.0, 4.0]], [6.0])]
    attack = get_attack("alie+jitter")
    base = little_is_enough(known, 10, 3)
    crafted = [attack.craft(DELTA, known, _rng(seed), 10, 3) for seed in (1, 2)]
    for delta in crafted:
        assert delta_norm(_minus(delta, base)) == pytest.approx(0.15 * delta_norm(base), rel=1e-5)
    assert crafted[0]["w"].tolist() != crafted[1]["w"].tolist()


def test_honest_spread_is_the_median_distance_to_the_coordinate_wise_median() -> None:
    # Points (w, b): (0, 0), (3, 4), (6, 8), (3, -4); coordinate-wise median (3, 2); distances sqrt(13), 2,
    # sqrt(45), 6; median of four: (sqrt(13) + 6) / 2.
    known = [_delta([[0.0]], [0.0]), _delta([[3.0]], [4.0]), _delta([[6.0]], [8.0]), _delta([[3.0]], [-4.0])]
    assert honest_spread(known) == pytest.approx((math.sqrt(13.0) + 6.0) / 2, rel=1e-12)
    assert honest_spread(known[:1]) == 0.0
    with pytest.raises(ConfigError, match="honest updates"):
        honest_spread([])


def test_evade_adds_noise_of_the_honest_spread() -> None:
    # Prepare: w = (0, 0), (3, 4), (6, 8): median (3, 4), distances 5, 0, 5, so the spread is 5.
    known = [_delta([[0.0, 0.0]], [1.0]), _delta([[3.0, 4.0]], [1.0]), _delta([[6.0, 8.0]], [1.0])]
    reference = _rng(4)
    copied = copy_update(known, reference)
    direction = _direction(reference, {"b": (1,), "w": (1, 2)})
    # Execute
    crafted = get_attack("copycat+evade").craft(DELTA, known, _rng(4), 10, 3)
    # Assert
    noise = _minus(crafted, copied)
    assert delta_norm(noise) == pytest.approx(5.0, rel=1e-6)
    for key in ("b", "w"):
        assert noise[key].numpy() == pytest.approx(5.0 * direction[key], abs=1e-6)


def test_stale_alie_crafts_from_the_previous_rounds_honest_updates_plus_its_jitter() -> None:
    # Prepare: round 0's honest updates, as in test_little_is_enough_is_mean_minus_z_std.
    previous = [_delta([[1.0, 4.0]], [0.0]), _delta([[2.0, 4.0]], [-3.0]), _delta([[3.0, 4.0]], [6.0])]
    z = 0.5244005127080407
    alie = {"b": np.array([1.0 - z * math.sqrt(21.0)]), "w": np.array([[2.0 - z, 4.0]])}
    alie_norm = math.sqrt(sum(float(np.square(a).sum()) for a in alie.values()))
    direction = _direction(_rng(7), {"b": (1,), "w": (1, 2)})
    # Execute: round 1; the round's own honest updates are not passed, they are not known yet
    attack = get_attack("alie+stale")
    crafted = attack.craft(DELTA, attack.known([], previous), _rng(7), 10, 3)
    # Assert
    for key in ("b", "w"):
        expected = alie[key] + 0.15 * alie_norm * direction[key]
        assert crafted[key].numpy() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("alie+stale", DELTA),  # the only known update is its own: mean = own, std = 0
        ("ipm+stale", inner_product_manipulation([DELTA])),  # -0.1 x own
    ],
)
def test_stale_attacks_fall_back_to_their_own_delta_in_round_zero(name: str, base: dict) -> None:
    direction = _direction(_rng(8), {"b": (1,), "w": (2, 2)})
    crafted = get_attack(name).craft(DELTA, [], _rng(8), 10, 3)
    for key in ("b", "w"):
        expected = base[key].double().numpy() + 0.15 * delta_norm(base) * direction[key]
        assert crafted[key].numpy() == pytest.approx(expected, abs=1e-6)


def test_stale_copycat_copies_its_own_delta_in_round_zero() -> None:
    reference = _rng(8)
    assert reference.integers(1) == 0  # the victim draw, from a list of one
    direction = _direction(reference, {"b": (1,), "w": (2, 2)})
    crafted = get_attack("copycat+stale").craft(DELTA, [], _rng(8), 10, 3)
    for key in ("b", "w"):
        expected = DELTA[key].double().numpy() + 0.15 * delta_norm(DELTA) * direction[key]
        assert crafted[key].numpy() == pytest.approx(expected, abs=1e-6)


def test_get_attack_resolves_variants_and_refuses_unknown_ones() -> None:
    assert get_attack("alie+stale").name == "alie+stale"
    with pytest.raises(ConfigError, match=r"\+jitter, \+evade, \+stale"):
        get_attack("alie+late")
    with pytest.raises(ConfigError, match=r"unknown attack 'free_rider\+jitter'"):
        get_attack("free_rider+jitter")
