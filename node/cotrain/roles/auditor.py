"""The auditor: rebuilds a task's history from chain events alone, re-runs every accepted round from the
stored inputs and checks each digest and Merkle root the validators proposed. The accuracy and loss it
reports are its own, measured on this machine: advisory, not part of the record, so not checked.

A task that seals its updates is re-run only with one of its reader keys; without one the audit runs the
public checks of :mod:`cotrain.roles.public_audit` and says what it could not check."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cotrain.chain.market import Proposal, RoundStatus
from cotrain.errors import CotrainError
from cotrain.learning.data import ArrayDataset
from cotrain.protocol.round_record import RoundRecord, UpdateEntry
from cotrain.roles.public_audit import public_problems
from cotrain.roles.sealed_updates import check_reader
from cotrain.roles.task_view import TaskView
from cotrain.roles.validator import judge
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

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
    metrics: dict[str, float] = field(default_factory=dict)  # the spec's data.validation.metrics, advisory
    accepted: int = 0
    rejected: int = 0
    model_cid: str | None = None
    rewards: dict[str, int] = field(default_factory=dict)
    updates: list[UpdateEntry] = field(default_factory=list)  # verdict, reason, score and amounts of each
    # "full": re-run from the updates; "public": a sealed round checked without a reader key.
    scope: str = "full"


def audit_task(
    view: TaskView, held_out: ArrayDataset, reader_key: X25519PrivateKey | None = None
) -> list[RoundAudit]:
    """Audit every round of the viewed task that has a result on-chain (a sealed task: with ``reader_key``,
    fully; without, the public checks).

    Raises
    ------
    ConfigError
        If ``reader_key`` is given and is not one of the task's readers'.
    """
    view.refresh()
    if reader_key is not None:
        check_reader(view.spec, reader_key, view.task_id)
    task = view.market.get_task(view.task_id)
    last = min(task.current_round, task.params.num_rounds - 1)
    return [audit_round(view, round_, held_out, reader_key) for round_ in range(last + 1)]


def audit_round(
    view: TaskView, round_: int, held_out: ArrayDataset, reader_key: X25519PrivateKey | None = None
) -> RoundAudit:
    """Re-derive ``round_`` and compare it with what the quorum proposed."""
    status = view.market.get_round(view.task_id, round_).status
    audit = RoundAudit(round=round_, status=status.name.lower(), passed=None)
    if status not in (RoundStatus.ACCEPTED, RoundStatus.FINALIZED):
        return audit
    proposal = view.accepted_proposal(round_)
    if proposal is None:  # settled between the status read and this one
        return audit
    spec = view.spec
    if reader_key is None and spec.privacy is not None and spec.privacy.readers is not None:
        return _audit_public(view, round_, audit, proposal)
    try:
        outcome = judge(view, round_, held_out, reader_key)
    except CotrainError as error:
        audit.passed = False
        audit.problems.append(f"cannot re-run the round: {error}")
        return audit
    record = outcome.record
    audit.problems = _against_proposal(proposal, record, outcome.record_ref.digest)
    audit.passed = not audit.problems
    audit.accuracy = outcome.advisory_metrics.accuracy
    audit.loss = outcome.advisory_metrics.loss
    audit.metrics = outcome.advisory_metrics.extra
    return _with_record(audit, record, proposal)


def _audit_public(view: TaskView, round_: int, audit: RoundAudit, proposal: Proposal) -> RoundAudit:
    """The keyless audit of a sealed round: the checks of :func:`public_problems` on the accepted record."""
    audit.scope = "public"
    try:
        record = view.accepted_record(round_)  # fetched by the proposal's record digest
        audit.problems = public_problems(view, round_, record)
    except CotrainError as error:
        audit.passed = False
        audit.problems.append(f"cannot check the round: {error}")
        return audit
    audit.problems += _against_proposal(proposal, record, proposal.record_digest)
    audit.passed = not audit.problems
    return _with_record(audit, record, proposal)


def _with_record(audit: RoundAudit, record: RoundRecord, proposal: Proposal) -> RoundAudit:
    audit.accepted = sum(u.verdict == "accepted" for u in record.updates)
    audit.rejected = len(record.updates) - audit.accepted
    audit.model_cid = proposal.model_cid
    audit.rewards = {a.account: a.amount for a in record.reward_allocations}
    audit.updates = list(record.updates)
    return audit


def _against_proposal(proposal: Proposal, record: RoundRecord, record_digest: bytes) -> list[str]:
    """Where the proposal differs from ``record`` (whose canonical bytes hash to ``record_digest``)."""
    checks: dict[str, tuple[bytes | int, bytes | int]] = {
        "model digest": (proposal.model_digest, record.new_model.digest),
        "record digest": (proposal.record_digest, record_digest),
        "rewards root": (proposal.rewards_root, record.rewards_root),
        "slash root": (proposal.slash_root, record.slash_root),
        "reward total": (proposal.reward_total, record.reward_total),
    }
    return [
        f"{name}: proposed {_show(onchain)}, recomputed {_show(mine)}"
        for name, (onchain, mine) in checks.items()
        if onchain != mine
    ]


def _show(value: bytes | int) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)
