"""Presenting an audit: a terminal table, a JSON summary and an HTML report with plots (a round that failed
it is challenged with :func:`cotrain.roles.challenges.file_challenge`)."""

from __future__ import annotations

import html
import json
from pathlib import Path

from cotrain.roles.auditor import RoundAudit
from cotrain.roles.public_audit import NEEDS_A_READER, PUBLIC_CHECKS
from rich.console import Console
from rich.table import Table


def _verdict(audit: RoundAudit) -> str:
    return {True: "PASS", False: "FAIL", None: "-"}[audit.passed]


ADVISORY_NOTE = (
    "accuracy (and loss, and the spec's data.validation.metrics): the new model on the held-out set as this "
    "machine measures it; advisory, not in the round record, so not audited"
)


def print_audit(console: Console, task_id: int, rounds: list[RoundAudit], unit: str) -> None:
    """Print one row per round: status, verdict counts, advisory accuracy, PASS/FAIL and what differed;
    then each update's verdict and reward and slash in ``unit`` (the task's: ``TaskView.unit``; with its
    declared epsilon in a DP task) and, for sealed rounds audited without a reader key, what was and was not
    checked."""
    table = Table(title=f"audit of task {task_id}", caption=ADVISORY_NOTE)
    names = sorted({name for r in rounds for name in r.metrics})
    for column in ("round", "status", "accepted", "rejected", "accuracy*", *(f"{n}*" for n in names)):
        table.add_column(column)
    for column in ("audit", "scope", "problems"):
        table.add_column(column)
    for r in rounds:
        style = {True: "green", False: "bold red", None: "dim"}[r.passed]
        table.add_row(
            str(r.round),
            r.status,
            str(r.accepted),
            str(r.rejected),
            "-" if r.accuracy is None else f"{r.accuracy:.4f}",
            *(f"{r.metrics[n]:.4f}" if n in r.metrics else "-" for n in names),
            f"[{style}]{_verdict(r)}[/]",
            r.scope,
            "; ".join(r.problems),
        )
    console.print(table)
    with_dp = any(u.epsilon is not None for r in rounds for u in r.updates)
    updates = Table(title=f"verdicts and rewards per update; amounts in {unit}")
    columns = ["round", "contributor", "verdict", "reason", "score", "reward", "slash"]
    for column in columns + (["epsilon spent"] if with_dp else []):
        updates.add_column(column)
    for r in rounds:
        for u in r.updates:
            style = "green" if u.verdict == "accepted" else "red"
            updates.add_row(
                str(r.round),
                u.contributor,
                f"[{style}]{u.verdict}[/]",
                u.reason.value,
                u.score,
                str(u.reward),
                str(u.slash),
                *([u.epsilon or "-"] if with_dp else []),
            )
    if updates.row_count:
        console.print(updates)
    if any(r.scope == "public" for r in rounds):
        console.print(
            "sealed updates, audited without a reader key: checked "
            + "; ".join(PUBLIC_CHECKS)
            + ". Not checked (needs a reader key): "
            + "; ".join(NEEDS_A_READER)
            + "."
        )


def _update_rows(audit: RoundAudit) -> list[dict]:
    return [
        {
            "contributor": u.contributor,
            "verdict": u.verdict,
            "reason": u.reason.value,
            "score": u.score,
            "weight": u.weight,
            "reward": str(u.reward),
            "slash": str(u.slash),
            **({} if u.epsilon is None else {"epsilon": u.epsilon}),  # only in tasks with privacy.dp
        }
        for u in audit.updates
    ]


def audit_summary(task_id: int, rounds: list[RoundAudit]) -> dict:
    """The audit as plain JSON data."""
    rewards: dict[str, int] = {}
    for r in rounds:
        for account, amount in r.rewards.items():
            rewards[account] = rewards.get(account, 0) + amount
    return {
        "task_id": task_id,
        "rounds_passed": sum(r.passed is True for r in rounds),
        "rounds_failed": sum(r.passed is False for r in rounds),
        "metrics_note": ADVISORY_NOTE,
        "rounds": [
            {
                "round": r.round,
                "status": r.status,
                "audit": _verdict(r),
                "scope": r.scope,
                "problems": r.problems,
                "accuracy": r.accuracy,
                "loss": r.loss,
                "metrics": r.metrics,
                "accepted": r.accepted,
                "rejected": r.rejected,
                "model_cid": r.model_cid,
                "rewards": {a: str(v) for a, v in r.rewards.items()},
                "updates": _update_rows(r),
            }
            for r in rounds
        ],
        "rewards": {a: str(v) for a, v in sorted(rewards.items())},
        "public_checks": list(PUBLIC_CHECKS) if any(r.scope == "public" for r in rounds) else [],
        "needs_a_reader": list(NEEDS_A_READER) if any(r.scope == "public" for r in rounds) else [],
    }


