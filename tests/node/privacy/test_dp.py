"""Differential privacy for contributors: the clip and noise of an update, DP-SGD and the privacy ledger."""

import itertools
import json
import math

import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, load_builtin
from cotrain.learning.models import build_model
from cotrain.learning.state import model_state
from cotrain.privacy.dp import (
    Mechanism,
    PrivacyLedger,
    clip_and_noise,
    epsilon,
    fresh_generator,
    train_local_dp,
)
from opacus.accountants import RDPAccountant

DELTA = 1e-5
# Written out here rather than read from Opacus: the orders its RDP accountant searches by default.
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))


def _norm(state: dict[str, torch.Tensor]) -> float:
    return math.sqrt(sum(float(t.double().square().sum()) for t in state.values()))


def _update(scale: float) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "b": torch.randn(7, generator=generator) * scale,
        "w": torch.randn(5, 3, generator=generator) * scale,
    }


def _hand_epsilon(rounds: int, sigma: float, delta: float = DELTA) -> float:
    """The Gaussian mechanism at sample rate 1: RDP T a / (2 sigma^2) at order a, converted to (eps, delta) by
    Balle et al. 2020, Theorem 21 (the conversion opacus.accountants.analysis.rdp.get_privacy_spent makes)."""
    return min(
        rounds * a / (2 * sigma**2) - (math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a)
        for a in ORDERS
    )


@pytest.fixture(scope="module")
def breast_cancer() -> ArrayDataset:
    return load_builtin("breast_cancer")


# --- clip_and_noise -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("clip", [0.5, 1.0, 3.0])
def test_clipping_bounds_the_whole_update_norm(clip):
    update = _update(10.0)
    clipped = clip_and_noise(update, clip, 0.0, torch.Generator().manual_seed(1))
    assert _norm(clipped) <= clip * (1 + 1e-6)
    assert _norm(clipped) == pytest.approx(clip, rel=1e-6)
    # One scale for every tensor: the direction is kept.
    ratio = clipped["w"] / update["w"]
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio))
    assert torch.allclose(clipped["b"] / update["b"], ratio.flatten()[0].expand(7))


def test_an_update_already_within_the_bound_is_not_scaled():
    update = _update(0.01)
    assert _norm(update) < 1.0
    clipped = clip_and_noise(update, 1.0, 0.0, torch.Generator().manual_seed(1))
    assert all(torch.equal(clipped[key], update[key]) for key in update)
    assert list(clipped) == ["b", "w"]


def test_the_input_update_is_not_modified():
    update = _update(10.0)
    copy = {key: tensor.clone() for key, tensor in update.items()}
    clip_and_noise(update, 1.0, 1.0, torch.Generator().manual_seed(1))
    assert all(torch.equal(update[key], copy[key]) for key in update)


def test_noise_has_standard_deviation_sigma_times_clip():
    clip, sigma = 2.0, 0.75
    update = {"w": torch.zeros(100_000)}
    noised = clip_and_noise(update, clip, sigma, torch.Generator().manual_seed(3))["w"].double()
    assert float(noised.std()) == pytest.approx(sigma * clip, rel=0.01)
    assert abs(float(noised.mean())) < 5 * sigma * clip / math.sqrt(100_000)


def test_the_same_seed_gives_the_same_noise_and_fresh_generators_differ():
    update = _update(1.0)
    first = clip_and_noise(update, 1.0, 1.0, torch.Generator().manual_seed(9))
    again = clip_and_noise(update, 1.0, 1.0, torch.Generator().manual_seed(9))
    assert all(torch.equal(first[key], again[key]) for key in update)
    one = clip_and_noise(update, 1.0, 1.0, fresh_generator())
    other = clip_and_noise(update, 1.0, 1.0, fresh_generator())
    assert not torch.equal(one["w"], other["w"])


@pytest.mark.parametrize(("clip", "sigma"), [(0.0, 1.0), (-1.0, 1.0), (math.inf, 1.0), (1.0, -0.1)])
def test_bad_clip_or_noise_is_a_config_error(clip, sigma):
    with pytest.raises(ConfigError):
        clip_and_noise(_update(1.0), clip, sigma, torch.Generator())


