"""Tests for cotrain.roles.sealed_updates: validators open sealed update files from a real store and every
way a file fails becomes its record reason; a keyless observer cannot read an update."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from cotrain.errors import ConfigError
from cotrain.learning.tensor_files import UpdateRejected, decode_arrays, encode_update
from cotrain.privacy.sealed import (
    SealedReason,
    SealedRejected,
    generate_reader_key,
    open_sealed,
    reader_public,
    reader_public_hex,
    seal,
    sealed_limit,
)
from cotrain.protocol.round_judge import FileRejected, RevealedUpdate, file_ref, judge, model_file
from cotrain.protocol.round_record import Reason
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec
from cotrain.protocol.update_binding import update_metadata
from cotrain.roles.sealed_updates import Opener, check_reader
from cotrain.roles.validator import verified_fetch
from cotrain.storage.embedded import EmbeddedStore
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

SPECS = Path(__file__).resolve().parents[3] / "node" / "cotrain" / "protocol" / "specs"
TASK_ID, ROUND = 3, 0
CONTRIBUTOR = "0x" + "ab" * 20
BASE = {"b": np.array([0.5, -0.25], dtype=np.float32), "w": np.array([[1.0, 2.0]], dtype=np.float32)}
DELTA = {"b": np.array([0.125, 0.25], dtype=np.float32), "w": np.array([[-0.5, 0.375]], dtype=np.float32)}


@pytest.fixture(scope="module")
def keys() -> list[X25519PrivateKey]:
    return [generate_reader_key() for _ in range(4)]


@pytest.fixture(scope="module")
def spec(keys: list[X25519PrivateKey]) -> TaskSpec:
    data = load_spec(SPECS / "breast_cancer.yaml").model_dump(mode="json")
    accounts = [*data["validators"]["addresses"], data["arbiter"]]
    assert len(accounts) == len(keys)
    data["privacy"] = {
        "readers": [{"account": a, "key": reader_public_hex(k)} for a, k in zip(accounts, keys, strict=True)]
    }
    return validate_spec(data)


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


BASE_REF = file_ref(model_file(TASK_ID, -1, BASE))
PLAINTEXT = encode_update(DELTA, update_metadata(TASK_ID, ROUND, CONTRIBUTOR, BASE_REF.digest, 7))
BINDING = update_metadata(TASK_ID, ROUND, CONTRIBUTOR, BASE_REF.digest, 7)


def _publish(store: EmbeddedStore, stored: bytes, plaintext: bytes = PLAINTEXT) -> RevealedUpdate:
    """Store ``stored`` and reveal it as the contributor would: its CID and the plaintext's digest."""
    return RevealedUpdate(CONTRIBUTOR, store.add(stored), hashlib.sha256(plaintext).digest(), 7)


def _readers(keys: list[X25519PrivateKey]) -> list[bytes]:
    return [reader_public(key) for key in keys]


def _judged_reason(
    spec: TaskSpec, store: EmbeddedStore, update: RevealedUpdate, key: X25519PrivateKey
) -> Reason:
    fetch = verified_fetch(store, spec.limits.max_update_bytes, Opener(spec, TASK_ID, ROUND, BASE_REF, key))
    judged = judge(spec, TASK_ID, ROUND, 100, BASE_REF, BASE, [update], fetch)
    (entry,) = judged.record.updates
    if entry.reason != Reason.OK:
        assert entry.slash == spec.rewards.slash_rejected_wei  # every failure to open is the contributor's
    return entry.reason


def test_every_reader_opens_a_sealed_update_and_judges_it(
    spec: TaskSpec, store: EmbeddedStore, keys: list[X25519PrivateKey]
) -> None:
    update = _publish(store, seal(PLAINTEXT, _readers(keys), BINDING))
    for key in keys:
        opener = Opener(spec, TASK_ID, ROUND, BASE_REF, key)
        assert verified_fetch(store, spec.limits.max_update_bytes, opener)(update) == PLAINTEXT
        assert _judged_reason(spec, store, update, key) == Reason.OK


