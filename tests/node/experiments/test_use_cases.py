"""The quick run of ``cotrain experiment use-cases``: its files, a row per case, seed and setting with the
case's metrics in range, and the table that becomes docs/use-cases.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cotrain.experiments.use_cases import QUICK, SETTINGS, markdown, run, step_count


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    out = tmp_path_factory.mktemp("use-cases")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    steps: list[str] = []
    try:
        run(QUICK, out, steps.append)
    finally:
        torch.set_num_threads(threads)
    return out, json.loads((out / "results.json").read_text(encoding="utf-8")), steps


def test_quick_run_writes_a_row_per_case_seed_and_setting(results) -> None:
    out, data, steps = results
    rows = data["rows"]
    assert [(r["case"], r["setting"]) for r in rows] == [
        (case, setting) for case in ("hospital", "bank", "phone") for setting in SETTINGS
    ]
    assert len(steps) == step_count(QUICK) == len(rows)
    assert all(len(r["participants"]) == QUICK.contributors for r in rows if r["setting"] == "alone")
    assert (out / "use-cases.md").read_text(encoding="utf-8") == markdown(QUICK, rows)


def test_every_case_reports_its_metrics_in_range(results) -> None:
    _, data, _ = results
    for row in data["rows"]:
        scores = row["scores"]
        assert 0 <= scores["accuracy"] <= 1
        if row["case"] == "hospital":
            assert set(scores) == {"accuracy", "auroc"} and scores["auroc"] > 0.9
        elif row["case"] == "bank":
            assert set(scores) == {"accuracy", "auprc", "recall_at_fpr:0.01"}
            assert 0.2 < scores["auprc"] <= 1 and 0.2 < scores["recall_at_fpr:0.01"] <= 1
        else:
            assert set(scores) == {"accuracy", "perplexity", "top_k_accuracy:3"}
            assert 1 < scores["perplexity"] < 1001 and scores["top_k_accuracy:3"] > scores["accuracy"]


def test_the_table_has_a_section_per_case_and_a_line_per_setting(results) -> None:
    out, _, _ = results
    table = (out / "use-cases.md").read_text(encoding="utf-8")
    for heading in ("## hospital:", "## bank:", "## phone:"):
        assert heading in table
    assert table.count("| federated |") == table.count("| alone |") == table.count("| centralized |") == 3
    assert "Alone, each participant's auprc: city" in table
