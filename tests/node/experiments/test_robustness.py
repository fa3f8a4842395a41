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
    FEDAVG,
    FULL_GRID,
    NO_ATTACK,
    NON_IID_GRID,
    PIPELINES,
    QUICK_GRID,
    QUICK_NON_IID_GRID,
    Cell,
    Grid,
    ServerMomentum,
    attacker_indices,
    cell_key,
    cell_spec,
    headline,
    load_results,
    momentum_step,
    non_iid_table,
    run_cell,
    run_grid,
    summarize,
    write_non_iid_outputs,
    write_outputs,
)
from cotrain.learning.attacks import ATTACKS, attack_names
from cotrain.protocol import round_judge
from cotrain.protocol.round_record import Reason
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
    assert FULL_GRID.attacks == (ABSENT, *attack_names())
    attacks = len(attack_names()) + 1  # every base attack and variant, and the attackers staying away
    assert len(cells) == per_setting * len(FULL_GRID.pipelines) * (1 + 3 * attacks)
    assert sum(c.attack == NO_ATTACK for c in cells) == per_setting * len(FULL_GRID.pipelines)
    assert {c.fraction for c in cells if c.attack == NO_ATTACK} == {0.0}
    assert len({cell_key(c, FULL_GRID) for c in cells}) == len(cells)
    # The quick grid: 2 data sets x 2 partitions x 1 seed x 3 pipelines x (fraction 0 once, and 0.3 with
    # every base attack, five variants and the attackers staying away), a small part of the full one.
    assert QUICK_GRID.attacks == (
        ABSENT,
        *ATTACKS,
        "label_flip+jitter",
        "alie+jitter",
        "copycat+jitter",
        "alie+evade",
        "alie+stale",
    )
    assert len(QUICK_GRID.cells()) == 2 * 2 * 1 * 3 * (1 + 1 + len(ATTACKS) + 5)
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
    assert f"| attack | {PLAIN} | {SCREENED} |" in table
    clean = [100 * results[(p, NO_ATTACK)]["accuracy"] for p in (PLAIN, SCREENED)]
    assert f"| accuracy, no attack (%) | {clean[0]:.1f} | {clean[1]:.1f} |" in table
    assert f"| scaled | {expected:.1f} | " in table
    share = 100 * results[(PLAIN, "scaled")]["attacker_reward_share"]
    assert f"| scaled | {share:.1f} | 0.0 |" in table  # the attackers' reward share
    assert paths["headline"].read_text(encoding="utf-8") == headline(summary)
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


def test_a_stale_attack_runs_in_the_harness_and_its_result_names_it() -> None:
    cell = Cell("digits", "iid", SCREENED, "alie+stale", 0.3, 0)
    result = run_cell(cell, TINY)
    assert result["attack"] == "alie+stale"
    assert result["key"].startswith(f"digits/iid/{SCREENED}/alie+stale/0.3/0#")
    assert result["attackers"] == 3
    assert sum(result["attacker_reasons"].values()) == 3 * 2  # every attacker's update, both rounds
    assert sum(result["honest_reasons"].values()) == 7 * 2
    assert run_cell(cell, TINY) == result  # reproducible: every attacker's noise is seeded


def _summary_cell(partition: str, pipeline: str, attack: str, fraction: float = 0.3, **fields) -> dict:
    return {
        "dataset": "digits",
        "partition": partition,
        "pipeline": pipeline,
        "attack": attack,
        "fraction": fraction,
        "honest_reasons": {},
        **fields,
    }


def _synthetic_summary() -> dict:
    """Two pipelines, both partitions, ``absent`` and three attacks; the worst values are picked by hand."""

    def plain(partition: str, attack: str, drop, beyond, attacker: float, honest: float, reasons=None):
        return _summary_cell(
            partition,
            PLAIN,
            attack,
            drop_pp=drop,
            drop_vs_absent_pp=beyond,
            attacker_reward_share=attacker,
            honest_reward_share=honest,
            honest_reasons=reasons or {},
        )

    def screened(partition: str, attack: str, attacker: float, honest: float) -> dict:
        return _summary_cell(
            partition, SCREENED, attack, attacker_reward_share=attacker, honest_reward_share=honest
        )

    cells = [
        # absent is no attack: its 50-point drop is not the worst, but its slashed honest updates count
        plain("iid", ABSENT, 50.0, 0.0, 0.0, 1.0),
        plain("iid", "alie", 5.0, 4.0, 0.2, 0.8, {"ok": 10, "outlier": 2, "low_score": 3}),
        plain("iid", "alie+stale", 12.0, 11.5, 0.25, 0.75, {"duplicate": 1, "unavailable": 4}),
        plain("iid", "gaussian", 3.0, 2.0, 0.1, 0.9),
        plain("dirichlet", ABSENT, 30.0, 0.0, 0.0, 1.0, {"outlier": 5, "ok": 3}),
        plain("dirichlet", "alie", 20.0, 8.0, 0.3, 0.7),
        plain("dirichlet", "alie+stale", 15.0, 11.0, 0.1, 0.9),
        plain("dirichlet", "gaussian", 2.0, -1.0, 0.05, 0.6, {"free_rider": 1}),
        # fraction 0 is not the largest: its slashed updates do not count
        _summary_cell("iid", PLAIN, NO_ATTACK, 0.0, honest_reasons={"outlier": 100}),
        screened("iid", "alie", 0.05, 0.9),
        screened("iid", "alie+stale", 0.0, 0.95),
        screened("iid", "gaussian", 0.0, 1.0),
        screened("dirichlet", "alie", 0.0, 0.95),
        screened("dirichlet", "alie+stale", 0.12, 0.9),
        screened("dirichlet", "gaussian", 0.0, 1.0),
    ]
    settings = {
        "datasets": ["digits"],
        "pipelines": [{"name": PLAIN}, {"name": SCREENED}],
        "partitions": ["iid", "dirichlet"],
        "fractions": [0.0, 0.3],
        "attacks": [ABSENT, "alie", "gaussian", "alie+stale"],
    }
    return {"settings": settings, "cells": cells}


