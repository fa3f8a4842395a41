"""Tests for cotrain.protocol.round_outcome: judging a real round of the breast-cancer logistic task.

Four contributors train on disjoint shards of the built-in training split, store their updates in an
embedded store and reveal them; the tests check every number judge_round derives against the independent
big-integer reference in ``exact_reference`` (q32.24 updates, exact weighted mean, marginal-value scores
in millionths, the new weights f32(f64(base) + mean 2**-24)) and the reward code, and that bad files are
rejected for the right reason while the round goes on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import random
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import exact_reference as ref
import numpy as np
import pytest
import torch
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import evaluate
from cotrain.learning.state import layout
from cotrain.learning.tensor_files import decode_tensors, encode_model, encode_update
from cotrain.learning.training import train_local
from cotrain.protocol.rewards import EMPTY_ROOT, allocate_rewards, rewards_root, slash_allocations
from cotrain.protocol.round_outcome import RevealedUpdate, RoundOutcome, judge_round, model_file
from cotrain.protocol.round_record import RECORD_VERSION, Reason, RoundRecord, UpdateEntry, parse_record
from cotrain.protocol.task_model import builtin_split, initial_state, task_model
from cotrain.protocol.task_spec import FileRef, TaskSpec, load_spec, with_initial_model
from cotrain.protocol.update_binding import update_metadata
from cotrain.roles.validator import verified_fetch
from cotrain.storage.embedded import EmbeddedStore
from cotrain.storage.unixfs import compute_cid
from eth_utils import keccak, to_checksum_address

SPECS = Path(__file__).resolve().parents[3] / "node" / "cotrain" / "protocol" / "specs"
TASK_ID = 7
ROUND = 2
SHARDS = ((0, 60), (60, 160), (160, 300), (300, 427))  # unequal, so sample shares differ


def _account(n: int) -> str:
    return to_checksum_address(keccak(f"round-outcome-{n}".encode())[-20:])


@dataclass(frozen=True)
class Trained:
    """One contributor's honest work: its delta and the update file it would store."""

    contributor: str
    samples: int
    delta: dict[str, torch.Tensor]
    file: bytes


@dataclass(frozen=True)
class Round:
    spec: TaskSpec
    base: FileRef
    base_file: bytes
    base_state: dict[str, torch.Tensor]
    held_out: ArrayDataset
    budget: int
    trained: list[Trained]

    @property
    def slash(self) -> int:
        return self.spec.rewards.slash_rejected_wei

    def metadata(self, trained: Trained, **overrides: str) -> dict[str, str]:
        meta = update_metadata(TASK_ID, ROUND, trained.contributor, self.base.digest, trained.samples)
        return {**meta, **overrides}


@pytest.fixture(scope="module")
def round_() -> Round:
    spec = load_spec(SPECS / "breast_cancer.yaml")
    base_state = initial_state(spec)
    base_file = model_file(TASK_ID, -1, base_state)
    spec = with_initial_model(spec, compute_cid(base_file), hashlib.sha256(base_file).digest())
    assert spec.initial_model is not None
    train, held_out = builtin_split(spec)
    assert len(train) == SHARDS[-1][1]
    trained = []
    for n, (begin, end) in enumerate(SHARDS):
        contributor = _account(n)
        result = train_local(
            task_model(spec),
            base_state,
            train.subset(range(begin, end)),
            epochs=spec.training.local_epochs,
            batch_size=spec.training.batch_size,
            lr=spec.training.lr,
            optimizer=spec.training.optimizer,
            seed=spec.training.seed + ROUND,
        )
        meta = update_metadata(TASK_ID, ROUND, contributor, spec.initial_model.digest, result.samples)
        data = encode_update(result.delta, meta)
        trained.append(Trained(contributor, result.samples, result.delta, data))
    # The protocol order (lower-case address) must differ from the order above, or sorting goes untested.
    assert sorted(t.contributor.lower() for t in trained) != [t.contributor.lower() for t in trained]
    return Round(
        spec=spec,
        base=spec.initial_model,
        base_file=base_file,
        base_state=base_state,
        held_out=held_out,
        budget=spec.budget_wei // spec.rounds,
        trained=trained,
    )


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def _publish(store: EmbeddedStore, trained: Trained, data: bytes | None = None) -> RevealedUpdate:
    """Store ``data`` (the honest file by default) and reveal it with its own CID and digest."""
    data = trained.file if data is None else data
    cid = store.add(data)
    return RevealedUpdate(trained.contributor, cid, hashlib.sha256(data).digest(), trained.samples)