# --- accounting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rounds", "sigma"), [(1, 1.0), (1, 4.0), (5, 2.0), (20, 8.0), (100, 30.0)])
def test_user_level_epsilon_matches_the_hand_computation(rounds, sigma):
    ledger = PrivacyLedger({r: Mechanism.user(sigma) for r in range(rounds)})
    assert ledger.spent(DELTA) == pytest.approx(_hand_epsilon(rounds, sigma), abs=1e-9)


def test_sample_level_epsilon_matches_opacus_rdp_accountant():
    sigma, rate, steps, rounds = 1.1, 64 / 569, 9, 4
    accountant = RDPAccountant()
    for _ in range(rounds * steps):
        accountant.step(noise_multiplier=sigma, sample_rate=rate)
    ledger = PrivacyLedger({r: Mechanism.sample(sigma, rate, steps) for r in range(rounds)})
    assert ledger.spent(DELTA) == pytest.approx(accountant.get_epsilon(DELTA), abs=1e-9)


def test_mixed_rounds_compose_as_in_opacus_rdp_accountant():
    accountant = RDPAccountant()
    accountant.step(noise_multiplier=5.0, sample_rate=1.0)
    for _ in range(10):
        accountant.step(noise_multiplier=1.0, sample_rate=0.1)
    accountant.step(noise_multiplier=5.0, sample_rate=1.0)
    ledger = PrivacyLedger()
    ledger.record(0, Mechanism.user(5.0))
    ledger.record(1, Mechanism.sample(1.0, 0.1, 10))
    ledger.record(2, Mechanism.user(5.0))
    assert ledger.spent(DELTA) == pytest.approx(accountant.get_epsilon(DELTA), abs=1e-9)


def test_asking_again_for_the_same_noise_and_rate_matches_a_fresh_accountant():
    for steps in (10, 1000, 10):
        accountant = RDPAccountant()
        accountant.history = [(0.9, 0.25, steps)]
        assert epsilon([Mechanism.sample(0.9, 0.25, steps)], DELTA) == accountant.get_epsilon(DELTA)


def test_epsilon_grows_with_every_round():
    ledger = PrivacyLedger()
    spent = [ledger.spent(DELTA)]
    for round_ in range(8):
        ledger.record(round_, Mechanism.user(3.0) if round_ % 2 else Mechanism.sample(1.0, 0.05, 20))
        spent.append(ledger.spent(DELTA))
    assert spent[0] == 0.0
    assert all(later > earlier for earlier, later in itertools.pairwise(spent))


@pytest.mark.parametrize("k", [1, 4, 10])
def test_spent_with_passes_the_budget_exactly_at_the_first_round_past_it(k):
    budget = 2.0
    # T rounds at sigma have the RDP of one round at sigma / sqrt(T): find the sigma at which the k-th round
    # spends 1% more than the budget, so rounds 1 .. k-1 stay within it.
    low, high = 0.1, 1000.0
    for _ in range(200):
        sigma = (low + high) / 2
        low, high = (low, sigma) if _hand_epsilon(k, sigma) < budget * 1.01 else (sigma, high)
    assert _hand_epsilon(k, sigma) > budget >= _hand_epsilon(k - 1, sigma)
    ledger = PrivacyLedger()
    for round_ in range(1, k + 1):
        refused = ledger.spent_with(round_, Mechanism.user(sigma), DELTA) > budget
        assert refused == (round_ == k), f"round {round_}"
        if not refused:
            ledger.record(round_, Mechanism.user(sigma))
    assert len(ledger.rounds) == k - 1
    assert ledger.spent(DELTA) <= budget
    # A round already recorded (retrained after a crash) is not spent twice.
    if ledger.rounds:
        assert ledger.spent_with(1, Mechanism.user(sigma), DELTA) == ledger.spent(DELTA)


def test_a_round_is_recorded_once():
    ledger = PrivacyLedger({3: Mechanism.user(1.0)})
    with pytest.raises(ConfigError, match="already"):
        ledger.record(3, Mechanism.user(2.0))


@pytest.mark.parametrize(
    "args",
    [
        ("user", 1.0, 0.5, 1),
        ("user", 1.0, 1.0, 2),
        ("sample", 0.0, 0.1, 1),
        ("sample", 1.0, 1.5, 1),
        ("x", 1, 1, 1),
    ],
)
def test_an_impossible_mechanism_is_a_config_error(args):
    with pytest.raises(ConfigError):
        Mechanism(*args)


