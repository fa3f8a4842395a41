"""The auditor: rebuilds a task's history from chain events alone, re-runs every accepted round from the
stored inputs and checks each digest and Merkle root the validators proposed. The accuracy and loss it
reports are its own, measured on this machine: advisory, not part of the record, so not checked."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cotrain.chain.market import RoundStatus
from cotrain.errors import CotrainError
from cotrain.learning.data import ArrayDataset
from cotrain.protocol.round_record import UpdateEntry
from cotrain.roles.task_view import TaskView
from cotrain.roles.validator import judge

log = logging.getLogger(__name__)


@dataclass
class RoundAudit:
    """The audit of one round."""

    round: int
    status: str
    passed: bool | None  # None: nothing to check (failed, voided or still open)
    problems: list[str] = field(default_factory=list)
    # The new model's held-out accuracy and loss as this machine measures them (advisory, never hashed).
    accuracy: float | None = None
    loss: float | None = None
    accepted: int = 0
    rejected: int = 0
    model_cid: str | None = None
    rewards: dict[str, int] = field(default_factory=dict)
    updates: list[UpdateEntry] = field(default_factory=list)  # verdict, reason, score and amounts of each


def audit_task(view: TaskView, held_out: ArrayDataset) -> list[RoundAudit]:
    """Audit every round of the viewed task that has a result on-chain."""
    view.refresh()
    task = view.market.get_task(view.task_id)
    last = min(task.current_round, task.params.num_rounds - 1)
    return [audit_round(view, round_, held_out) for round_ in range(last + 1)]


def audit_round(view: TaskView, round_: int, held_out: ArrayDataset) -> RoundAudit:
    """Re-derive ``round_`` and compare it with what the quorum proposed."""
    status = view.market.get_round(view.task_id, round_).status
    audit = RoundAudit(round=round_, status=status.name.lower(), passed=None)
    if status not in (RoundStatus.ACCEPTED, RoundStatus.FINALIZED):
        return audit
    proposal = view.accepted_proposal(round_)
    if proposal is None:  # settled between the status read and this one
        return audit
    try:
        outcome = judge(view, round_, held_out)
    except CotrainError as error:
        audit.passed = False
        audit.problems.append(f"cannot re-run the round: {error}")
        return audit
    record = outcome.record
    checks: dict[str, tuple[bytes | int, bytes | int]] = {
        "model digest": (proposal.model_digest, record.new_model.digest),
        "record digest": (proposal.record_digest, outcome.record_ref.digest),
        "rewards root": (proposal.rewards_root, record.rewards_root),
        "slash root": (proposal.slash_root, record.slash_root),
        "reward total": (proposal.reward_total, record.reward_total),
    }
    audit.problems = [
        f"{name}: proposed {_show(onchain)}, recomputed {_show(mine)}"
        for name, (onchain, mine) in checks.items()
        if onchain != mine
    ]
    audit.passed = not audit.problems
    audit.accuracy = outcome.advisory_metrics.accuracy
    audit.loss = outcome.advisory_metrics.loss
    audit.accepted = sum(u.verdict == "accepted" for u in record.updates)
    audit.rejected = len(record.updates) - audit.accepted
    audit.model_cid = proposal.model_cid
    audit.rewards = {a.account: a.amount for a in record.reward_allocations}
    audit.updates = list(record.updates)
    return audit


def _show(value: bytes | int) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)