def _judge(r: Round, store: EmbeddedStore, updates: list[RevealedUpdate]) -> RoundOutcome:
    fetch = verified_fetch(store, r.spec.limits.max_update_bytes)
    base, state = r.base, r.base_state
    return judge_round(r.spec, TASK_ID, ROUND, r.budget, base, state, updates, fetch, r.held_out)


def _bits(state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    return {key: tensor.numpy().tobytes() for key, tensor in state.items()}


def _entry(record: RoundRecord, contributor: str) -> UpdateEntry:
    (entry,) = [u for u in record.updates if u.contributor == contributor.lower()]
    return entry


def _vector(delta: dict[str, torch.Tensor]) -> list[int]:
    """An update's q32.24 vector: its tensors flattened in sorted name order, quantized by the reference."""
    return ref.quantize(ref.flat({name: tensor.numpy() for name, tensor in delta.items()}))


def _counted(trained: list[Trained], claimed: list[int], ratio: int) -> list[int]:
    """Each sample count, capped at ``ratio`` times the median of the ``claimed`` ones (at least 1)."""
    return [min(t.samples, max(1, ratio * ref.median(claimed))) for t in trained]


def _expected_state(
    r: Round, accepted: list[Trained], claimed: list[int] | None = None
) -> dict[str, torch.Tensor]:
    """The base weights plus the reference's sample-weighted mean of ``accepted``, as the protocol rounds.

    Each update weighs its sample count, at most twice the median of ``claimed`` (the round's integral
    updates', ``accepted``'s by default).
    """
    claimed = [t.samples for t in accepted] if claimed is None else claimed
    counted = _counted(accepted, claimed, 2)
    mean = ref.weighted_mean([_vector(t.delta) for t in accepted], counted)
    base = {name: tensor.numpy() for name, tensor in r.base_state.items()}
    new = ref.apply(ref.flat(base), mean)
    state, offset = {}, 0
    for name in sorted(base):
        size = base[name].size
        values = np.array(new[offset : offset + size], dtype=np.float32).reshape(base[name].shape)
        state[name] = torch.from_numpy(values)
        offset += size
    return state


def _expected_scores(accepted: list[Trained]) -> dict[str, int]:
    """The reference's marginal-value scores of ``accepted``, when they are the round's only integral updates
    and all of them pass: none below min_score 0, none redundant (within 0.5 S of another)."""
    vectors = [_vector(t.delta) for t in accepted]
    median_norm = ref.median([ref.norm(v) for v in vectors])
    scores = ref.marginal_scores(vectors, median_norm)
    assert min(scores) >= 0, "an honest update would be peeled off"
    if len(vectors) >= 3:
        spread = ref.spread(vectors)[1]
        for i, a in enumerate(vectors):
            assert all(4 * ref.squared_distance(a, b) > spread for b in vectors[:i]), "a redundant update"
    return {t.contributor: score for t, score in zip(accepted, scores, strict=True)}


def _assert_aggregates(r: Round, outcome: RoundOutcome, accepted: list[Trained]) -> None:
    """The outcome is FedAvg of exactly ``accepted``, rewarded by samples x score, all by the reference.

    ``accepted`` are the round's only integral updates, so the sample caps are twice (in the aggregate) and
    once (in the reward) the median of their claims.
    """
    expected = _expected_state(r, accepted)
    assert list(outcome.state) == list(expected)
    assert _bits(outcome.state) == _bits(expected)
    assert outcome.model_file == model_file(TASK_ID, ROUND, expected)

    # Scores: marginal value (cosine to the leave-one-out median x size x novelty), in millionths.
    scores = _expected_scores(accepted)
    claimed = [t.samples for t in accepted]
    counted = dict(zip((t.contributor for t in accepted), _counted(accepted, claimed, 2), strict=True))
    paid = dict(zip((t.contributor for t in accepted), _counted(accepted, claimed, 1), strict=True))
    record = outcome.record
    total = sum(counted.values())
    weights = {}
    for t in accepted:
        entry = _entry(record, t.contributor)
        assert (entry.verdict, entry.reason, entry.slash) == ("accepted", Reason.OK, 0)
        assert entry.weight == ref.text(ref.share(counted[t.contributor], total))
        assert entry.score == ref.text(scores[t.contributor])
        weights[t.contributor] = paid[t.contributor] * max(scores[t.contributor], 0)
    # Rewards split the budget by paid samples x score, each the floor of its exact share or one wei more.
    allocations = allocate_rewards(r.budget, list(weights.items()))
    for t in accepted:
        share = r.budget * weights[t.contributor] // sum(weights.values())
        assert share <= _entry(record, t.contributor).reward <= share + 1
    assert sum(_entry(record, t.contributor).reward for t in accepted) == r.budget
    assert record.reward_total == r.budget
    assert record.reward_allocations == allocations
    assert record.rewards_root == rewards_root(allocations)

    # The new model's held-out metrics: advisory, beside the record and not in its bytes.
    assert outcome.advisory_metrics == evaluate(task_model(r.spec), expected, r.held_out)
    assert "metrics" not in json.loads(outcome.record_file)


def test_judge_round_accepts_honest_updates_and_averages_them_by_samples(
    round_: Round, store: EmbeddedStore
) -> None:
    # Prepare
    updates = [_publish(store, t) for t in round_.trained]
    base_bits = _bits(round_.base_state)

    # Execute
    outcome = _judge(round_, store, updates)

    # Assert
    _assert_aggregates(round_, outcome, round_.trained)
    record = outcome.record
    assert [u.contributor for u in record.updates] == sorted(u.contributor.lower() for u in updates)
    for update in updates:
        entry = _entry(record, update.contributor)
        assert (entry.cid, entry.digest, entry.samples) == (update.cid, update.digest, update.samples)
    # 60, 100, 140 and 127 of 427 samples (none above twice the median claim, 2 x 114); the shares are what
    # the record writes as weights.
    assert sorted(u.weight for u in record.updates) == ["0.140515", "0.234192", "0.297424", "0.327869"]
    # Paid for at most the median claim, (100 + 127) / 2 = 113.5 -> 114: 60, 100, 114 and 114 samples.
    assert sorted(t.samples for t in round_.trained) == [60, 100, 127, 140]
    assert _counted(round_.trained, [60, 100, 127, 140], 1) == [60, 100, 114, 114]
    assert record.slash_root == EMPTY_ROOT
    assert (record.task_id, record.round, record.base_model) == (TASK_ID, ROUND, round_.base)
    assert record.aggregation.rule == "fedavg"
    assert record.aggregation.number_format == "q32.24"
    assert json.loads(outcome.record_file)["version"] == RECORD_VERSION == 4
    assert _bits(round_.base_state) == base_bits, "judge_round must not modify the base state"


def test_the_files_are_canonical_and_name_each_other(round_: Round, store: EmbeddedStore) -> None:
    outcome = _judge(round_, store, [_publish(store, t) for t in round_.trained])

    assert parse_record(outcome.record_file) == outcome.record
    assert outcome.record_ref == FileRef(
        cid=compute_cid(outcome.record_file), digest=hashlib.sha256(outcome.record_file).digest()
    )
    assert outcome.record.new_model == FileRef(
        cid=compute_cid(outcome.model_file), digest=hashlib.sha256(outcome.model_file).digest()
    )
    state, metadata = decode_tensors(
        outcome.model_file, expected=layout(round_.base_state), max_bytes=len(outcome.model_file)
    )
    assert _bits(state) == _bits(outcome.state)
    assert metadata == {
        "after_round": str(ROUND),
        "cotrain.format": "cotrain.model/1",
        "task_id": str(TASK_ID),
    }


def test_model_file_is_the_canonical_model_encoding(round_: Round) -> None:
    data = model_file(TASK_ID, -1, round_.base_state)

    assert data == encode_model(round_.base_state, {"task_id": "7", "after_round": "-1"})
    assert data == model_file(TASK_ID, -1, dict(reversed(round_.base_state.items())))
    assert data != model_file(TASK_ID, 0, round_.base_state)


# ---------------------------------------------------------------- determinism


def test_the_order_of_reveals_does_not_change_a_single_byte(round_: Round, store: EmbeddedStore) -> None:
    # Prepare: four honest updates and one rejected one, revealed in shuffled orders.
    t = round_.trained[0]
    stranger = Trained(_account(9), 80, t.delta, b"")
    updates = [_publish(store, honest) for honest in round_.trained]
    misbound = encode_update(t.delta, round_.metadata(stranger, round="0"))
    updates.append(_publish(store, stranger, misbound))
    reference = _judge(round_, store, updates)
    assert _entry(reference.record, stranger.contributor).reason == Reason.WRONG_BINDING
    shuffle = random.Random(0)

    for _ in range(8):
        shuffled = shuffle.sample(updates, len(updates))

        # Execute
        outcome = _judge(round_, store, shuffled)

        # Assert
        assert outcome.record_file == reference.record_file
        assert outcome.model_file == reference.model_file
        assert outcome.record.rewards_root == reference.record.rewards_root
        assert outcome.record.slash_root == reference.record.slash_root
        assert outcome.record_ref == reference.record_ref


def test_two_judgements_from_two_stores_give_identical_bytes(round_: Round, tmp_path: Path) -> None:
    first = EmbeddedStore(tmp_path / "first")
    second = EmbeddedStore(tmp_path / "second")

    a = _judge(round_, first, [_publish(first, t) for t in round_.trained])
    b = _judge(round_, second, [_publish(second, t) for t in round_.trained])

    assert a.record_file == b.record_file
    assert a.model_file == b.model_file
    assert _bits(a.state) == _bits(b.state)


_AUDITOR = textwrap.dedent(
    """
    import hashlib, json, sys
    from pathlib import Path
    from cotrain.learning.state import layout
    from cotrain.learning.tensor_files import decode_tensors
    from cotrain.protocol.round_outcome import RevealedUpdate, judge_round
    from cotrain.protocol.task_model import builtin_split, initial_state
    from cotrain.protocol.task_spec import load_spec, with_initial_model
    from cotrain.roles.validator import verified_fetch
    from cotrain.storage.base import fetch_verified
    from cotrain.storage.embedded import EmbeddedStore

    args = json.loads(sys.argv[1])
    store = EmbeddedStore(Path(args["store"]))
    spec = load_spec(args["spec"])
    spec = with_initial_model(spec, args["base_cid"], bytes.fromhex(args["base_digest"]))
    base = spec.initial_model
    data = fetch_verified(store, base.cid, base.digest, max_size=1 << 20)
    base_state, _ = decode_tensors(data, expected=layout(initial_state(spec)), max_bytes=1 << 20)
    updates = [RevealedUpdate(c, cid, bytes.fromhex(d), n) for c, cid, d, n in args["updates"]]
    outcome = judge_round(
        spec, args["task_id"], args["round"], args["budget"], base, base_state, updates,
        verified_fetch(store, spec.limits.max_update_bytes), builtin_split(spec)[1],
    )
    print(json.dumps([hashlib.sha256(outcome.record_file).hexdigest(),
                      hashlib.sha256(outcome.model_file).hexdigest()]))
    """
)


def test_another_process_rebuilds_the_same_record_from_the_stored_files(
    round_: Round, store: EmbeddedStore
) -> None:
    # Prepare: what an auditor has, the spec file, the store and the reveals; nothing in memory.
    updates = [_publish(store, t) for t in round_.trained]
    store.add(round_.base_file)
    outcome = _judge(round_, store, updates)
    args = {
        "store": str(store.root),
        "spec": str(SPECS / "breast_cancer.yaml"),
        "base_cid": round_.base.cid,
        "base_digest": round_.base.digest.hex(),
        "updates": [[u.contributor, u.cid, u.digest.hex(), u.samples] for u in reversed(updates)],
        "task_id": TASK_ID,
        "round": ROUND,
        "budget": round_.budget,
    }

    # Execute: another interpreter, with another hash seed.
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", _AUDITOR, json.dumps(args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )

    # Assert
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        hashlib.sha256(outcome.record_file).hexdigest(),
        hashlib.sha256(outcome.model_file).hexdigest(),
    ]


