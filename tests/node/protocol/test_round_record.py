"""Tests for cotrain.protocol.round_record: canonical bytes, strict parsing and the roots a record implies."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cotrain.errors import IntegrityError
from cotrain.protocol.merkle import Allocation
from cotrain.protocol.rewards import EMPTY_ROOT, allocate_rewards, rewards_root, slash_allocations
from cotrain.protocol.round_record import (
    FLOAT_PLACES,
    RECORD_VERSION,
    Reason,
    RoundRecord,
    format_fixed,
    format_micro,
    parse_record,
    record_bytes,
    record_digest,
)
from cotrain.protocol.task_spec import canonical_json, load_spec
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

SPECS = Path(__file__).resolve().parents[3] / "node" / "cotrain" / "protocol" / "specs"
ETHER = 10**18


def _digest(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


def _account(n: int) -> str:
    return to_checksum_address(keccak(f"contributor-{n}".encode())[-20:])


def _updates() -> list[dict[str, Any]]:
    """Three accepted updates and one rejected one, in no particular order; scores and weights exact."""
    shares = {_account(1): 500000, _account(2): 300000, _account(3): 200000}
    rewards = {a.account: a.amount for a in allocate_rewards(ETHER, list(shares.items()))}
    updates = [
        {
            "contributor": account,
            "cid": f"bafkreiupdate{n}",
            "digest": _digest(f"update {n}"),
            "samples": 100 * n,
            "verdict": "accepted",
            "reason": "ok",
            "score": format_micro(100000 * n),
            "weight": format_micro(weight),
            "reward": rewards[account],
            "slash": 0,
        }
        for n, (account, weight) in enumerate(shares.items(), start=1)
    ]
    updates.append(
        {
            "contributor": _account(4),
            "cid": "bafkreiupdate4",
            "digest": _digest("update 4"),
            "samples": 50,
            "verdict": "rejected",
            "reason": Reason.NON_FINITE,
            "score": "0.000000",
            "weight": "0.000000",
            "reward": 0,
            "slash": 5 * 10**16,
        }
    )
    return updates[::-1]


def _fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "task_id": 1,
        "round": 2,
        "base_model": {"cid": "bafkreimodel1", "digest": _digest("model 1")},
        "aggregation": {"rule": "fedavg", "number_format": "q32.24", "params": {}},
        "updates": _updates(),
        "new_model": {"cid": "bafkreimodel2", "digest": _digest("model 2")},
    }
    fields.update(overrides)
    return fields


def _record(**overrides: Any) -> RoundRecord:
    return RoundRecord(**_fields(**overrides))


def _decoded(record: RoundRecord) -> dict[str, Any]:
    return json.loads(record_bytes(record))


def test_round_trip() -> None:
    record = _record()

    data = record_bytes(record)
    parsed = parse_record(data)

    assert parsed == record
    assert record_bytes(parsed) == data
    assert record_digest(parsed) == hashlib.sha256(data).digest()


def test_independent_validators_write_identical_bytes() -> None:
    # Prepare: the same results expressed differently (floats for strings, hex for bytes, other case, order).
    first = _record()
    other = _fields()
    for update in other["updates"]:
        update["contributor"] = update["contributor"].lower()
        update["digest"] = "0x" + update["digest"].hex()
        update["score"] = float(update["score"])
        update["weight"] = float(update["weight"])
        update["samples"] = str(update["samples"])
        update["reward"] = str(update["reward"])
    other["updates"].reverse()
    other["task_id"] = "1"

    # Execute
    second = RoundRecord(**other)

    # Assert
    assert record_bytes(second) == record_bytes(first)
    assert record_digest(second) == record_digest(first)


@settings(max_examples=30, deadline=None)
@given(st.permutations(list(range(4))))
def test_reordered_updates_give_the_same_bytes(order: list[int]) -> None:
    updates = _updates()

    reordered = _record(updates=[updates[i] for i in order])

    assert record_bytes(reordered) == record_bytes(_record())


def test_updates_are_sorted_by_lower_case_contributor() -> None:
    record = _record()

    contributors = [update.contributor for update in record.updates]
    assert contributors == sorted(contributors)
    assert all(contributor == contributor.lower() for contributor in contributors)


def test_canonical_bytes_hold_no_floats_and_no_whitespace() -> None:
    data = record_bytes(_record())

    def no_float(text: str) -> float:
        raise AssertionError(f"float {text} in the record")

    decoded = json.loads(data, parse_float=no_float)
    assert data == json.dumps(decoded, sort_keys=True, separators=(",", ":")).encode()
    assert b" " not in data and b"\n" not in data


def test_canonical_bytes_field_formats() -> None:
    decoded = _decoded(_record())

    assert decoded["version"] == RECORD_VERSION == 4
    assert decoded["aggregation"] == {
        "rule": "fedavg",
        "number_format": "q32.24",
        "params": {},
        "screening": {},
    }
    assert decoded["task_id"] == "1"
    assert decoded["round"] == 2
    assert "metrics" not in decoded, "held-out metrics are advisory, beside the record"
    assert decoded["base_model"]["digest"] == "0x" + _digest("model 1").hex()
    accepted = decoded["updates"][[u["contributor"] for u in decoded["updates"]].index(_account(1).lower())]
    assert accepted["score"] == "0.100000"
    assert accepted["weight"] == "0.500000"
    assert accepted["samples"] == "100"
    assert accepted["reward"] == str(ETHER // 2)
    assert accepted["slash"] == "0"
    rejected = next(u for u in decoded["updates"] if u["verdict"] == "rejected")
    assert (rejected["reason"], rejected["slash"], rejected["reward"]) == (
        "non_finite",
        "50000000000000000",
        "0",
    )


def test_roots_and_total_are_computed_from_the_updates() -> None:
    record = _record()

    rewards = allocate_rewards(ETHER, [(_account(1), 5), (_account(2), 3), (_account(3), 2)])
    slashes = slash_allocations([_account(4)], 5 * 10**16)
    assert record.reward_allocations == rewards
    assert record.slash_allocations == slashes
    assert record.rewards_root == rewards_root(rewards)
    assert record.slash_root == rewards_root(slashes)
    assert record.reward_total == ETHER
    decoded = _decoded(record)
    assert decoded["rewards_root"] == "0x" + rewards_root(rewards).hex()
    assert decoded["reward_total"] == str(ETHER)


def test_roots_are_zero_when_nobody_is_paid_or_slashed() -> None:
    updates = [u for u in _updates() if u["verdict"] == "accepted"]
    for update in updates:
        update["reward"] = 0

    record = _record(updates=updates)

    assert record.rewards_root == record.slash_root == EMPTY_ROOT
    assert record.reward_total == 0
    assert _decoded(record)["slash_root"] == "0x" + "00" * 32


def test_aggregation_params_carry_no_floats() -> None:
    record = _record(
        aggregation={
            "rule": "fedavg",
            "number_format": "q32.24",
            "params": {"beta": 0.1, "big": 2**60, "n": 3, "on": True},
        }
    )

    params = _decoded(record)["aggregation"]["params"]

    assert params == {"beta": "0.1", "big": str(2**60), "n": 3, "on": True}
    assert parse_record(record_bytes(record)) == record


def test_aggregation_may_come_from_the_spec() -> None:
    spec = load_spec(SPECS / "digits.yaml")

    record = _record(aggregation=spec.aggregation)

    assert record.aggregation.rule == spec.aggregation.rule
    assert record.aggregation.number_format == spec.aggregation.number_format == "q32.24"
    # The screening thresholds are written as their shortest repr, so the record holds no floats.
    assert _decoded(record)["aggregation"]["screening"] == {
        "enabled": True,
        "duplicate_distance": "0.1",
        "min_norm_ratio": "0.25",
        "max_norm_ratio": "10.0",
        "clip_norm_ratio": "2.0",
        "redundancy_distance": "0.5",
        "max_samples_ratio": "2.0",
        "min_score": "0.0",
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.1, "0.100000"),
        (1 / 3, "0.333333"),
        (2 / 3, "0.666667"),
        (1, "1.000000"),
        (-0.5, "-0.500000"),
        (-0.0, "0.000000"),
        (-1e-9, "0.000000"),
        (123456.5, "123456.500000"),
    ],
)
def test_format_fixed(value: float, text: str) -> None:
    assert format_fixed(value) == text
    assert len(text.split(".")[1]) == FLOAT_PLACES


@pytest.mark.parametrize(
    ("micro", "text"),
    [
        (0, "0.000000"),
        (1, "0.000001"),
        (-1, "-0.000001"),
        (707107, "0.707107"),
        (-707107, "-0.707107"),
        (10**6, "1.000000"),
        (-(10**6), "-1.000000"),
        (123456789, "123.456789"),
        (10**30 + 5, "1000000000000000000000000.000005"),
    ],
)
def test_format_micro(micro: int, text: str) -> None:
    assert format_micro(micro) == text
    # What the record's fields accept as they are.
    updates = _updates()
    accepted = next(u for u in updates if u["verdict"] == "accepted")
    accepted["score"] = text
    if micro >= 0:
        accepted["weight"] = text
    entry = next(
        u for u in _record(updates=updates).updates if u.contributor == accepted["contributor"].lower()
    )
    assert entry.score == text


@pytest.mark.parametrize("value", [True, 0.5, 1.0, "1", None])
def test_format_micro_refuses_anything_but_an_integer(value: Any) -> None:
    with pytest.raises(ValueError, match="integer number of millionths"):
        format_micro(value)


def test_an_out_of_range_update_is_rejected_slashed_and_round_trips() -> None:
    updates = _updates()
    rejected = next(u for u in updates if u["verdict"] == "rejected")
    rejected["reason"] = "out_of_range"

    record = _record(updates=updates)

    entry = next(u for u in record.updates if u.verdict == "rejected")
    assert entry.reason is Reason.OUT_OF_RANGE
    assert b'"reason":"out_of_range"' in record_bytes(record)
    assert parse_record(record_bytes(record)) == record
    assert record.slash_allocations == slash_allocations([_account(4)], 5 * 10**16)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), True, "0.1", None, 10**400])
def test_format_fixed_refuses_non_numbers(value: Any) -> None:
    with pytest.raises(ValueError):
        format_fixed(value)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_fixed_strings_are_stable_through_float(value: float) -> None:
    text = format_fixed(value)

    assert format_fixed(float(text)) == text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"verdict": "accepted", "reason": "outlier"}, "reason must be 'ok'"),
        ({"verdict": "rejected", "reason": "ok", "reward": 0, "weight": 0}, "must say why"),
        (
            {"verdict": "rejected", "reason": "low_score", "reward": 1, "weight": 0},
            "weight and reward must be zero",
        ),
        (
            {"verdict": "rejected", "reason": "low_score", "reward": 0, "weight": 0.1},
            "weight and reward must be zero",
        ),
        ({"slash": 1}, "cannot be slashed"),
        ({"weight": -0.1}, "must not be negative"),
        ({"score": float("nan")}, "finite"),
        ({"reason": "bad_vibes"}, "reason"),
        ({"verdict": "maybe"}, "'accepted' or 'rejected'"),
        ({"samples": 0}, "greater than or equal to 1"),
        ({"samples": 2**64}, "less than or equal"),
        ({"reward": -1}, "greater than or equal to 0"),
        ({"digest": b"short"}, "32 bytes"),
        ({"cid": ""}, "CID"),
        ({"contributor": "0x1234"}, "not a 0x-prefixed"),
        ({"extra": 1}, "Extra inputs"),
    ],
)
def test_inconsistent_update_is_refused(change: dict[str, Any], message: str) -> None:
    updates = _updates()
    accepted = next(u for u in updates if u["verdict"] == "accepted")
    accepted.update(change)

    with pytest.raises(ValidationError, match=re.escape(message)):
        _record(updates=updates)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"updates": []}, "at least 1"),
        ({"updates": _updates()[:1] * 2}, "has two updates"),
        ({"task_id": 0}, "greater than or equal to 1"),
        ({"round": -1}, "greater than or equal to 0"),
        ({"round": "2"}, "valid integer"),
        ({"metrics": {"accuracy": "0.912346", "loss": "0.250000"}}, "Extra inputs are not permitted"),
        ({"aggregation": {"rule": "mean", "number_format": "q32.24", "params": {}}}, "'fedavg'"),
        ({"aggregation": {"rule": "fedavg", "params": {}}}, "aggregation.number_format\n  Field required"),
        (
            {"aggregation": {"rule": "fedavg", "number_format": "q16.8", "params": {}}},
            "Input should be 'q32.24'",
        ),
        ({"aggregation": {"rule": "fedavg", "number_format": "float64", "params": {}}}, "'q32.24'"),
        ({"version": 1}, "Input should be 4"),
        ({"version": 2}, "Input should be 4"),
    ],
)
def test_inconsistent_record_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        _record(**overrides)


def test_rewards_beyond_uint256_are_refused() -> None:
    updates = [u for u in _updates() if u["verdict"] == "accepted"]
    for update in updates:
        update["reward"] = 2**255

    with pytest.raises(ValidationError, match=re.escape("more than 2**256 - 1 wei")):
        _record(updates=updates)


def test_upper_case_hex_is_accepted_on_construction_and_written_lower_case() -> None:
    updates = _updates()
    updates[0]["digest"] = "0x" + "AB" * 32

    record = _record(updates=updates)

    assert ("0x" + "ab" * 32).encode() in record_bytes(record)


def test_record_is_immutable() -> None:
    record = _record()

    with pytest.raises(ValidationError):
        record.round = 3  # type: ignore[misc]


def _tamper(mutate: Any) -> bytes:
    """The canonical encoding of a record after ``mutate`` changed its decoded JSON."""
    decoded = _decoded(_record())
    mutate(decoded)
    return canonical_json(decoded)


def _first_update(decoded: dict[str, Any]) -> dict[str, Any]:
    return decoded["updates"][0]


def _accepted(decoded: dict[str, Any]) -> dict[str, Any]:
    return next(u for u in decoded["updates"] if u["verdict"] == "accepted")


def _rejected(decoded: dict[str, Any]) -> dict[str, Any]:
    return next(u for u in decoded["updates"] if u["verdict"] == "rejected")


TAMPERED = {
    "unknown field": (lambda d: d.update(comment="hi"), "comment: unknown field"),
    "unknown update field": (
        lambda d: _first_update(d).update(note=1),
        "updates[0].note: unknown field; allowed fields: contributor, cid",
    ),
    "missing field": (lambda d: d.pop("new_model"), "new_model: required field is missing"),
    "missing root": (lambda d: d.pop("rewards_root"), "lacks rewards_root"),
    "float score": (lambda d: _accepted(d).update(score=0.5), "not in canonical form"),
    "number for wei": (lambda d: _accepted(d).update(slash=0), "not in canonical form"),
    "number for task id": (lambda d: d.update(task_id=1), "not in canonical form"),
    "string for round": (lambda d: d.update(round="2"), "round: Input should be a valid integer"),
    "more places": (lambda d: _accepted(d).update(weight="0.5000000"), "exactly 6 places"),
    "negative zero": (lambda d: _first_update(d).update(score="-0.000000"), "exactly 6 places"),
    "checksummed address": (
        lambda d: _first_update(d).update(contributor=to_checksum_address(_first_update(d)["contributor"])),
        "not in canonical form",
    ),
    "upper-case digest": (
        lambda d: d["new_model"].update(digest="0x" + _digest("model 2").hex().upper()),
        "not in canonical form",
    ),
    "reordered updates": (lambda d: d["updates"].reverse(), "not in canonical form"),
    "reward changed": (lambda d: _accepted(d).update(reward="1"), "states reward_total"),
    "slash changed": (lambda d: _rejected(d).update(slash="1"), "states slash_root"),
    "tampered rewards root": (lambda d: d.update(rewards_root="0x" + "11" * 32), "states rewards_root"),
    "tampered slash root": (lambda d: d.update(slash_root="0x" + "00" * 32), "states slash_root"),
    "tampered total": (lambda d: d.update(reward_total="1"), "states reward_total"),
    "inconsistent verdict": (lambda d: _rejected(d).update(reason="ok"), "must say why"),
    "unknown reason": (lambda d: _first_update(d).update(reason="tired"), "updates[0].reason"),
    "future version": (
        lambda d: d.update(version=5),
        "round record has version 5, this node reads version 4",
    ),
    "version 3 (cosine scores)": (
        lambda d: d.update(version=3),
        "round record has version 3, this node reads version 4 only",
    ),
    "version 2 (float arithmetic)": (
        lambda d: (d.update(version=2), d["aggregation"].pop("number_format")),
        "round record has version 2, this node reads version 4 only",
    ),
    "version 1 with metrics": (
        lambda d: d.update(version=1, metrics={"accuracy": "0.912346", "loss": "0.250000"}),
        "round record has version 1, this node reads version 4 only (earlier versions judged by other rules)",
    ),
    "no number format": (
        lambda d: d["aggregation"].pop("number_format"),
        "aggregation.number_format: required field is missing",
    ),
    "other number format": (
        lambda d: d["aggregation"].update(number_format="q16.16"),
        "aggregation.number_format: Input should be 'q32.24'",
    ),
    "out_of_range reason on an accepted update": (
        lambda d: _accepted(d).update(reason="out_of_range"),
        "is accepted, so its reason must be 'ok', not 'out_of_range'",
    ),
    "metrics in the current version": (
        lambda d: d.update(metrics={"accuracy": "0.912346", "loss": "0.250000"}),
        "metrics: unknown field",
    ),
    "no version": (lambda d: d.pop("version"), "round record has version None"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_parse_refuses_anything_unexpected(case: str) -> None:
    mutate, message = TAMPERED[case]
    data = _tamper(mutate)

    with pytest.raises(IntegrityError, match=re.escape(message)):
        parse_record(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff", "not UTF-8 JSON"),
        (b"{", "not UTF-8 JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"round":NaN}', "lacks"),
    ],
)
def test_parse_refuses_malformed_files(data: bytes, message: str) -> None:
    with pytest.raises(IntegrityError, match=re.escape(message)):
        parse_record(data)


def test_parse_refuses_whitespace_and_duplicate_keys() -> None:
    record = _record()
    decoded = _decoded(record)
    pretty = json.dumps(decoded, sort_keys=True, indent=1).encode()
    data = record_bytes(record)
    # The same key twice with the same value: the last one would parse to the same record.
    duplicated = data[:-1] + b',"version":%d}' % RECORD_VERSION

    for bad in (pretty, duplicated, data + b"\n"):
        with pytest.raises(IntegrityError, match="not in canonical form"):
            parse_record(bad)


def test_reasons_are_distinct_and_ok_is_one_of_them() -> None:
    values = [reason.value for reason in Reason]

    assert len(set(values)) == len(values)
    assert Reason("ok") is Reason.OK
    assert all(re.fullmatch(r"[a-z_]+", value) for value in values)


def test_reason_codes_are_the_protocols() -> None:
    # The codes are part of the record format: other implementations write exactly these.
    assert sorted(reason.value for reason in Reason) == sorted(
        [
            "ok",
            "unavailable",
            "digest_mismatch",
            "too_large",
            "malformed",
            "wrong_binding",
            "samples_mismatch",
            "shape_mismatch",
            "non_finite",
            "out_of_range",
            "duplicate",
            "outlier",
            "free_rider",
            "redundant",
            "low_score",
            "undecryptable",
            "over_budget",
        ]
    )


updates_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=50),  # contributor
        st.booleans(),  # accepted
        st.integers(min_value=-(10**6), max_value=10**6),  # score in millionths
        st.integers(min_value=0, max_value=10**6),  # weight in millionths
        st.integers(min_value=0, max_value=2**250),  # reward or slash
        st.sampled_from([r for r in Reason if r is not Reason.OK]),
    ),
    min_size=1,
    max_size=8,
    unique_by=lambda entry: entry[0],
)


@settings(max_examples=100, deadline=None)
@given(entries=updates_strategy, task_id=st.integers(min_value=1, max_value=2**256 - 1))
def test_any_valid_record_round_trips(entries: list[tuple[Any, ...]], task_id: int) -> None:
    updates = [
        {
            "contributor": _account(n),
            "cid": f"bafkrei{n}",
            "digest": _digest(str(n)),
            "samples": n + 1,
            "verdict": "accepted" if accepted else "rejected",
            "reason": Reason.OK if accepted else reason,
            "score": format_micro(score),
            "weight": format_micro(weight if accepted else 0),
            "reward": amount if accepted else 0,
            "slash": 0 if accepted else amount,
        }
        for n, accepted, score, weight, amount, reason in entries
    ]
    record = _record(task_id=task_id, updates=updates)

    data = record_bytes(record)

    assert parse_record(data) == record
    assert record_bytes(parse_record(data)) == data
    allocations = [Allocation(u["contributor"], u["reward"]) for u in updates if u["reward"]]
    assert record.rewards_root == rewards_root(sorted(allocations, key=lambda a: a.account.lower()))
