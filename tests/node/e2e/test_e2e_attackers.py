"""`cotrain demo --attackers`: live attacker processes in a real network, caught or capped by validators."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cotrain.demo import parse_attackers
from cotrain.errors import ConfigError
from e2e_helpers import RunCli, builtin_spec, logs_of

ROUNDS = 2
ATTACKS = ["scaled", "free_rider", "inflate"]


def test_demo_with_attackers_pays_the_honest_and_an_over_claimer_no_more_than_them(
    run_cli: RunCli, tmp_path: Path
) -> None:
    directory = tmp_path / "demo"
    summary_path = tmp_path / "summary.json"
    result = run_cli(
        "demo",
        "--contributors",
        6,
        "--validators",
        2,
        "--rounds",
        ROUNDS,
        "--dataset",
        "breast_cancer",
        "--attackers",
        "scaled:1,free_rider,inflate",
        "--dir",
        directory,
        "--summary",
        summary_path,
        timeout=300,
    )
    assert result.returncode == 0, result.explain() + "\n" + logs_of(directory)
    assert f"audit: {ROUNDS} rounds passed, 0 failed" in result.stdout, result.explain()
    summary = json.loads(summary_path.read_text(encoding="utf-8"))

    people = summary["contributor_results"]
    assert [p["role"] for p in people] == ["honest"] * 3 + ATTACKS
    assert [p["reasons"] for p in people] == [["ok"] * ROUNDS] * 3 + [
        ["outlier"] * ROUNDS,
        ["free_rider"] * ROUNDS,
        ["ok"] * ROUNDS,
    ]
    paid = {p["role"]: int(p["reward_wei"]) for p in people if p["role"] != "honest"}
    honest_paid = [int(p["reward_wei"]) for p in people if p["role"] == "honest"]
    assert all(amount > 0 for amount in honest_paid)
    assert paid["scaled"] == paid["free_rider"] == 0
    # It trained honestly but claims 100 times its samples: paid for the median claim, like the others.
    assert 0 < paid["inflate"] <= max(honest_paid)
    assert sum(honest_paid) + paid["inflate"] == int(builtin_spec("breast_cancer")["budget_wei"])
    share = paid["inflate"] / (sum(honest_paid) + paid["inflate"])
    assert f"attackers received {share:.1%} of the rewards paid" in result.stdout, result.explain()
    assert [(r["accepted"], r["rejected"]) for r in summary["rounds"]] == [(4, 2)] * ROUNDS
    assert summary["market_balance_wei"] == "0"


def test_attackers_option_is_read_into_one_name_per_attacker() -> None:
    assert parse_attackers("", 4) == ()
    assert parse_attackers("sign_flip:2, free_rider", 4) == ("sign_flip", "sign_flip", "free_rider")
    assert parse_attackers("label_flip+jitter:2", 4) == ("label_flip+jitter", "label_flip+jitter")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("poison", "unknown attack 'poison'"),
        ("alie:1", "cannot run live"),
        ("copycat", "cannot run live"),
        ("alie+stale", "cannot run live"),
        ("sign_flip+evade", "cannot run live"),
        ("copycat+jitter", "cannot run live"),
        ("scaled:x", "not NAME or NAME:COUNT"),
        ("scaled:4", "leave at least one honest contributor"),
    ],
)
def test_bad_attackers_option_is_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_attackers(text, 4)
