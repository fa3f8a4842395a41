"""The consensus core: one pure function from a round's pinned inputs to its record and new model file.

Validators run :func:`judge` to build their proposal; auditors run it again from chain events and stored files
and must get the same bytes. Its inputs are each pinned on chain or in the spec: the spec (by its digest), the
base model (by its digest), the revealed updates (CID, digest, sample count, commit position) and the update
files (checked against those digests by ``fetch``). Everything from the decoded files to the record is exact
integer arithmetic on fixed-point values (PROTOCOL.md sections 10 and 11), so no thread count, BLAS, CPU or
Python version can change a bit. Nothing here imports torch, a chain client or a storage client: chain,
storage and the command line call it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cotrain.consensus.fixed_point import NUMBER_FORMATS, FixedPointOverflow, quantize
from cotrain.errors import IntegrityError
from cotrain.learning.tensor_files import (
    RejectReason,
    Tensors,
    UpdateRejected,
    decode_arrays,
    encode_model,
)
from cotrain.protocol.epsilon import EPSILON_KEY, parse_declared, within_budget
from cotrain.protocol.rewards import allocate_rewards
from cotrain.protocol.round_record import Reason, RoundRecord, UpdateEntry, format_micro, record_bytes
from cotrain.protocol.screening import RoundPipeline
from cotrain.protocol.task_spec import FileRef, TaskSpec
from cotrain.protocol.update_binding import binding_matches, update_metadata
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
# A file that never arrived may be the network's fault, an honest update on skewed data can point away from
# the round's consensus, and two honest parties can hold near-identical data; everything else is the
# contributor's doing.
NOT_SLASHED = frozenset({Reason.UNAVAILABLE, Reason.REDUNDANT, Reason.LOW_SCORE})


class FileRejected(IntegrityError):
    """Raised by a ``fetch`` to give an update a record reason itself (e.g. ``undecryptable`` for a sealed
    file that does not open); ``reason`` is that reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"update file rejected ({reason.value}): {detail}")
        self.reason = reason

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.reason, str(self)))


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
class Judged:
    """A judged round: the record, its canonical bytes, the new model's file and its float32 weights."""

    record: RoundRecord
    record_file: bytes
    model_file: bytes
    arrays: dict[str, np.ndarray]

    @property
    def record_ref(self) -> FileRef:
        return file_ref(self.record_file)


def file_ref(data: bytes) -> FileRef:
    """The CID and sha256 digest that name ``data``."""
    return FileRef(cid=compute_cid(data), digest=hashlib.sha256(data).digest())


def model_file(task_id: int, round_: int, state: Tensors) -> bytes:
    """The global model after ``round_`` (round -1: the initial model) as a canonical safetensors file."""
    return encode_model(state, {"task_id": str(task_id), "after_round": str(round_)})