def write_html(path: Path, task_id: int, rounds: list[RoundAudit], unit: str) -> None:
    """A self-contained HTML report: the round table, accuracy per round and rewards per contributor (in
    ``unit``, the task's)."""
    summary = audit_summary(task_id, rounds)
    rows = "".join(
        f"<tr><td>{r.round}</td><td>{r.status}</td><td>{r.accepted}</td><td>{r.rejected}</td>"
        f"<td>{'' if r.accuracy is None else f'{r.accuracy:.4f}'}</td><td>{_verdict(r)}</td>"
        f"<td>{html.escape('; '.join(r.problems))}</td></tr>"
        for r in rounds
    )
    update_rows = "".join(
        f"<tr><td>{r['round']}</td><td>{u['contributor']}</td><td>{u['verdict']}</td><td>{u['reason']}</td>"
        f"<td>{u['score']}</td><td>{u['reward']}</td><td>{u['slash']}</td></tr>"
        for r in summary["rounds"]
        for u in r["updates"]
    )
    accuracy = [(r.round, r.accuracy) for r in rounds if r.accuracy is not None]
    rewards = [(a[:10], int(v)) for a, v in summary["rewards"].items()]
    path.write_text(
        f"""<!doctype html><html><head><meta charset="utf-8"><title>cotrain audit of task {task_id}</title>
<style>body{{font-family:sans-serif;margin:2em}} td,th{{padding:.2em .8em;border-bottom:1px solid #ddd}}
</style>
</head><body><h1>Audit of task {task_id}</h1>
<p>{summary["rounds_passed"]} rounds passed, {summary["rounds_failed"]} failed.</p>
<table><tr><th>round</th><th>status</th><th>accepted</th><th>rejected</th><th>accuracy*</th><th>audit</th>
<th>problems</th></tr>{rows}</table>
<p>* {html.escape(ADVISORY_NOTE)}.</p>
<h2>Verdicts and rewards per update</h2>
<p>Amounts in {html.escape(unit)}.</p>
<table><tr><th>round</th><th>contributor</th><th>verdict</th><th>reason</th><th>score</th>
<th>reward</th><th>slash</th></tr>{update_rows}</table>
<h2>Accuracy per round (advisory, this machine)</h2>{_line_svg(accuracy)}
<h2>Rewards per contributor ({html.escape(unit)})</h2>{_bar_svg(rewards)}
<script type="application/json" id="summary">{html.escape(json.dumps(summary))}</script>
</body></html>
""",
        encoding="utf-8",
    )


def _line_svg(points: list[tuple[int, float]], width: int = 480, height: int = 200) -> str:
    if not points:
        return "<p>no accepted rounds</p>"
    span = max(len(points) - 1, 1)
    xy = [
        (40 + (width - 60) * i / span, height - 20 - (height - 40) * acc) for i, (_, acc) in enumerate(points)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    labels = "".join(
        f'<text x="{x:.1f}" y="{height - 4}" font-size="11">{rnd}</text>'
        f'<text x="{x:.1f}" y="{y - 6:.1f}" font-size="11">{acc:.3f}</text>'
        for (x, y), (rnd, acc) in zip(xy, points, strict=True)
    )
    return (
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline points="{path}" fill="none" stroke="#2a6" stroke-width="2"/>{labels}</svg>'
    )


def _bar_svg(bars: list[tuple[str, int]], width: int = 480, row: int = 22) -> str:
    if not bars:
        return "<p>no rewards</p>"
    top = max(v for _, v in bars) or 1
    items = "".join(
        f'<text x="0" y="{i * row + 15}" font-size="11">{html.escape(label)}</text>'
        f'<rect x="90" y="{i * row + 4}" width="{(width - 100) * v / top:.1f}" height="{row - 8}"'
        ' fill="#36c"/>'
        for i, (label, v) in enumerate(bars)
    )
    return f'<svg width="{width}" height="{len(bars) * row}" xmlns="http://www.w3.org/2000/svg">{items}</svg>'