def test_a_keyless_observer_fetches_the_update_and_cannot_read_it(
    spec: TaskSpec, store: EmbeddedStore, keys: list[X25519PrivateKey]
) -> None:
    update = _publish(store, seal(PLAINTEXT, _readers(keys), BINDING))
    data = store.get(update.cid, max_size=sealed_limit(spec.limits.max_update_bytes))

    assert data != PLAINTEXT and hashlib.sha256(data).digest() != update.digest
    with pytest.raises(UpdateRejected):
        decode_arrays(data, expected={"b": (2,), "w": (1, 2)}, max_bytes=len(data))
    with pytest.raises(SealedRejected) as caught:
        open_sealed(
            data,
            generate_reader_key(),
            {**BINDING, "plaintext_digest": "0x" + update.digest.hex()},
            len(data),
        )
    assert caught.value.reason == SealedReason.NOT_A_READER
    # Nor do the delta's float32 bytes appear in the stored file.
    raw = DELTA["b"].tobytes() + DELTA["w"].tobytes()
    assert raw not in data and raw[:8] not in data


def test_a_tampered_ciphertext_is_undecryptable(
    spec: TaskSpec, store: EmbeddedStore, keys: list[X25519PrivateKey]
) -> None:
    sealed = bytearray(seal(PLAINTEXT, _readers(keys), BINDING))
    sealed[-20] ^= 1
    assert _judged_reason(spec, store, _publish(store, bytes(sealed)), keys[0]) == Reason.UNDECRYPTABLE


def test_a_file_not_sealed_to_every_reader_is_undecryptable_for_all(
    spec: TaskSpec, store: EmbeddedStore, keys: list[X25519PrivateKey]
) -> None:
    update = _publish(store, seal(PLAINTEXT, _readers(keys[:3]), BINDING))
    # Even the readers it names reach the verdict the left-out reader reaches.
    assert [_judged_reason(spec, store, update, key) for key in keys] == [Reason.UNDECRYPTABLE] * 4


def test_a_wrong_digest_is_a_digest_mismatch(
    spec: TaskSpec, store: EmbeddedStore, keys: list[X25519PrivateKey]
) -> None:
    update = _publish(store, seal(PLAINTEXT, _readers(keys), BINDING), plaintext=b"another plaintext")
    assert _judged_reason(spec, store, update, keys[1]) == Reason.DIGEST_MISMATCH


def test_a_wrong_binding_and_a_public_file_are_refused(
    spec: TaskSpec, store: EmbeddedStore, keys: list[X25519PrivateKey]
) -> None:
    elsewhere = update_metadata(TASK_ID, ROUND + 1, CONTRIBUTOR, BASE_REF.digest, 7)
    assert _judged_reason(
        spec, store, _publish(store, seal(PLAINTEXT, _readers(keys), elsewhere)), keys[0]
    ) == (Reason.WRONG_BINDING)
    # The plain update file in a sealed task: whoever reads it, the bytes are not an envelope.
    assert _judged_reason(spec, store, _publish(store, PLAINTEXT), keys[0]) == Reason.MALFORMED


def test_an_opener_maps_refusals_to_file_rejections(spec: TaskSpec, keys: list[X25519PrivateKey]) -> None:
    opener = Opener(spec, TASK_ID, ROUND, BASE_REF, keys[0])
    update = RevealedUpdate(CONTRIBUTOR, "unused", hashlib.sha256(PLAINTEXT).digest(), 7)
    with pytest.raises(FileRejected) as caught:
        opener(update, b"not an envelope")
    assert caught.value.reason == Reason.MALFORMED


def test_a_key_that_is_not_a_readers_is_refused_up_front(
    spec: TaskSpec, keys: list[X25519PrivateKey]
) -> None:
    check_reader(spec, keys[2], TASK_ID)
    with pytest.raises(ConfigError, match="pass --reader-key"):
        check_reader(spec, None, TASK_ID)
    with pytest.raises(ConfigError, match="is not among task 3's readers"):
        check_reader(spec, generate_reader_key(), TASK_ID)
