"""Tests for cotrain.roles.audit_report: the task's advisory metrics in the audit table and summary."""

from __future__ import annotations

from cotrain.roles.audit_report import audit_summary, print_audit
from cotrain.roles.auditor import RoundAudit
from rich.console import Console


def _rounds() -> list[RoundAudit]:
    return [
        RoundAudit(
            0, "finalized", True, accuracy=0.981, metrics={"auprc": 0.6123, "recall_at_fpr:0.01": 0.7}
        ),
        RoundAudit(1, "open", None),
    ]


def test_the_audit_table_has_a_column_per_metric() -> None:
    console = Console(record=True, width=200)

    print_audit(console, 3, _rounds(), "wei")

    text = console.export_text()
    assert "auprc*" in text and "recall_at_fpr:0.01*" in text
    row = next(line for line in text.splitlines() if "PASS" in line)
    assert "0.9810" in row and "0.6123" in row and "0.7000" in row


def test_the_audit_summary_carries_the_metrics() -> None:
    summary = audit_summary(3, _rounds())

    assert [r["metrics"] for r in summary["rounds"]] == [{"auprc": 0.6123, "recall_at_fpr:0.01": 0.7}, {}]