# ---------------------------------------------------------------- bad updates

BadUpdate = Callable[[Round, EmbeddedStore], RevealedUpdate]


def _cheater(r: Round) -> Trained:
    """The fourth contributor, whose real work each case below breaks in one way."""
    return r.trained[3]


def _flipped_byte(r: Round, store: EmbeddedStore) -> RevealedUpdate:
    update = _publish(store, _cheater(r))
    block = store.block_path(update.cid)
    data = bytearray(block.read_bytes())
    data[len(data) // 2] ^= 0x01
    block.write_bytes(bytes(data))
    return update


def _oversized(r: Round, store: EmbeddedStore) -> RevealedUpdate:
    t = _cheater(r)
    padding = "x" * r.spec.limits.max_update_bytes
    return _publish(store, t, encode_update(t.delta, r.metadata(t, padding=padding)))


def _changed(change: Callable[[dict[str, torch.Tensor]], None]) -> BadUpdate:
    def make(r: Round, store: EmbeddedStore) -> RevealedUpdate:
        t = _cheater(r)
        delta = dict(t.delta)
        change(delta)
        return _publish(store, t, encode_update(delta, r.metadata(t)))

    return make


def _wider(delta: dict[str, torch.Tensor]) -> None:
    delta["1.weight"] = torch.zeros(2, 31)


def _without_bias(delta: dict[str, torch.Tensor]) -> None:
    del delta["1.bias"]


def _with_extra(delta: dict[str, torch.Tensor]) -> None:
    delta["2.weight"] = torch.zeros(2, 2)


def _too_large(delta: dict[str, torch.Tensor]) -> None:
    # q32.24 holds |x| < 128: 200 x 2**24 does not fit 32 bits.
    delta["1.bias"] = delta["1.bias"].clone()
    delta["1.bias"][0] = 200.0


def _non_finite(value: float) -> BadUpdate:
    def make(r: Round, store: EmbeddedStore) -> RevealedUpdate:
        t = _cheater(r)
        data = bytearray(t.file)
        # The tensors follow the header; overwrite the last float32 of the last tensor.
        data[-4:] = np.array([value], dtype="<f4").tobytes()
        return _publish(store, t, bytes(data))

    return make


def _bound(**overrides: str) -> BadUpdate:
    def make(r: Round, store: EmbeddedStore) -> RevealedUpdate:
        t = _cheater(r)
        return _publish(store, t, encode_update(t.delta, r.metadata(t, **overrides)))

    return make


def _unbound(r: Round, store: EmbeddedStore) -> RevealedUpdate:
    t = _cheater(r)
    return _publish(store, t, encode_update(t.delta, {}))


def _digest_of_other_content(r: Round, store: EmbeddedStore) -> RevealedUpdate:
    update = _publish(store, _cheater(r))
    other = hashlib.sha256(r.trained[0].file).digest()
    return RevealedUpdate(update.contributor, update.cid, other, update.samples)


def _cid_of_other_content(r: Round, store: EmbeddedStore) -> RevealedUpdate:
    other = _publish(store, r.trained[0])
    t = _cheater(r)
    return RevealedUpdate(t.contributor, other.cid, hashlib.sha256(t.file).digest(), t.samples)


def _not_a_cid(r: Round, store: EmbeddedStore) -> RevealedUpdate:
    t = _cheater(r)
    return RevealedUpdate(t.contributor, "bafy-not-a-cid", hashlib.sha256(t.file).digest(), t.samples)


def _never_stored_by(t: Trained) -> RevealedUpdate:
    return RevealedUpdate(t.contributor, compute_cid(t.file), hashlib.sha256(t.file).digest(), t.samples)


def _never_stored(r: Round, store: EmbeddedStore) -> RevealedUpdate:
    return _never_stored_by(_cheater(r))


BAD_UPDATES: list[tuple[str, BadUpdate, Reason]] = [
    ("flipped-byte", _flipped_byte, Reason.DIGEST_MISMATCH),
    ("digest-of-other-content", _digest_of_other_content, Reason.DIGEST_MISMATCH),
    ("cid-of-other-content", _cid_of_other_content, Reason.DIGEST_MISMATCH),
    ("not-a-cid", _not_a_cid, Reason.DIGEST_MISMATCH),
    ("oversized", _oversized, Reason.TOO_LARGE),
    ("wrong-shape", _changed(_wider), Reason.SHAPE_MISMATCH),
    ("missing-key", _changed(_without_bias), Reason.SHAPE_MISMATCH),
    ("extra-key", _changed(_with_extra), Reason.SHAPE_MISMATCH),
    ("nan", _non_finite(float("nan")), Reason.NON_FINITE),
    ("infinity", _non_finite(float("-inf")), Reason.NON_FINITE),
    ("out-of-range", _changed(_too_large), Reason.OUT_OF_RANGE),
    ("other-task", _bound(task_id="8"), Reason.WRONG_BINDING),
    ("other-round", _bound(round=str(ROUND - 1)), Reason.WRONG_BINDING),
    ("other-contributor", _bound(contributor=_account(0).lower()), Reason.WRONG_BINDING),
    ("checksummed-contributor", _bound(contributor=_account(3)), Reason.WRONG_BINDING),
    ("other-base-model", _bound(base_digest="0x" + "11" * 32), Reason.WRONG_BINDING),
    ("no-metadata", _unbound, Reason.WRONG_BINDING),
    ("more-samples-in-file", _bound(samples="128"), Reason.SAMPLES_MISMATCH),
    ("blank-samples-in-file", _bound(samples=""), Reason.SAMPLES_MISMATCH),
    ("never-stored", _never_stored, Reason.UNAVAILABLE),
]


@pytest.mark.parametrize(
    ("make_bad", "reason"), [b[1:] for b in BAD_UPDATES], ids=[b[0] for b in BAD_UPDATES]
)
def test_a_bad_update_is_rejected_while_the_honest_ones_aggregate(
    round_: Round, store: EmbeddedStore, make_bad: BadUpdate, reason: Reason
) -> None:
    # Prepare
    honest = round_.trained[:3]
    bad = make_bad(round_, store)
    updates = [_publish(store, t) for t in honest]

    # Execute
    outcome = _judge(round_, store, [*updates, bad])

    # Assert
    entry = _entry(outcome.record, _cheater(round_).contributor)
    assert (entry.verdict, entry.reason) == ("rejected", reason)
    assert (entry.cid, entry.digest, entry.samples) == (bad.cid, bad.digest, bad.samples)
    assert entry.weight == entry.score == "0.000000"
    assert entry.reward == 0
    slashed = reason != Reason.UNAVAILABLE  # a file that never arrived may be the network's fault
    assert entry.slash == (round_.slash if slashed else 0)
    expected_slashes = slash_allocations([bad.contributor] if slashed else [], round_.slash)
    assert outcome.record.slash_allocations == expected_slashes
    assert outcome.record.slash_root == rewards_root(expected_slashes)
    _assert_aggregates(round_, outcome, honest)


class _Trap:
    """Unpickling this creates ``path``, so the file's existence says whether anything unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


def _torch_save(value: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def _torch_load(data: bytes) -> object:
    return torch.load(io.BytesIO(data), weights_only=False)


@pytest.mark.parametrize(
    ("dump", "load"),
    [(pickle.dumps, pickle.loads), (_torch_save, _torch_load)],
    ids=["pickle", "torch.save"],
)
def test_a_pickled_update_is_malformed_and_never_unpickled(
    round_: Round,
    store: EmbeddedStore,
    tmp_path: Path,
    dump: Callable[[object], bytes],
    load: Callable[[bytes], object],
) -> None:
    # Prepare: the delta with a trap, stored and revealed with its own correct CID and digest.
    marker = tmp_path / "unpickled"
    t = _cheater(round_)
    payload = dump({"delta": t.delta, "metadata": round_.metadata(t), "trap": _Trap(marker)})
    honest = round_.trained[:3]
    updates = [*(_publish(store, h) for h in honest), _publish(store, t, payload)]

    # Execute
    outcome = _judge(round_, store, updates)

    # Assert
    entry = _entry(outcome.record, t.contributor)
    assert (entry.verdict, entry.reason, entry.slash) == ("rejected", Reason.MALFORMED, round_.slash)
    assert not marker.exists()
    _assert_aggregates(round_, outcome, honest)
    # The trap is live: unpickling the payload, as torch.load(weights_only=False) does, springs it.
    load(payload)
    assert marker.exists()


def test_when_every_update_is_rejected_the_model_stays_and_nobody_is_paid(
    round_: Round, store: EmbeddedStore
) -> None:
    # Prepare: one file that is NaN (slashed) and one that never arrived (not slashed).
    nan = _non_finite(float("nan"))(round_, store)
    t = round_.trained[0]
    missing = _never_stored_by(t)

    # Execute
    outcome = _judge(round_, store, [nan, missing])

    # Assert
    record = outcome.record
    assert [(u.verdict, u.reason) for u in sorted(record.updates, key=lambda u: u.slash)] == [
        ("rejected", Reason.UNAVAILABLE),
        ("rejected", Reason.NON_FINITE),
    ]
    assert all(u.weight == "0.000000" and u.reward == 0 for u in record.updates)
    assert _bits(outcome.state) == _bits(round_.base_state)
    assert outcome.model_file == model_file(TASK_ID, ROUND, round_.base_state)
    assert record.reward_total == 0
    assert record.reward_allocations == []
    assert record.rewards_root == EMPTY_ROOT
    assert record.slash_root == rewards_root(slash_allocations([nan.contributor], round_.slash))
    assert outcome.advisory_metrics == evaluate(task_model(round_.spec), round_.base_state, round_.held_out)


def test_sample_counts_beyond_float64_precision_still_give_a_verdict(
    round_: Round, store: EmbeddedStore
) -> None:
    # Prepare: the market takes any uint64 sample count, beyond what a float64 holds exactly.
    t = _cheater(round_)
    honest = round_.trained[0]
    huge = Trained(t.contributor, 2**53 + 2, t.delta, b"")
    claim = encode_update(t.delta, round_.metadata(huge))
    updates = [_publish(store, honest), _publish(store, huge, claim)]

    # Execute
    outcome = _judge(round_, store, updates)

    # Assert: weighted and rewarded by the exact integers. The median claim is (60 + 2**53 + 2) / 2 =
    # 2**52 + 31: the aggregate takes up to twice that, 2**53 + 62, so all of 2**53 + 2; the reward pays for
    # 2**52 + 31.
    record = outcome.record
    assert [u.verdict for u in record.updates] == ["accepted", "accepted"]
    claimed = [honest.samples, huge.samples]
    assert _counted([honest, huge], claimed, 2) == [60, 2**53 + 2]
    assert _counted([honest, huge], claimed, 1) == [60, 2**52 + 31]
    assert _bits(outcome.state) == _bits(_expected_state(round_, [honest, huge]))
    # Two updates: no majority to measure against, so each is scored by its cosine to the median of both
    # times its size (novelty 1).
    scores = _expected_scores([honest, huge])
    for u in (honest, huge):
        assert _entry(record, u.contributor).score == ref.text(scores[u.contributor])
    weights = {honest.contributor: 60 * scores[honest.contributor]}
    weights[huge.contributor] = (2**52 + 31) * scores[huge.contributor]
    assert _entry(record, huge.contributor).weight == ref.text(
        ref.share(huge.samples, huge.samples + honest.samples)
    )
    assert record.reward_allocations == allocate_rewards(round_.budget, list(weights.items()))
    assert record.reward_total == round_.budget
    # The honest 60 samples against 2**52 + 31 paid for: about eleven thousand wei of the 10**18.
    exact = round_.budget * weights[honest.contributor] // sum(weights.values())
    assert 0 < exact <= _entry(record, honest.contributor).reward <= exact + 1 < 10**5


def test_a_cid_the_record_cannot_hold_still_gives_a_verdict(round_: Round, store: EmbeddedStore) -> None:
    t = _cheater(round_)
    odd = RevealedUpdate(t.contributor, "bafy with spaces", hashlib.sha256(t.file).digest(), t.samples)

    outcome = _judge(round_, store, [_publish(store, round_.trained[0]), odd])

    assert _entry(outcome.record, t.contributor).verdict == "rejected"
