"""Judging one round: a pure function of the round's public inputs.

Validators run it to build their proposal; auditors run it again from chain events and stored files and
must get the same bytes. Given the same spec, base model, revealed updates (in any order) and file contents,
it returns the same round record, model file and Merkle roots on every machine. The new model's held-out
accuracy and loss come from torch kernels, whose last bits depend on the CPU, thread count and batch size, so
they are advisory: returned beside the record (:attr:`RoundOutcome.advisory_metrics`), never hashed. (The
optional ``max_loss_increase`` screening is the exception: its verdicts read the same torch loss.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from cotrain.errors import IntegrityError
from cotrain.learning.aggregation import apply_delta
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import Metrics, evaluate
from cotrain.learning.state import layout
from cotrain.learning.tensor_files import RejectReason, UpdateRejected, decode_tensors, encode_model
from cotrain.protocol.rewards import allocate_rewards
from cotrain.protocol.round_record import Reason, RoundRecord, UpdateEntry, record_bytes
from cotrain.protocol.screening import RoundPipeline
from cotrain.protocol.task_model import binding_matches, task_model, update_metadata
from cotrain.protocol.task_spec import FileRef, TaskSpec
from cotrain.storage.unixfs import compute_cid

_REASONS = {
    RejectReason.OVERSIZE: Reason.TOO_LARGE,
    RejectReason.MALFORMED: Reason.MALFORMED,
    RejectReason.WRONG_DTYPE: Reason.MALFORMED,
    RejectReason.WRONG_KEYS: Reason.SHAPE_MISMATCH,
    RejectReason.WRONG_SHAPE: Reason.SHAPE_MISMATCH,
    RejectReason.NON_FINITE: Reason.NON_FINITE,
    RejectReason.DIGEST_MISMATCH: Reason.DIGEST_MISMATCH,
    RejectReason.MISSING: Reason.UNAVAILABLE,
}
# A file that never arrived may be the network's fault, and an honest update on skewed data can point away
# from the round's consensus; everything else is the contributor's doing.
_NOT_SLASHED = {Reason.UNAVAILABLE, Reason.LOW_SCORE}


@dataclass(frozen=True)
class RevealedUpdate:
    """An update as revealed on-chain.

    ``commit_order`` is its commit's position among the round's commits (equal positions: by address); of
    two near-identical updates the one committed first keeps its verdict.
    """

    contributor: str
    cid: str
    digest: bytes
    samples: int
    commit_order: int = 0


@dataclass(frozen=True)
class RoundOutcome:
    """Everything a validator stores and proposes for a round, and the new model's advisory metrics.

    ``advisory_metrics`` is the new model's accuracy and loss on the held-out set as this machine's torch
    computes them: for logs and reports only. It is neither in the record nor in the proposal, so two honest
    machines whose kernels round differently still propose the same result.
    """

    record: RoundRecord
    record_file: bytes
    model_file: bytes
    state: dict[str, torch.Tensor]
    advisory_metrics: Metrics

    @property
    def record_ref(self) -> FileRef:
        return _file_ref(self.record_file)


def _file_ref(data: bytes) -> FileRef:
    return FileRef(cid=compute_cid(data), digest=hashlib.sha256(data).digest())


def model_file(task_id: int, round_: int, state: dict[str, torch.Tensor]) -> bytes:
    """The global model after ``round_`` (round -1: the initial model) as a canonical safetensors file."""
    return encode_model(state, {"task_id": str(task_id), "after_round": str(round_)})


def judge_round(
    spec: TaskSpec,
    task_id: int,
    round_: int,
    round_budget: int,
    base: FileRef,
    base_state: dict[str, torch.Tensor],
    updates: Sequence[RevealedUpdate],
    fetch: Callable[[RevealedUpdate], bytes],
    held_out: ArrayDataset,
) -> RoundOutcome:
    """Check, screen, aggregate and reward one round (screening and rules: :mod:`cotrain.protocol.screening`).

    Parameters
    ----------
    fetch
        Returns an update's file after checking it against its CID and digest; raises
        :class:`~cotrain.errors.IntegrityError` (or ``UpdateRejected``) when it cannot.
    held_out
        The task's held-out set. The new model is evaluated on it for the outcome's advisory metrics; the
        record depends on it only through the optional ``max_loss_increase`` screening.
    """
    expected = layout(base_state)
    model = task_model(spec)
    loss_increase = None
    if spec.aggregation.screening.max_loss_increase is not None:
        base_loss = evaluate(model, base_state, held_out).loss

        def loss_increase(delta: dict[str, torch.Tensor]) -> float:
            return evaluate(model, apply_delta(base_state, delta), held_out).loss - base_loss

    pipeline = RoundPipeline(spec.aggregation, base_state, loss_increase)
    verdicts: dict[str, Reason] = {}
    for update in sorted(updates, key=lambda u: u.contributor.lower()):
        reason, delta = _check(spec, task_id, round_, base, update, fetch, expected)
        verdicts[update.contributor.lower()] = reason
        if delta is not None:
            pipeline.add(update.contributor, delta, update.samples, update.commit_order)
    result = pipeline.finish()
    state = base_state if result.delta is None else apply_delta(base_state, result.delta)
    metrics = evaluate(model, state, held_out)
    rewards = {
        a.account.lower(): a.amount
        for a in allocate_rewards(
            round_budget, [(who, j.reward_weight) for who, j in result.judgements.items() if j.reward_weight]
        )
    }
    model_bytes = model_file(task_id, round_, state)

    entries = []
    for update in updates:
        who = update.contributor.lower()
        judged = result.judgements.get(who)
        reason = verdicts[who] if judged is None else judged.reason
        ok = reason == Reason.OK
        # model_validate, not the constructor: the fixed-point fields take floats and hold strings.
        entries.append(
            UpdateEntry.model_validate(
                {
                    "contributor": who,
                    "cid": update.cid,
                    "digest": update.digest,
                    "samples": update.samples,
                    "verdict": "accepted" if ok else "rejected",
                    "reason": reason,
                    "score": 0.0 if judged is None else judged.score,
                    "weight": judged.weight if ok and judged is not None else 0.0,
                    "reward": rewards.get(who, 0),
                    "slash": 0 if ok or reason in _NOT_SLASHED else spec.rewards.slash_rejected_wei,
                }
            )
        )
    record = RoundRecord.model_validate(
        {
            "task_id": task_id,
            "round": round_,
            "base_model": base,
            "aggregation": spec.aggregation,
            "updates": entries,
            "new_model": _file_ref(model_bytes),
        }
    )
    return RoundOutcome(record, record_bytes(record), model_bytes, state, advisory_metrics=metrics)


def _check(
    spec: TaskSpec,
    task_id: int,
    round_: int,
    base: FileRef,
    update: RevealedUpdate,
    fetch: Callable[[RevealedUpdate], bytes],
    expected: dict,
) -> tuple[Reason, dict[str, torch.Tensor] | None]:
    """The verdict on one update and, when accepted, its delta."""
    try:
        data = fetch(update)
        tensors, metadata = decode_tensors(data, expected=expected, max_bytes=spec.limits.max_update_bytes)
    except UpdateRejected as rejected:
        return _REASONS[rejected.reason], None
    except IntegrityError:
        return Reason.DIGEST_MISMATCH, None
    binding = update_metadata(task_id, round_, update.contributor, base.digest, update.samples)
    if not binding_matches(metadata, binding):
        return Reason.WRONG_BINDING, None
    if metadata.get("samples") != binding["samples"]:
        return Reason.SAMPLES_MISMATCH, None
    return Reason.OK, tensors
