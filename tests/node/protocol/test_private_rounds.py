"""Tests for rounds of tasks with ``privacy``: the declared epsilon in the record and the budget verdict
(cotrain.protocol.round_judge, cotrain.protocol.epsilon), and the spec's privacy section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cotrain.errors import ConfigError
from cotrain.learning.tensor_files import encode_update
from cotrain.protocol.epsilon import declare, parse_declared, within_budget
from cotrain.protocol.round_judge import FileRejected, Judged, RevealedUpdate, file_ref, judge, model_file
from cotrain.protocol.round_record import Reason, parse_record
from cotrain.protocol.task_spec import TaskSpec, load_spec, parse_spec_bytes, spec_bytes, validate_spec
from cotrain.protocol.update_binding import update_metadata

SPECS = Path(__file__).resolve().parents[3] / "node" / "cotrain" / "protocol" / "specs"
TASK_ID, ROUND = 5, 2
BASE = {"b": np.array([0.5, -0.25], dtype=np.float32), "w": np.array([[1.0, 2.0]], dtype=np.float32)}
KEY_A, KEY_B = "0x" + "ab" * 32, "0x" + "CD" * 32


def _spec(privacy: dict[str, Any] | None) -> TaskSpec:
    data = load_spec(SPECS / "breast_cancer.yaml").model_dump(mode="json")
    data["privacy"] = privacy
    return validate_spec(data)


def _dp(max_epsilon: float = 3.0) -> dict[str, Any]:
    return {
        "mechanism": "user",
        "noise_multiplier": 1.2,
        "clip_norm": 0.5,
        "delta": 1e-5,
        "max_epsilon": max_epsilon,
    }


def _readers(spec: TaskSpec, keys: list[str]) -> list[dict[str, str]]:
    accounts = [*spec.validators.addresses, spec.arbiter]
    return [{"account": account, "key": key} for account, key in zip(accounts, keys, strict=False)]


def _round(spec: TaskSpec, declared: dict[str, str | None]) -> Judged:
    """Five similar updates whose files declare ``declared[contributor]`` (None: no epsilon key)."""
    base = file_ref(model_file(TASK_ID, -1, BASE))
    rng = np.random.default_rng(3)
    files, revealed = {}, []
    for order, (who, epsilon) in enumerate(declared.items()):
        delta = {
            name: (0.1 + 0.02 * rng.standard_normal(a.shape)).astype(np.float32) for name, a in BASE.items()
        }
        metadata = update_metadata(TASK_ID, ROUND, who, base.digest, 10)
        data = encode_update(delta, metadata if epsilon is None else {**metadata, "epsilon": epsilon})
        ref = file_ref(data)
        files[ref.cid] = data
        revealed.append(RevealedUpdate(who, ref.cid, ref.digest, 10, order))
    return judge(spec, TASK_ID, ROUND, 10**6, base, BASE, revealed, lambda update: files[update.cid])


def _accounts(count: int) -> list[str]:
    return ["0x" + f"{i + 1:02x}" * 20 for i in range(count)]


def test_the_record_carries_each_declared_epsilon_and_rejects_what_passes_the_budget() -> None:
    spec = _spec({"dp": _dp(3.0)})
    a, b, c, d, e = _accounts(5)
    judged = _round(spec, {a: "1.25", b: "3", c: "3.000001", d: None, e: "2.50"})
    entries = {u.contributor: u for u in judged.record.updates}

    assert (entries[a].reason, entries[a].epsilon) == (Reason.OK, "1.25")
    assert (entries[b].reason, entries[b].epsilon) == (Reason.OK, "3")  # the maximum itself is allowed
    # One millionth over, none declared, or not a plain decimal: over_budget, slashed, paid nothing.
    for who, epsilon in ((c, "3.000001"), (d, None), (e, None)):
        assert (entries[who].reason, entries[who].epsilon) == (Reason.OVER_BUDGET, epsilon)
        assert entries[who].slash == spec.rewards.slash_rejected_wei and entries[who].reward == 0
    assert parse_record(judged.record_file) == judged.record
    assert b'"epsilon":"1.25"' in judged.record_file


def test_a_task_without_dp_keeps_the_record_free_of_epsilons() -> None:
    spec = _spec(None)
    a, b, c = _accounts(3)
    judged = _round(spec, {a: "1", b: "99", c: None})

    assert all(u.reason == Reason.OK and u.epsilon is None for u in judged.record.updates)
    assert b"epsilon" not in judged.record_file


def test_a_fetch_can_give_the_reason_itself() -> None:
    spec = _spec(None)
    base = file_ref(model_file(TASK_ID, -1, BASE))
    update = RevealedUpdate(_accounts(1)[0], "bafy-not-opened", bytes(32), 10)

    def fetch(_: RevealedUpdate) -> bytes:
        raise FileRejected(Reason.UNDECRYPTABLE, "no reader entry opens")

    judged = judge(spec, TASK_ID, ROUND, 100, base, BASE, [update], fetch)

    (entry,) = judged.record.updates
    assert (entry.reason, entry.slash) == (Reason.UNDECRYPTABLE, spec.rewards.slash_rejected_wei)


@pytest.mark.parametrize(
    ("value", "text"),
    [(2.0000001, "2.000001"), (3.0, "3"), (0.1234561, "0.123457"), (7.93, "7.93"), (0.0, "0")],
)
def test_a_declaration_rounds_up_to_millionths(value: float, text: str) -> None:
    assert declare(value) == text
    assert parse_declared(text) is not None and parse_declared(text) >= value


@pytest.mark.parametrize("text", ["1e-5", "2.50", "02", "-1", " 1", "1.", ".5", "inf", "1" * 41, None, 3])
def test_only_plain_decimals_are_declarations(text: object) -> None:
    assert parse_declared(text) is None
    assert not within_budget(text, 1e9)


def test_the_budget_compares_the_spec_decimal_exactly() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in binary; the spec's 0.3 is 3/10 exactly.
    assert within_budget("0.3", 0.3) and not within_budget("0.300001", 0.3)
    assert within_budget(declare(0.1 + 0.2), 0.300001)


def test_privacy_is_left_out_of_the_canonical_spec_when_unset() -> None:
    plain = load_spec(SPECS / "breast_cancer.yaml")
    assert _spec(None) == plain
    assert b"privacy" not in spec_bytes(plain)


def test_a_private_spec_round_trips_with_lower_case_keys() -> None:
    plain = load_spec(SPECS / "breast_cancer.yaml")
    keys = [KEY_A, KEY_B, "0x" + "ef" * 32, "0x" + "12" * 32]
    spec = _spec({"readers": _readers(plain, keys), "dp": _dp()})

    again = parse_spec_bytes(spec_bytes(spec))

    assert again == spec
    assert again.privacy is not None and again.privacy.readers is not None
    assert [r.key for r in again.privacy.readers] == [k.lower() for k in keys]
    assert again.privacy.dp is not None and again.privacy.dp.delta == 1e-5


def test_every_validator_and_the_arbiter_must_be_readers() -> None:
    plain = load_spec(SPECS / "breast_cancer.yaml")
    with pytest.raises(ConfigError) as caught:
        _spec({"readers": _readers(plain, [KEY_A])})
    message = str(caught.value)
    assert f"the arbiter {plain.arbiter} is not a reader" in message
    assert all(f"the validator {v} is not a reader" in message for v in plain.validators.addresses[1:])
    assert f"the validator {plain.validators.addresses[0]} " not in message


@pytest.mark.parametrize(
    ("privacy", "problem"),
    [
        ({}, "give readers (sealed updates), dp (differential privacy) or both"),
        ({"readers": [{"account": "0x" + "11" * 20, "key": "0x1234"}]}, "is not a reader public key"),
        ({"dp": {**_dp(), "delta": 1.5}}, "privacy.dp.delta"),
        ({"dp": {**_dp(), "max_epsilon": 0}}, "privacy.dp.max_epsilon"),
        ({"dp": {**_dp(), "mechanism": "local"}}, "privacy.dp.mechanism"),
    ],
)
def test_bad_privacy_sections_are_refused(privacy: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match="invalid task spec") as caught:
        _spec(privacy)
    assert problem in str(caught.value)


def test_fedprox_is_refused_with_dp_sgd_and_allowed_with_user_dp() -> None:
    data = load_spec(SPECS / "breast_cancer.yaml").model_dump(mode="json")
    data["training"]["proximal_mu"] = 0.1
    data["privacy"] = {"dp": {**_dp(), "mechanism": "sample"}}
    with pytest.raises(ConfigError, match="FedProx is not implemented with DP-SGD"):
        validate_spec(data)
    data["privacy"] = {"dp": _dp()}
    assert validate_spec(data).training.proximal_mu == 0.1


def test_class_weights_are_refused_with_dp_sgd_and_allowed_with_user_dp() -> None:
    data = load_spec(SPECS / "breast_cancer.yaml").model_dump(mode="json")
    data["training"]["class_weights"] = [3.0, 1.0]
    data["privacy"] = {"dp": {**_dp(), "mechanism": "sample"}}
    with pytest.raises(ConfigError, match="class-weighted loss is not implemented with DP-SGD"):
        validate_spec(data)
    data["privacy"] = {"dp": _dp()}
    assert validate_spec(data).training.class_weights == [3.0, 1.0]


def test_a_reader_key_listed_twice_is_refused() -> None:
    plain = load_spec(SPECS / "breast_cancer.yaml")
    readers = _readers(plain, [KEY_A, KEY_B, KEY_A.upper().replace("0X", "0x"), "0x" + "12" * 32])
    with pytest.raises(ConfigError, match=f"key {KEY_A} is listed twice"):
        _spec({"readers": readers})
