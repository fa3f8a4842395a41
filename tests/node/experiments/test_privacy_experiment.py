"""The quick run of ``cotrain experiment privacy``: its files, that the attacks measure a leak, that every
accuracy setting spends its epsilon; and the experiment's pure parts on hand-made numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cotrain.errors import ConfigError
from cotrain.experiments.privacy import (
    DELTA,
    QUICK,
    SEALED,
    TOLERANCE,
    Recipe,
    recipes,
    run,
    smallest_epsilon_meeting,
)
from cotrain.privacy.dp import NOISE_RATIO, Mechanism, epsilon, noise_for_epsilon


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("privacy")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run(QUICK, out)
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_quick_run_writes_the_three_files(results: tuple[Path, dict[str, Any]]) -> None:
    out, _ = results
    for name in ("results.json", "table.md", "inversion.png"):
        assert (out / name).stat().st_size > 0
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "Gradient inversion" in table and "Membership inference" in table and "accuracy" in table


def test_results_have_the_documented_fields(results: tuple[Path, dict[str, Any]]) -> None:
    _, data = results
    assert set(data) == {"config", "delta", "inversion", "membership", "accuracy", "targets"}
    inversion_fields = {
        "setting",
        "noise_multiplier",
        "epsilon",
        "mse",
        "match_accuracy",
        "labels_recovered",
        "note",
    }
    assert all(set(row) == inversion_fields for row in data["inversion"])
    membership_fields = {
        "setting",
        "target_epsilon",
        "epsilon",
        "noise_multiplier",
        "update_auc",
        "global_auc",
        "global_accuracy",
        "note",
    }
    assert all(set(row) == membership_fields for row in data["membership"])
    accuracy_fields = {
        "dataset",
        "mechanism",
        "setting",
        "target_epsilon",
        "epsilon",
        "noise_multiplier",
        "recipe",
        "batch_size",
        "validation_accuracy",
        "accuracies",
        "accuracy",
        "accuracy_min",
        "accuracy_max",
    }
    assert all(set(row) == accuracy_fields for row in data["accuracy"])
    assert {row["dataset"] for row in data["accuracy"]} == {"digits", "breast_cancer"}


def test_dp_hides_what_the_public_update_shows(results: tuple[Path, dict[str, Any]]) -> None:
    _, data = results
    rows = {row["setting"]: row for row in data["inversion"]}
    public = rows["public"]
    noised = [row for row in data["inversion"] if row["epsilon"] is not None]
    smallest = min(noised, key=lambda row: row["epsilon"])
    assert public["mse"] < smallest["mse"]
    assert public["match_accuracy"] == 1.0
    sealed = rows[SEALED]
    assert sealed["mse"] is None and sealed["note"] == "no update to invert"


def test_membership_leaks_from_the_update_not_from_the_base(results: tuple[Path, dict[str, Any]]) -> None:
    _, data = results
    rows = {row["setting"]: row for row in data["membership"]}
    assert rows["no DP"]["update_auc"] > 0.6
    assert abs(rows[SEALED]["update_auc"] - 0.5) < 0.1


def test_every_dp_accuracy_setting_spends_its_target_epsilon(results: tuple[Path, dict[str, Any]]) -> None:
    _, data = results
    for dataset in ("digits", "breast_cancer"):
        rows = [row for row in data["accuracy"] if row["dataset"] == dataset]
        assert [row["mechanism"] for row in rows if row["target_epsilon"] is None] == ["none"]
        for mechanism in ("sample", "user"):
            dp = {row["target_epsilon"]: row for row in rows if row["mechanism"] == mechanism}
            assert sorted(dp) == sorted(QUICK.accuracy_epsilons)
            for target, row in dp.items():
                assert 0.98 * target <= row["epsilon"] <= target * (1 + 1e-9)
                assert row["noise_multiplier"] > 0


def test_accuracy_rows_summarize_each_seed_of_a_recipe_from_the_grid(
    results: tuple[Path, dict[str, Any]],
) -> None:
    _, data = results
    for row in data["accuracy"]:
        assert len(row["accuracies"]) == len(QUICK.seeds)
        assert row["accuracy_min"] <= row["accuracy"] <= row["accuracy_max"]
        assert Recipe(**row["recipe"]) in recipes(QUICK, row["mechanism"])
        assert 0.0 <= row["validation_accuracy"] <= 1.0
    baseline = {row["dataset"]: row["accuracy"] for row in data["accuracy"] if row["mechanism"] == "none"}
    # Without DP, two rounds must learn both tasks well above chance (0.1 and about 0.6).
    assert baseline["digits"] > 0.8 and baseline["breast_cancer"] > 0.9


def test_targets_follow_from_the_accuracy_rows(results: tuple[Path, dict[str, Any]]) -> None:
    _, data = results
    assert len(data["targets"]) == 4
    for target in data["targets"]:
        rows = [row for row in data["accuracy"] if row["dataset"] == target["dataset"]]
        assert target["tolerance"] == TOLERANCE[target["dataset"]]
        assert target["baseline"] == next(row["accuracy"] for row in rows if row["mechanism"] == "none")
        met = [
            row["target_epsilon"]
            for row in rows
            if row["mechanism"] == target["mechanism"]
            and row["accuracy"] >= target["baseline"] - target["tolerance"] - 1e-9
        ]
        if target["smallest_epsilon"] is None:
            assert max(QUICK.accuracy_epsilons) not in met
        else:
            assert target["smallest_epsilon"] in met and max(QUICK.accuracy_epsilons) in met


# --- pure parts ---------------------------------------------------------------------------------------------


def test_smallest_epsilon_is_the_start_of_the_run_of_grid_points_meeting_the_target() -> None:
    # Prepare: baseline 0.95, tolerance 0.05, so the floor is 0.90; epsilon 2 meets it but 4 does not.
    by_epsilon = {1.0: 0.80, 2.0: 0.91, 4.0: 0.89, 8.0: 0.90, 16.0: 0.93}
    # Execute / Assert
    assert smallest_epsilon_meeting(0.95, 0.05, by_epsilon) == 8.0
    assert smallest_epsilon_meeting(0.95, 0.10, by_epsilon) == 2.0
    assert smallest_epsilon_meeting(0.95, 0.00, by_epsilon) is None
    assert smallest_epsilon_meeting(0.8, 0.0, by_epsilon) == 1.0


@pytest.mark.parametrize(("target", "rounds"), [(0.5, 10), (1.0, 3), (8.0, 10), (32.0, 3)])
def test_noise_for_epsilon_is_the_least_lattice_noise_within_the_target(target: float, rounds: int) -> None:
    # User-level rounds: the accountant is fast at sampling rate 1; the quick run covers DP-SGD's rates.
    def schedule(sigma: float) -> list[Mechanism]:
        return [Mechanism.user(sigma)] * rounds

    sigma = noise_for_epsilon(target, DELTA, schedule)
    assert 0.98 * target <= epsilon(schedule(sigma), DELTA) <= target
    assert epsilon(schedule(sigma / NOISE_RATIO), DELTA) > target


def test_noise_for_epsilon_refuses_a_target_no_lattice_noise_reaches() -> None:
    with pytest.raises(ConfigError, match="no noise multiplier"):
        noise_for_epsilon(1e-4, DELTA, lambda sigma: [Mechanism.sample(sigma, 1.0, 10**6)])