# Worst drop IID, non-IID, non-IID beyond absent, attackers' largest share, honest smallest share.
PLAIN_WORST = "12.0 (alie+stale) | 20.0 (alie) | 11.0 (alie+stale) | 30.0% (alie) | 60.0% (gaussian)"


def test_headline_reports_the_worst_over_attacks_and_variants() -> None:
    lines = headline(_synthetic_summary()).splitlines()
    assert lines[0] == "### Headline: 30% attackers, worst over 3 attacks and variants"
    # Slashed honest updates: outlier 2 + duplicate 1 + free_rider 1 + outlier 5 (absent); not ok, low_score,
    # unavailable, nor the 100 at fraction 0.
    assert f"| digits | {PLAIN} | {PLAIN_WORST} | 9 |" in lines
    # Screened: no drops recorded; the smallest honest share ties between alie and its stale variant.
    assert f"| digits | {SCREENED} | - | - | - | 12.0% (alie+stale) | 90.0% (alie and 1 more) | 0 |" in lines
    family = lines[
        lines.index(f"### Attackers' reward share (max over each family's variants), {SCREENED}") :
    ]
    assert family[2:] == [
        "| attack | digits |",
        "|---|---|",
        "| alie | 12.0% (alie+stale) |",
        "| gaussian | 0.0% (gaussian) |",
    ]


def test_headline_names_every_attack_when_all_tie() -> None:
    summary = _synthetic_summary()
    for cell in summary["cells"]:
        if cell["pipeline"] == PLAIN and cell["attack"] not in (ABSENT, NO_ATTACK):
            cell["attacker_reward_share"] = 0.368
    for cell in summary["cells"]:
        if cell["pipeline"] == SCREENED:
            cell["attacker_reward_share"] = 0.0
    text = headline(summary)
    assert "| 36.8% (every attack) |" in text
    assert "| alie | 0.0% (every variant) |" in text


def test_headline_counts_as_slashed_what_the_round_judge_slashes(monkeypatch: pytest.MonkeyPatch) -> None:
    # If the judge spared duplicates, the honest duplicate would no longer count: the set is the judge's.
    monkeypatch.setattr(round_judge, "NOT_SLASHED", round_judge.NOT_SLASHED | {Reason.DUPLICATE})
    assert f"| digits | {PLAIN} | {PLAIN_WORST} | 8 |" in headline(_synthetic_summary()).splitlines()


# ---------------------------------------------------------------- non-IID: FedProx and server momentum


def test_momentum_step_on_hand_computed_values() -> None:
    # Prepare
    state = {"w": torch.tensor([1.0, 2.0])}
    judged = {"w": torch.tensor([2.0, 0.0])}  # the round moved the model by [1, -2]

    # Execute
    first, velocity = momentum_step(state, judged, None, ServerMomentum(0.5, 2.0))
    second, again = momentum_step(state, judged, {"w": torch.tensor([0.5, 0.5])}, ServerMomentum(0.5, 2.0))

    # Assert
    assert first["w"].tolist() == [3.0, -2.0]  # no velocity yet: 2 x [1, -2]
    assert velocity["w"].tolist() == [1.0, -2.0]
    assert again["w"].tolist() == [1.25, -1.75]  # 0.5 x [0.5, 0.5] + [1, -2]
    assert second["w"].tolist() == [3.5, -1.5]
    assert state["w"].tolist() == [1.0, 2.0]  # inputs untouched