def test_ledger_json_round_trip():
    ledger = PrivacyLedger({0: Mechanism.user(2.5), 7: Mechanism.sample(1.1, 64 / 569, 9)})
    text = json.dumps(ledger.to_json())
    again = PrivacyLedger.from_json(json.loads(text))
    assert again.rounds == ledger.rounds
    assert again.spent(DELTA) == ledger.spent(DELTA)
    assert json.dumps(again.to_json()) == text


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"version": 2, "rounds": []},
        {"version": 1, "rounds": {}},
        {"version": 1, "rounds": [{"round": 0, "mechanism": "user"}]},
        {
            "version": 1,
            "rounds": [
                {"round": 0, "mechanism": "user", "noise_multiplier": "1", "sample_rate": 1.0, "steps": 1}
            ],
        },
    ],
)
def test_a_ledger_that_is_not_one_is_a_config_error(data):
    with pytest.raises(ConfigError):
        PrivacyLedger.from_json(data)


# --- DP-SGD -------------------------------------------------------------------------------------------------


def _logistic(dataset: ArrayDataset) -> torch.nn.Module:
    return build_model(
        "logistic", {}, input_shape=dataset.input_shape, num_classes=dataset.num_classes, seed=0
    )


def _train(dataset: ArrayDataset, generator: torch.Generator | None, model: torch.nn.Module | None = None):
    model = model if model is not None else _logistic(dataset)
    return train_local_dp(
        model,
        model_state(_logistic(dataset)),
        dataset,
        epochs=1,
        batch_size=64,
        lr=0.1,
        optimizer="sgd",
        seed=0,
        noise_multiplier=1.1,
        max_grad_norm=1.0,
        delta=DELTA,
        generator=generator,
    )


def test_dp_sgd_trains_one_epoch_and_accounts_it(breast_cancer):
    model = _logistic(breast_cancer)
    result, spent = _train(breast_cancer, torch.Generator().manual_seed(0), model)
    start = model_state(_logistic(breast_cancer))
    assert list(result.delta) == list(start)
    assert all(result.delta[key].shape == start[key].shape for key in start)
    assert all(torch.isfinite(tensor).all() for tensor in result.delta.values())
    assert any(tensor.abs().sum() > 0 for tensor in result.delta.values())
    assert result.samples == len(breast_cancer)
    assert math.isfinite(result.loss)
    # Opacus samples each example with probability 1 / (batches per epoch), one step per batch.
    assert result.mechanism == Mechanism.sample(1.1, 1 / 9, 9)
    assert math.isfinite(spent) and spent > 0
    assert spent == pytest.approx(PrivacyLedger({0: result.mechanism}).spent(DELTA), abs=1e-12)
    # Opacus's hooks and per-example gradients are gone from the caller's model.
    assert not any(hasattr(p, "grad_sample") for p in model.parameters())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_dp_sgd_batches_and_noise_come_from_the_generator(breast_cancer):
    first, _ = _train(breast_cancer, torch.Generator().manual_seed(5))
    again, _ = _train(breast_cancer, torch.Generator().manual_seed(5))
    fresh, _ = _train(breast_cancer, None)
    assert all(torch.equal(first.delta[key], again.delta[key]) for key in first.delta)
    assert not torch.equal(first.delta["1.weight"], fresh.delta["1.weight"])


def test_a_model_opacus_cannot_handle_is_a_config_error(breast_cancer):
    model = torch.nn.Sequential(torch.nn.Linear(30, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="DP-SGD"):
        _train(breast_cancer, torch.Generator(), model)


def test_dp_sgd_rejects_bad_privacy_parameters(breast_cancer):
    model = _logistic(breast_cancer)
    common = {"epochs": 1, "batch_size": 64, "lr": 0.1, "optimizer": "sgd", "seed": 0}
    for override in ({"noise_multiplier": 0.0}, {"max_grad_norm": -1.0}, {"delta": 1.0}):
        privacy = {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": DELTA, **override}
        with pytest.raises(ConfigError):
            train_local_dp(model, model_state(model), breast_cancer, **common, **privacy)
