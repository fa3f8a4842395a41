"""Tests for cotrain.experiments.robustness: a tiny real grid (digits, IID, two rounds, plain FedAvg against
FedAvg with screening, the x100 scaled attack), its resumable results file and its outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from cotrain.experiments.heatmap import colour
from cotrain.experiments.robustness import (
    ABSENT,
    FULL_GRID,
    NO_ATTACK,
    PIPELINES,
    QUICK_GRID,
    Cell,
    Grid,
    attacker_indices,
    cell_key,
    load_results,
    run_cell,
    run_grid,
    summarize,
    write_outputs,
)
from cotrain.learning.attacks import ATTACKS
from PIL import Image

PLAIN, SCREENED = "fedavg (no screening)", "fedavg + screening"
TINY = Grid(
    datasets=("digits",),
    pipelines=tuple(p for p in PIPELINES if p.name in (PLAIN, SCREENED)),
    attacks=("scaled",),
    fractions=(0.0, 0.3),
    partitions=("iid",),
    seeds=(0,),
    rounds=2,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    # As `cotrain experiment robustness` runs: on a busy machine, threads only wait for each other.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[tuple[str, str], dict]]:
    runs = tmp_path_factory.mktemp("robustness") / "runs.jsonl"
    results = run_grid(TINY, runs)
    return runs, {(r["pipeline"], r["attack"]): r for r in results}


def test_the_grid_runs_fraction_zero_once_per_pipeline() -> None:
    cells = FULL_GRID.cells()
    per_setting = len(FULL_GRID.datasets) * len(FULL_GRID.partitions) * len(FULL_GRID.seeds)
    attacks = len(ATTACKS) + 1  # and the attackers staying away
    assert len(cells) == per_setting * len(FULL_GRID.pipelines) * (1 + 3 * attacks)
    assert sum(c.attack == NO_ATTACK for c in cells) == per_setting * len(FULL_GRID.pipelines)
    assert {c.fraction for c in cells if c.attack == NO_ATTACK} == {0.0}
    assert len({cell_key(c, FULL_GRID) for c in cells}) == len(cells)
    # The quick grid: 2 data sets x 2 partitions x 1 seed x 3 pipelines x (fraction 0 once, and 0.3 with
    # every attack and the attackers staying away), a small part of the full one.
    assert len(QUICK_GRID.cells()) == 2 * 2 * 1 * 3 * (1 + attacks)
    assert len(QUICK_GRID.cells()) < len(cells) / 10


def test_the_pipelines_are_the_baselines_and_every_grid_rule_with_screening() -> None:
    # Krum is left out of the grid (Multi-Krum stands for it); there is no held-out-loss pipeline any more.
    assert [p.name for p in PIPELINES] == [
        PLAIN,
        SCREENED,
        "median (no screening)",
        "centered_clip + screening",
        "median + screening",
        "multi_krum + screening",
        "trimmed_mean + screening",
    ]
    assert [p.name for p in QUICK_GRID.pipelines] == [PLAIN, SCREENED, "median + screening"]
    assert all("max_loss_increase" not in json.dumps(p.aggregation) for p in PIPELINES)


def test_attackers_are_nested_across_fractions() -> None:
    picks = [
        attacker_indices(Cell("digits", "iid", PLAIN, "scaled", f, 1), FULL_GRID) for f in (0.1, 0.2, 0.3)
    ]
    assert [len(p) for p in picks] == [1, 2, 3]
    assert set(picks[0]) <= set(picks[1]) <= set(picks[2])


def test_a_cell_key_changes_with_what_determines_its_result() -> None:
    cell = Cell("digits", "iid", PLAIN, "scaled", 0.3, 0)
    assert cell_key(cell, TINY) != cell_key(cell, Grid(**{**TINY.__dict__, "rounds": 3}))
    assert cell_key(cell, TINY).startswith("digits/iid/fedavg (no screening)/scaled/0.3/0#")


def test_results_have_every_field(tiny_run) -> None:
    _, results = tiny_run
    assert set(results) == {
        (PLAIN, NO_ATTACK),
        (PLAIN, "scaled"),
        (SCREENED, NO_ATTACK),
        (SCREENED, "scaled"),
    }
    for result in results.values():
        assert len(result["accuracy_per_round"]) == 2
        assert result["accuracy"] == result["accuracy_per_round"][-1]
        assert 0 <= result["attacker_reward_share"] + result["honest_reward_share"] <= 1
    clean = results[(PLAIN, NO_ATTACK)]
    assert clean["attackers"] == 0
    assert clean["honest_reasons"] == {"ok": 20}
    assert clean["attacker_reasons"] == {}
    assert clean["honest_reward_share"] == pytest.approx(1.0, abs=1e-15)


def test_scaled_updates_ruin_plain_fedavg(tiny_run) -> None:
    _, results = tiny_run
    clean, attacked = results[(PLAIN, NO_ATTACK)], results[(PLAIN, "scaled")]
    assert clean["accuracy"] > 0.8
    assert attacked["accuracy"] < 0.5
    assert attacked["attackers"] == 3
    assert attacked["attacker_reasons"] == {"ok": 6}  # nothing stops them
    # rewards follow sample counts, so the three attackers get their shards' share of the budget
    assert 0.2 < attacked["attacker_reward_share"] < 0.4


def test_screening_rejects_scaled_updates_and_pays_them_nothing(tiny_run) -> None:
    _, results = tiny_run
    clean, attacked = results[(SCREENED, NO_ATTACK)], results[(SCREENED, "scaled")]
    assert attacked["attacker_reasons"] == {"outlier": 6}
    assert attacked["honest_reasons"] == {"ok": 14}
    assert attacked["attacker_reward_share"] == 0.0
    assert attacked["honest_reward_share"] == pytest.approx(1.0, abs=1e-15)
    assert int(attacked["attacker_slash_wei"]) > 0
    assert abs(clean["accuracy"] - attacked["accuracy"]) < 0.05
    # without an attack, screening accepts what plain FedAvg accepts, so the models are the same
    assert clean["accuracy_per_round"] == results[(PLAIN, NO_ATTACK)]["accuracy_per_round"]


def test_a_cell_is_reproducible(tiny_run) -> None:
    _, results = tiny_run
    cell = Cell("digits", "iid", SCREENED, "scaled", 0.3, 0)
    assert run_cell(cell, TINY) == results[(SCREENED, "scaled")]


def test_a_rerun_resumes_instead_of_repeating(tiny_run, tmp_path: Path) -> None:
    runs, _ = tiny_run
    before = runs.read_bytes()
    calls: list[Cell] = []
    again = run_grid(TINY, runs, on_result=lambda cell, result: calls.append(cell))
    assert calls == []
    assert runs.read_bytes() == before
    assert len(again) == 4
    # a line cut short by a crash is ignored and that cell runs again
    partial = tmp_path / "runs.jsonl"
    lines = before.decode().splitlines()
    partial.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40], encoding="utf-8")
    assert len(load_results(partial)) == 3
    rerun = run_grid(TINY, partial, on_result=lambda cell, result: calls.append(cell))
    assert len(calls) == 1
    assert sorted(json.dumps(r, sort_keys=True) for r in rerun) == sorted(lines)
    assert len(load_results(partial)) == 4


def test_outputs_summarize_the_drop(tiny_run, tmp_path: Path) -> None:
    _, results = tiny_run
    paths = write_outputs(list(results.values()), TINY, tmp_path)
    summary = json.loads(paths["json"].read_text(encoding="utf-8"))
    cells = {(c["pipeline"], c["attack"]): c for c in summary["cells"]}
    expected = 100 * (results[(PLAIN, NO_ATTACK)]["accuracy"] - results[(PLAIN, "scaled")]["accuracy"])
    assert cells[(PLAIN, "scaled")]["drop_pp"] == pytest.approx(expected, abs=1e-9)
    assert cells[(PLAIN, "scaled")]["drop_vs_absent_pp"] is None  # the tiny grid has no "absent" runs
    assert summary["settings"]["rounds"] == 2
    table = paths["table"].read_text(encoding="utf-8")
    assert "| pipeline | accuracy, no attack | scaled |" in table
    assert f"| {PLAIN} | {100 * results[(PLAIN, NO_ATTACK)]['accuracy']:.1f} | {expected:.1f} |" in table
    assert f"| {SCREENED} | 0.0 |" in table  # the attackers' reward share
    with Image.open(paths["heatmap"]) as image:
        assert image.format == "PNG" and image.width > 500 and image.height > 200


def test_heatmap_colours() -> None:
    assert colour(0.0) == (255, 255, 255)
    assert colour(30.0) == colour(80.0) == (180, 30, 30)
    assert colour(15.0) == (218, 142, 142)
    assert colour(-30.0) == (135, 255, 135)
    assert colour(None) == colour(float("nan")) == (220, 220, 220)


def test_summarize_pairs_seeds_against_the_absent_run() -> None:
    def run(attack: str, seed: int, accuracy: float, fraction: float = 0.3) -> dict:
        return {
            "dataset": "digits",
            "partition": "iid",
            "pipeline": PLAIN,
            "attack": attack,
            "fraction": fraction,
            "seed": seed,
            "accuracy": accuracy,
            "attacker_reward_share": 0.25,
            "honest_reward_share": 0.75,
            "attacker_reasons": {"ok": 2},
            "honest_reasons": {"ok": 8},
        }

    results = [
        run(NO_ATTACK, 0, 0.9, 0.0),
        run(NO_ATTACK, 1, 0.8, 0.0),
        run(ABSENT, 0, 0.85),
        run(ABSENT, 1, 0.75),
        run("sign_flip", 0, 0.5),
        run("sign_flip", 1, 0.6),
    ]
    cells = {c["attack"]: c for c in summarize(results, TINY)["cells"]}
    assert cells["sign_flip"]["drop_pp"] == pytest.approx(30.0)  # (40 + 20) / 2
    assert cells["sign_flip"]["drop_vs_absent_pp"] == pytest.approx(25.0)  # (35 + 15) / 2
    assert cells["sign_flip"]["accuracy_mean"] == pytest.approx(0.55)
    assert cells["sign_flip"]["attacker_reasons"] == {"ok": 4}
    assert cells[NO_ATTACK]["drop_pp"] == 0.0