def test_the_non_iid_grid_compares_optimizers_on_the_default_pipeline_without_attackers() -> None:
    names = [p.name for p in NON_IID_GRID.pipelines]
    assert names[0] == FEDAVG.name
    assert {"fedprox mu=0.1", "fedavgm beta=0.5 lr=1.0", "server lr 1.5"} <= set(names)
    assert all(p.aggregation == {"rule": "fedavg"} for p in NON_IID_GRID.pipelines)
    cells = NON_IID_GRID.cells()
    assert {c.attack for c in cells} == {NO_ATTACK}
    assert len(cells) == 2 * 2 * 5 * len(names)
    assert len({cell_key(c, NON_IID_GRID) for c in cells}) == len(cells)
    # The CNN is the shipped digits spec's own: 3 local epochs.
    cnn = cell_spec(Cell("digits_cnn", "dirichlet", "fedprox mu=0.1", NO_ATTACK, 0.0, 4), NON_IID_GRID)
    assert (cnn.model.name, cnn.training.local_epochs, cnn.training.proximal_mu) == ("cnn", 3, 0.1)
    assert (
        cell_spec(Cell("digits", "iid", FEDAVG.name, NO_ATTACK, 0.0, 0), NON_IID_GRID).training.proximal_mu
        is None
    )


def test_server_momentum_is_in_the_cell_key_though_not_in_the_spec() -> None:
    plain = Cell("digits", "iid", FEDAVG.name, NO_ATTACK, 0.0, 0)
    momentum = Cell("digits", "iid", "fedavgm beta=0.5 lr=1.0", NO_ATTACK, 0.0, 0)

    assert cell_spec(plain, NON_IID_GRID) == cell_spec(momentum, NON_IID_GRID)
    assert cell_key(plain, NON_IID_GRID).split("#")[1] != cell_key(momentum, NON_IID_GRID).split("#")[1]


def test_quick_non_iid_run_trains_with_fedprox_and_steps_with_momentum(tmp_path: Path) -> None:
    # Prepare
    grid = Grid(**{**QUICK_NON_IID_GRID.__dict__, "rounds": 2})

    # Execute
    results = run_grid(grid, tmp_path / "runs.jsonl")
    paths = write_non_iid_outputs(results, grid, tmp_path)

    # Assert
    runs = {(r["partition"], r["pipeline"]): r for r in results}
    for partition in ("iid", "dirichlet"):
        plain = runs[(partition, FEDAVG.name)]["accuracy_per_round"]
        prox = runs[(partition, "fedprox mu=0.1")]["accuracy_per_round"]
        momentum = runs[(partition, "fedavgm beta=0.5 lr=1.0")]["accuracy_per_round"]
        assert prox[0] != plain[0]  # the proximal term changes local training from the first round
        # Momentum's first step is the judged model itself (up to float32 rounding); then it carries on.
        assert momentum[0] == pytest.approx(plain[0], abs=1.01 / 359)
        assert momentum[1] != plain[1]
        assert all(r["honest_reasons"] == {"ok": 20} for r in results if r["partition"] == partition)
    table = paths["table"].read_text(encoding="utf-8")
    assert table == non_iid_table(results, grid)
    assert "| setting | IID: mean (min) | Dir(0.3): mean (min) | Dir(0.3) vs fedavg, same seeds |" in table
    summary = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert {c["pipeline"] for c in summary["cells"]} == {p.name for p in grid.pipelines}
    assert summary["settings"]["pipelines"][2]["server_momentum"] == {"beta": 0.5, "lr": 1.0}


def test_non_iid_table_pairs_seeds_against_the_first_setting() -> None:
    # Prepare
    grid = Grid(
        datasets=("digits",),
        pipelines=QUICK_NON_IID_GRID.pipelines[:2],
        attacks=(),
        fractions=(0.0,),
        seeds=(0, 1),
        rounds=5,
    )
    accuracy = {  # (partition, setting, seed)
        ("iid", "fedavg", 0): 0.90,
        ("iid", "fedavg", 1): 0.92,
        ("dirichlet", "fedavg", 0): 0.80,
        ("dirichlet", "fedavg", 1): 0.86,
        ("iid", "fedprox mu=0.1", 0): 0.91,
        ("iid", "fedprox mu=0.1", 1): 0.89,
        ("dirichlet", "fedprox mu=0.1", 0): 0.85,
        ("dirichlet", "fedprox mu=0.1", 1): 0.84,
    }
    results = [
        {"dataset": "digits", "partition": p, "pipeline": n, "attack": NO_ATTACK, "seed": s, "accuracy": a}
        for (p, n, s), a in accuracy.items()
    ]

    # Execute
    table = non_iid_table(results, grid)

    # Assert
    assert "### digits: mlp, local epochs 1, 5 rounds, 10 contributors, 2 seeds" in table
    assert "| fedavg | 91.0 (90.0) | 83.0 (80.0) | - |" in table
    # Dirichlet gains on the same seeds: +5 and -2 points, a mean of +1.5, ahead on one seed.
    assert "| fedprox mu=0.1 | 90.0 (89.0) | 84.5 (84.0) | +1.5 (1 of 2 ahead) |" in table
