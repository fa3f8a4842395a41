"""Presenting an account's standing (see :mod:`cotrain.roles.account_status`): a terminal table per task and
the same numbers as JSON, amounts as decimal strings in the task's currency (``unit`` names it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cotrain.roles.account_status import RoundResult, TaskStanding, describe
from cotrain.roles.challenges import Challenge
from cotrain.roles.challenges import describe as describe_challenge
from rich.console import Console
from rich.table import Table

COLUMNS = (
    "round",
    "status",
    "verdict",
    "reason",
    "score",
    "reward",
    "slashed",
    "forfeited",
    "claimed",
    "claimable",
)
VERDICT_STYLES = {"accepted": "green", "rejected": "bold red", "not revealed": "red", "forfeited": "bold red"}


def _locked(standing: TaskStanding) -> str:
    parts = []
    unit = standing.unit
    if standing.contributor:
        joined = "joined" if standing.joined else "left"
        parts.append(f"contributor ({joined}), stake {standing.stake_wei} {unit}")
    if standing.validator:
        part = f"validator, bond {standing.bond_wei} {unit}"
        if standing.bond_slashed_wei:
            part += f" (slashed {standing.bond_slashed_wei} {unit})"
        parts.append(part)
    return "; ".join(parts) or "no role"


def print_status(console: Console, account: str, standings: Sequence[TaskStanding]) -> None:
    """Print a table per task (a row per round) with its totals, the stake and the bond."""
    if not standings:
        console.print(f"{account} took part in no task on this market")
        return
    for s in standings:
        title = f"task {s.task_id} ({s.task_status}): {account}; amounts in {s.unit}"
        table = Table(title=title, caption=_locked(s))
        for column in COLUMNS:
            table.add_column(column)
        for r in s.rounds:
            style = VERDICT_STYLES.get(r.verdict)
            table.add_row(
                str(r.round),
                r.status,
                f"[{style}]{r.verdict}[/]" if style else r.verdict,
                r.reason,
                r.score or "-",
                str(r.reward_wei),
                _slash_cell(r),
                str(r.forfeited_wei),
                "yes" if r.claimed else "-" if not r.reward_wei else "no",
                str(r.claimable_wei),
            )
        if s.rounds:
            table.add_section()
            table.add_row(
                "total",
                "",
                "",
                "",
                "",
                str(s.rewarded_wei),
                str(s.slashed_wei),
                str(s.forfeited_wei),
                str(s.claimed_wei),
                str(s.claimable_wei),
            )
        console.print(table)
        unit = s.unit
        line = (
            f"task {s.task_id}: rewarded {s.rewarded_wei} {unit}, claimed {s.claimed_wei} {unit}, "
            f"claimable {s.claimable_wei} {unit}, slashed {s.slashed_wei} {unit}"
        )
        if s.forfeited_wei:
            line += f", forfeited {s.forfeited_wei} {unit}"
        declared = [r for r in s.rounds if r.epsilon is not None]
        if declared:
            last = declared[-1]
            line += f"; privacy spent: epsilon {last.epsilon} (declared in round {last.round})"
        console.print(line)
        for challenge in s.challenges:
            console.print(f"task {s.task_id}: {describe_challenge(challenge, unit)}")


def _slash_cell(r: RoundResult) -> str:
    if r.slash_wei and r.slashed_wei != r.slash_wei:
        return f"{r.slashed_wei} of {r.slash_wei}"
    return str(r.slashed_wei)


def round_json(r: RoundResult, unit: str) -> dict[str, Any]:
    """One round's result as JSON data (amounts as strings, in ``unit``)."""
    return {
        "round": r.round,
        "status": r.status,
        "verdict": r.verdict,
        "reason": r.reason,
        "score": r.score,
        "reward_wei": str(r.reward_wei),
        "slash_wei": str(r.slash_wei),
        "slashed_wei": str(r.slashed_wei),
        "claimed": r.claimed,
        "claimed_wei": str(r.claimed_wei),
        "claimable_wei": str(r.claimable_wei),
        "forfeited_wei": str(r.forfeited_wei),
        "summary": describe(r, unit),
        **({} if r.epsilon is None else {"epsilon": r.epsilon}),  # only in tasks with privacy.dp
    }


def challenge_json(c: Challenge, unit: str) -> dict[str, Any]:
    """One challenge as JSON data (amounts as strings, in ``unit``)."""
    return {
        "round": c.round,
        "evidence_cid": c.evidence_cid,
        "outcome": c.outcome,
        "bond_wei": str(c.bond_wei),
        "payout_wei": str(c.payout_wei),
        "bond_returned": c.returned,
        "bond_withdrawable": c.withdrawable,
        "summary": describe_challenge(c, unit),
    }


def status_summary(account: str, standings: Sequence[TaskStanding]) -> dict[str, Any]:
    """The account's standing as JSON data: per task its unit, roles, stake, bond, totals and rounds."""
    return {
        "account": account,
        "tasks": [
            {
                "task_id": s.task_id,
                "status": s.task_status,
                "unit": s.unit,
                "roles": list(s.roles),
                "joined": s.joined,
                "stake_wei": str(s.stake_wei),
                "bond_wei": str(s.bond_wei),
                "bond_slashed_wei": str(s.bond_slashed_wei),
                "totals": {
                    "rewarded_wei": str(s.rewarded_wei),
                    "slashed_wei": str(s.slashed_wei),
                    "claimed_wei": str(s.claimed_wei),
                    "claimable_wei": str(s.claimable_wei),
                    "forfeited_wei": str(s.forfeited_wei),
                },
                "rounds": [round_json(r, s.unit) for r in s.rounds],
                "challenges": [challenge_json(c, s.unit) for c in s.challenges],
            }
            for s in standings
        ],
    }
