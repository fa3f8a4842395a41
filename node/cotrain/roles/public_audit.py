"""What anyone can check of a round whose updates are sealed, without a reader key (docs/privacy.md).

Without a key nobody can recompute verdicts, scores or the aggregate. What is left to check, and what these
functions check: that the accepted record lists exactly the updates the chain revealed, on the right base
model; that each accepted update's stored file is a sealed envelope bound to this task, round, contributor,
base model, sample count and plaintext digest, and sealed to exactly the spec's readers; that the rewards and
slashes follow from the record's stated scores and verdicts (PROTOCOL.md section 13); and that the new model
is a well-formed model of the task.
"""

from __future__ import annotations

from cotrain.errors import CotrainError
from cotrain.privacy.sealed import sealed_limit, sealed_public_facts
from cotrain.protocol.rewards import allocate_rewards
from cotrain.protocol.round_judge import NOT_SLASHED
from cotrain.protocol.round_record import RoundRecord, UpdateEntry, parse_micro
from cotrain.protocol.screening import SCREENED, paid_samples, reward_weight
from cotrain.protocol.update_binding import update_metadata
from cotrain.roles.task_view import TaskView
from cotrain.storage.base import fetch_verified

#: What a keyless audit of a sealed round checks.
PUBLIC_CHECKS = (
    "the record lists exactly the revealed updates (CID, digest, samples) on the accepted base model",
    "each accepted update is a sealed file bound to its task, round, contributor, base model, samples and "
    "digest, sealed to exactly the spec's readers",
    "rewards and slashes follow from the record's stated scores and verdicts",
    "the record's digest and Merkle roots, and the new model's digest and layout, are the proposal's",
)
#: What only a reader can check.
NEEDS_A_READER = (
    "the verdicts and scores of updates whose files open",
    "that the new model is the aggregation rule applied to the accepted updates",
    "that each declared epsilon is what the update's file declares",
)


def public_problems(view: TaskView, round_: int, record: RoundRecord) -> list[str]:
    """What a keyless audit finds wrong with the accepted ``record`` of ``round_`` (empty: nothing)."""
    problems = _inputs(view, round_, record)
    for update in record.updates:
        if update.verdict == "accepted":
            problems += _sealed_file(view, round_, record, update)
    problems += _amounts(view, record)
    try:
        view.load_model(record.new_model)
    except CotrainError as error:
        problems.append(f"new model: {error}")
    return problems


def _inputs(view: TaskView, round_: int, record: RoundRecord) -> list[str]:
    revealed = {u.contributor.lower(): (u.cid, u.digest, u.samples) for u in view.revealed(round_)}
    listed = {u.contributor: (u.cid, u.digest, u.samples) for u in record.updates}
    problems = [
        f"update of {who}: the record says (CID, digest, samples) {listed.get(who)}, the chain "
        f"{revealed.get(who)}"
        for who in sorted(set(revealed) | set(listed))
        if revealed.get(who) != listed.get(who)
    ]
    if record.base_model != view.base_model(round_):
        problems.append(f"base model: the record names {record.base_model.cid}, not the accepted one")
    return problems


def _sealed_file(view: TaskView, round_: int, record: RoundRecord, update: UpdateEntry) -> list[str]:
    spec = view.spec
    assert spec.privacy is not None and spec.privacy.readers is not None
    where = f"accepted update of {update.contributor}"
    try:
        data = fetch_verified(
            view.store, update.cid, None, max_size=sealed_limit(spec.limits.max_update_bytes)
        )
        facts = sealed_public_facts(data)
    except CotrainError as error:
        return [f"{where}: {error}"]
    binding = update_metadata(
        view.task_id, round_, update.contributor, record.base_model.digest, update.samples
    )
    expected = {**binding, "plaintext_digest": "0x" + update.digest.hex()}
    problems = []
    if facts["binding"] != expected:
        problems.append(f"{where}: its sealed header binds {facts['binding']}, not {expected}")
    if facts["readers"] != sorted(reader.key for reader in spec.privacy.readers):
        problems.append(f"{where}: it is sealed to other readers than the spec's")
    return problems


def _amounts(view: TaskView, record: RoundRecord) -> list[str]:
    spec = view.spec
    budget = view.market.get_task(view.task_id).round_budget
    paid = paid_samples(
        spec.aggregation, {u.contributor: u.samples for u in record.updates if u.reason in SCREENED}
    )
    weights = [
        (u.contributor, reward_weight(paid[u.contributor], parse_micro(u.score)))
        for u in record.updates
        if u.verdict == "accepted"
    ]
    rewards = {a.account.lower(): a.amount for a in allocate_rewards(budget, [w for w in weights if w[1]])}
    problems = []
    for u in record.updates:
        slash = 0 if u.verdict == "accepted" or u.reason in NOT_SLASHED else spec.rewards.slash_rejected_wei
        if (u.reward, u.slash) != (rewards.get(u.contributor, 0), slash):
            problems.append(
                f"update of {u.contributor}: reward/slash {u.reward}/{u.slash} {view.unit}, but its stated "
                f"score and verdict give {rewards.get(u.contributor, 0)}/{slash}"
            )
    return problems