def flatten_arrays(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The float32 values of ``arrays``, names in sorted order, each array row-major."""
    return np.concatenate([np.asarray(arrays[name], dtype=np.float32).reshape(-1) for name in sorted(arrays)])


def apply_aggregate(
    base: Mapping[str, np.ndarray], aggregate: np.ndarray, scale_bits: int
) -> dict[str, np.ndarray]:
    """The new weights ``f32(f64(base) + aggregate * 2**-scale_bits)`` per value, names in sorted order.

    The product is exact (a power of two, ``|aggregate| < 2**53``); the float64 addition and the conversion to
    float32 are the two IEEE roundings, to nearest, ties to even.

    Raises
    ------
    IntegrityError
        If the lengths differ or a new weight is beyond the float32 range.
    """
    total = sum(int(np.asarray(base[name]).size) for name in base)
    if aggregate.size != total:
        raise IntegrityError(f"the aggregate has {aggregate.size} values but the model holds {total}")
    result: dict[str, np.ndarray] = {}
    offset = 0
    for name in sorted(base):
        weights = np.asarray(base[name], dtype=np.float32)
        part = aggregate[offset : offset + weights.size].reshape(weights.shape)
        with np.errstate(over="ignore"):
            exact_step = np.ldexp(part.astype(np.float64), -scale_bits)
            new = (weights.astype(np.float64) + exact_step).astype(np.float32)
        if not np.isfinite(new).all():
            raise IntegrityError(f"entry {name!r} has a value beyond the float32 range")
        result[name] = new
        offset += weights.size
    return result


def judge(
    spec: TaskSpec,
    task_id: int,
    round_: int,
    round_budget: int,
    base: FileRef,
    base_arrays: Mapping[str, np.ndarray],
    updates: Sequence[RevealedUpdate],
    fetch: Callable[[RevealedUpdate], bytes],
) -> Judged:
    """Check, quantize, screen, aggregate and reward one round.

    Parameters
    ----------
    base_arrays
        The base model's float32 weights (the file ``base`` names).
    fetch
        Returns an update's file after checking it against its CID and digest; raises
        :class:`~cotrain.errors.IntegrityError` (or ``UpdateRejected``) when it cannot.
    """
    width_bits, scale_bits = NUMBER_FORMATS[spec.aggregation.number_format]
    shapes = {name: tuple(np.asarray(array).shape) for name, array in base_arrays.items()}
    pipeline = RoundPipeline(spec.aggregation)
    verdicts: dict[str, Reason] = {}
    declared: dict[str, str] = {}
    for update in sorted(updates, key=lambda u: u.contributor.lower()):
        reason, arrays, metadata = _check(spec, task_id, round_, base, update, fetch, shapes)
        if spec.privacy is not None and spec.privacy.dp is not None and metadata is not None:
            epsilon = metadata.get(EPSILON_KEY)
            if parse_declared(epsilon) is not None:
                declared[update.contributor.lower()] = str(epsilon)
            if reason == Reason.OK and not within_budget(epsilon, spec.privacy.dp.max_epsilon):
                reason, arrays = Reason.OVER_BUDGET, None
        if arrays is not None:
            try:
                vector = quantize(flatten_arrays(arrays), scale_bits, width_bits)
            except FixedPointOverflow:
                reason = Reason.OUT_OF_RANGE
            else:
                pipeline.add(update.contributor, vector, update.samples, update.commit_order)
        verdicts[update.contributor.lower()] = reason
    result = pipeline.finish()
    if result.aggregate is None:
        new_arrays = {name: np.asarray(base_arrays[name], dtype=np.float32) for name in sorted(base_arrays)}
    else:
        new_arrays = apply_aggregate(base_arrays, result.aggregate, scale_bits)
    rewards = {
        a.account.lower(): a.amount
        for a in allocate_rewards(
            round_budget, [(who, j.reward_weight) for who, j in result.judgements.items() if j.reward_weight]
        )
    }
    model_bytes = model_file(task_id, round_, new_arrays)

    entries = []
    for update in updates:
        who = update.contributor.lower()
        judged = result.judgements.get(who)
        reason = verdicts[who] if judged is None else judged.reason
        ok = reason == Reason.OK
        entries.append(
            UpdateEntry.model_validate(
                {
                    "contributor": who,
                    "cid": update.cid,
                    "digest": update.digest,
                    "samples": update.samples,
                    "verdict": "accepted" if ok else "rejected",
                    "reason": reason,
                    "score": format_micro(0 if judged is None else judged.score),
                    "weight": format_micro(judged.share if ok and judged is not None else 0),
                    "reward": rewards.get(who, 0),
                    "slash": 0 if ok or reason in NOT_SLASHED else spec.rewards.slash_rejected_wei,
                    "epsilon": declared.get(who),
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
            "new_model": file_ref(model_bytes),
        }
    )
    return Judged(record, record_bytes(record), model_bytes, new_arrays)


def _check(
    spec: TaskSpec,
    task_id: int,
    round_: int,
    base: FileRef,
    update: RevealedUpdate,
    fetch: Callable[[RevealedUpdate], bytes],
    shapes: Mapping[str, tuple[int, ...]],
) -> tuple[Reason, dict[str, np.ndarray] | None, Mapping[str, str] | None]:
    """The verdict on one update's file and, when it decodes, its tensors (only if it passes) and
    metadata."""
    try:
        data = fetch(update)
        arrays, metadata = decode_arrays(data, expected=shapes, max_bytes=spec.limits.max_update_bytes)
    except UpdateRejected as rejected:
        return _REASONS[rejected.reason], None, None
    except FileRejected as rejected:
        return rejected.reason, None, None
    except IntegrityError:
        return Reason.DIGEST_MISMATCH, None, None
    binding = update_metadata(task_id, round_, update.contributor, base.digest, update.samples)
    if not binding_matches(metadata, binding):
        return Reason.WRONG_BINDING, None, metadata
    if metadata.get("samples") != binding["samples"]:
        return Reason.SAMPLES_MISMATCH, None, metadata
    return Reason.OK, arrays, metadata
