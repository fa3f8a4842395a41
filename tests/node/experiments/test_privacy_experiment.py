"""The quick run of ``cotrain experiment privacy``: its files, and that the attacks measure a leak."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cotrain.experiments.privacy import QUICK, SEALED, run


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
    assert set(data) == {"config", "delta", "inversion", "membership", "accuracy"}
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
    accuracy_fields = {"dataset", "setting", "target_epsilon", "epsilon", "noise_multiplier", "accuracy"}
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
