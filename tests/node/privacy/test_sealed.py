"""Tests for cotrain.privacy.sealed: updates only their readers open, bound in the clear to their round."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cotrain.errors import ConfigError
from cotrain.learning.tensor_files import (
    RejectReason,
    UpdateRejected,
    decode_arrays,
    decode_tensors,
    encode_update,
)
from cotrain.privacy import sealed
from cotrain.privacy.sealed import (
    BINDING_KEYS,
    MAGIC,
    SealedReason,
    SealedRejected,
    generate_reader_key,
    load_reader_key,
    open_sealed,
    parse_reader_public,
    reader_public,
    reader_public_hex,
    save_reader_key,
    seal,
    sealed_public_facts,
)
from cotrain.protocol.update_binding import update_metadata
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

LIMIT = 1 << 20
BINDING = update_metadata(7, 3, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", bytes(range(32)), 120)
PLAINTEXT = b"an update file, in the clear " * 40
KEYS = [generate_reader_key() for _ in range(3)]
READERS = [reader_public(key) for key in KEYS]
RAW = (serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
SECRETS = [key.private_bytes(*RAW) for key in KEYS]
#: Every message a test saw; none may hold a private key (checked last).
MESSAGES: list[str] = []


def _expected(plaintext: bytes = PLAINTEXT, **changes: str) -> dict[str, str]:
    digest = "0x" + hashlib.sha256(plaintext).hexdigest()
    return {**BINDING, "plaintext_digest": digest, **changes}


def _rejected(data: bytes, key: X25519PrivateKey, **kwargs: Any) -> SealedReason:
    expected = kwargs.pop("expected", _expected())
    with pytest.raises(SealedRejected) as caught:
        open_sealed(data, key, expected, kwargs.pop("max_bytes", LIMIT), **kwargs)
    MESSAGES.append(str(caught.value))
    return caught.value.reason


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    start = len(MAGIC) + 4
    length = int.from_bytes(data[len(MAGIC) : start], "big")
    return json.loads(data[start : start + length]), data[start + length :]


def _join(header: Mapping[str, Any], ciphertext: bytes) -> bytes:
    text = sealed._canonical(header)
    return MAGIC + len(text).to_bytes(4, "big") + text + ciphertext


def _edited(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    header, ciphertext = _split(data)
    edit(header)
    return _join(header, ciphertext)


def _crafted(plaintext: bytes, seeds: list[bytes], *, plaintext_digest: str | None = None) -> bytes:
    """What a dishonest sealer builds: reader i's entry wraps ``seeds[i]``, the content uses ``seeds[0]``."""
    entries = [
        {name: "0x" + value.hex() for name, value in sealed._entry(seed, reader, os.urandom(12)).items()}
        for reader, seed in zip(READERS, seeds, strict=True)
    ]
    nonce = os.urandom(12)
    digest = plaintext_digest or "0x" + hashlib.sha256(plaintext).hexdigest()
    header = {
        "binding": {**BINDING, "plaintext_digest": digest},
        "format": sealed.SEALED_FORMAT,
        "nonce": "0x" + nonce.hex(),
        "readers": sorted(entries, key=lambda entry: entry["public"]),
    }
    prefix = _join(header, b"")
    content_key = sealed._hkdf(seeds[0], sealed._CONTENT_INFO)
    return prefix + AESGCM(content_key).encrypt(nonce, plaintext, prefix)


def _flip_hex(text: str) -> str:
    """The same hex string with its last digit changed, still valid hex."""
    return text[:-1] + ("0" if text[-1] != "0" else "1")


def test_every_reader_opens_what_was_sealed() -> None:
    data = seal(PLAINTEXT, READERS, BINDING)
    for key in KEYS:
        assert open_sealed(data, key, _expected(), LIMIT) == PLAINTEXT
        assert open_sealed(data, key, _expected(), LIMIT, readers=list(reversed(READERS))) == PLAINTEXT


def test_public_facts_show_the_binding_readers_and_sizes() -> None:
    data = seal(PLAINTEXT, READERS, BINDING)
    facts = sealed_public_facts(data)
    assert facts["binding"] == _expected()
    assert facts["readers"] == sorted("0x" + reader.hex() for reader in READERS)
    assert facts["sealed_digest"] == "0x" + hashlib.sha256(data).hexdigest()
    assert facts["plaintext_bytes"] == len(PLAINTEXT)
    parts = len(MAGIC) + 4 + facts["header_bytes"] + facts["ciphertext_bytes"]
    assert facts["sealed_bytes"] == len(data) == parts


def test_sealing_twice_gives_unrelated_bytes() -> None:
    first, second = seal(PLAINTEXT, READERS, BINDING), seal(PLAINTEXT, READERS, BINDING)
    assert first != second
    assert _split(first)[1] != _split(second)[1]
    assert open_sealed(second, KEYS[1], _expected(), LIMIT) == PLAINTEXT


def test_a_key_that_is_not_a_reader_is_told_so() -> None:
    data = seal(PLAINTEXT, READERS, BINDING)
    assert _rejected(data, generate_reader_key()) is SealedReason.NOT_A_READER


def test_a_file_leaving_out_a_task_reader_is_refused_by_every_reader() -> None:
    data = seal(PLAINTEXT, READERS[:2], BINDING)
    for key in KEYS[:2]:
        assert _rejected(data, key, readers=READERS) is SealedReason.NOT_A_READER


def test_an_entry_copied_from_another_reader_does_not_open() -> None:
    data = seal(PLAINTEXT, READERS, BINDING)

    def copy_first_entry_to_second(header: dict[str, Any]) -> None:
        first, second = header["readers"][:2]
        header["readers"][1] = {**first, "public": second["public"]}

    copied = _edited(data, copy_first_entry_to_second)
    second = READERS.index(bytes.fromhex(_split(data)[0]["readers"][1]["public"][2:]))
    assert _rejected(copied, KEYS[second]) is SealedReason.UNDECRYPTABLE


def test_readers_given_different_keys_are_refused_by_all() -> None:
    # A sealer wrapping another seed for the last reader: that reader cannot open the content, and the others
    # see that its entry does not wrap their seed, so no two readers disagree about the file.
    seed = os.urandom(32)
    data = _crafted(PLAINTEXT, [seed, seed, os.urandom(32)])
    for key in KEYS:
        assert _rejected(data, key) is SealedReason.UNDECRYPTABLE
    honest = _crafted(PLAINTEXT, [seed, seed, seed])
    assert all(open_sealed(honest, key, _expected(), LIMIT) == PLAINTEXT for key in KEYS)


def test_a_flipped_ciphertext_byte_does_not_open() -> None:
    data = bytearray(seal(PLAINTEXT, READERS, BINDING))
    for position in (len(data) - 1, len(data) - 20, len(data) - len(PLAINTEXT)):
        changed = bytearray(data)
        changed[position] ^= 0x01
        assert _rejected(bytes(changed), KEYS[0]) is SealedReason.UNDECRYPTABLE


def test_every_flipped_header_byte_is_refused() -> None:
    data = seal(PLAINTEXT, READERS, BINDING)
    header_end = len(data) - len(PLAINTEXT) - 16
    seen = set()
    for position in range(header_end):
        changed = bytearray(data)
        changed[position] ^= 0x01
        seen.add(_rejected(bytes(changed), KEYS[0]))
    assert seen <= {SealedReason.NOT_SEALED, SealedReason.UNDECRYPTABLE, SealedReason.NOT_A_READER}
    assert SealedReason.UNDECRYPTABLE in seen


@pytest.mark.parametrize(
    "edit",
    [
        lambda header: header.update(nonce=_flip_hex(header["nonce"])),
        lambda header: header["binding"].update(round="4"),
        lambda header: header["binding"].update(samples="121"),
    ],
    ids=["content nonce", "round", "samples"],
)
def test_a_header_edited_into_another_valid_header_does_not_open(
    edit: Callable[[dict[str, Any]], None],
) -> None:
    data = _edited(seal(PLAINTEXT, READERS, BINDING), edit)
    for key in KEYS:
        assert _rejected(data, key) is SealedReason.UNDECRYPTABLE


@pytest.mark.parametrize("field", ["wrapped", "ephemeral", "nonce"])
def test_a_flipped_wrapped_key_does_not_open_for_anyone(field: str) -> None:
    def flip(header: dict[str, Any]) -> None:
        header["readers"][0][field] = _flip_hex(header["readers"][0][field])

    data = _edited(seal(PLAINTEXT, READERS, BINDING), flip)
    for key in KEYS:
        assert _rejected(data, key) is SealedReason.UNDECRYPTABLE


def test_an_unexpected_plaintext_digest_is_a_digest_mismatch() -> None:
    data = seal(PLAINTEXT, READERS, BINDING)
    expected = _expected(plaintext_digest="0x" + "ab" * 32)
    assert _rejected(data, KEYS[0], expected=expected) is SealedReason.DIGEST_MISMATCH


def test_a_header_digest_that_is_not_the_plaintexts_is_a_digest_mismatch() -> None:
    seed = os.urandom(32)
    wrong = "0x" + hashlib.sha256(b"another update").hexdigest()
    data = _crafted(PLAINTEXT, [seed] * 3, plaintext_digest=wrong)
    expected = _expected(plaintext_digest=wrong)
    assert _rejected(data, KEYS[0], expected=expected) is SealedReason.DIGEST_MISMATCH


@pytest.mark.parametrize("name", ["task_id", "round", "contributor", "base_digest", "samples"])
def test_another_binding_is_a_wrong_binding(name: str) -> None:
    data = seal(PLAINTEXT, READERS, BINDING)
    expected = _expected(**{name: BINDING[name] + "0"})
    assert _rejected(data, KEYS[2], expected=expected) is SealedReason.WRONG_BINDING


def test_a_file_over_the_limit_is_refused_before_parsing() -> None:
    data = seal(PLAINTEXT, READERS, BINDING)
    assert _rejected(data, KEYS[0], max_bytes=len(data) - 1) is SealedReason.NOT_SEALED
    assert open_sealed(data, KEYS[0], _expected(), len(data)) == PLAINTEXT


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"",
        lambda data: data[: len(MAGIC) + 3],
        lambda data: b"cotrain.update/1\n" + data[len(MAGIC) :],
        lambda data: data[: len(MAGIC)] + (10**6).to_bytes(4, "big") + data[len(MAGIC) + 4 :],
        lambda data: data[: len(data) - len(PLAINTEXT) - 1],
        lambda data: (
            data[: len(MAGIC)]
            + (len(sealed._canonical(_split(data)[0])) - 1).to_bytes(4, "big")
            + data[len(MAGIC) + 4 :]
        ),
    ],
    ids=["empty", "truncated prefix", "wrong magic", "header too long", "no tag", "cut header"],
)
def test_bytes_that_are_not_a_sealed_file_are_not_sealed(damage: Callable[[bytes], bytes]) -> None:
    data = damage(seal(PLAINTEXT, READERS, BINDING))
    assert _rejected(data, KEYS[0]) is SealedReason.NOT_SEALED
    with pytest.raises(SealedRejected):
        sealed_public_facts(data)


def _respaced(data: bytes) -> bytes:
    header, ciphertext = _split(data)
    text = json.dumps(header, sort_keys=True).encode()
    return MAGIC + len(text).to_bytes(4, "big") + text + ciphertext


def _duplicated_key(data: bytes) -> bytes:
    header, ciphertext = _split(data)
    text = sealed._canonical(header)[:-1] + b',"nonce":"' + header["nonce"].encode() + b'"}'
    return MAGIC + len(text).to_bytes(4, "big") + text + ciphertext


@pytest.mark.parametrize(
    "edit",
    [
        lambda header: header.update(extra="1"),
        lambda header: header.update(format="cotrain.sealed/2"),
        lambda header: header["binding"].update(extra="1"),
        lambda header: header["binding"].update(samples=120),
        lambda header: header["binding"].update(plaintext_digest="0x" + "AB" * 32),
        lambda header: header.update(nonce=header["nonce"][:-2]),
        lambda header: header.update(readers=[]),
        lambda header: header.update(readers=header["readers"][::-1]),
        lambda header: header.update(readers=header["readers"][:1] * 2),
        lambda header: header["readers"][0].update(extra="0x"),
        lambda header: header["readers"][0].update(wrapped=header["readers"][0]["wrapped"] + "00"),
    ],
    ids=[
        "extra field",
        "other format",
        "extra binding",
        "number in binding",
        "upper-case digest",
        "short nonce",
        "no readers",
        "unsorted readers",
        "reader twice",
        "extra entry field",
        "long wrapped key",
    ],
)
def test_a_header_out_of_form_is_not_sealed(edit: Callable[[dict[str, Any]], None]) -> None:
    data = _edited(seal(PLAINTEXT, READERS, BINDING), edit)
    assert _rejected(data, KEYS[0]) is SealedReason.NOT_SEALED


@pytest.mark.parametrize("rewrite", [_respaced, _duplicated_key], ids=["not canonical", "duplicate key"])
def test_a_header_not_in_canonical_form_is_not_sealed(rewrite: Callable[[bytes], bytes]) -> None:
    data = rewrite(seal(PLAINTEXT, READERS, BINDING))
    assert _rejected(data, KEYS[0]) is SealedReason.NOT_SEALED


def test_an_observer_without_a_key_cannot_read_a_sealed_update() -> None:
    rng = np.random.default_rng(0)
    delta = {
        "1.weight": rng.standard_normal((10, 64)).astype(np.float32),
        "1.bias": rng.standard_normal(10).astype(np.float32),
    }
    update = encode_update(delta, BINDING)
    data = seal(update, READERS, BINDING)
    for decode in (decode_arrays, decode_tensors):
        with pytest.raises(UpdateRejected) as caught:
            decode(data, expected=None, max_bytes=LIMIT)
        assert caught.value.reason is RejectReason.MALFORMED
    tensor_bytes = update[8 + int.from_bytes(update[:8], "little") :]
    assert len(tensor_bytes) == 4 * (640 + 10)
    sealed_windows = {data[i : i + 16] for i in range(len(data) - 15)}
    assert not any(tensor_bytes[i : i + 16] in sealed_windows for i in range(len(tensor_bytes) - 15))
    assert sealed_public_facts(data)["binding"] == _expected(update)
    opened = open_sealed(data, KEYS[1], _expected(update), LIMIT, readers=READERS)
    shapes = {"1.weight": (10, 64), "1.bias": (10,)}
    arrays, metadata = decode_arrays(opened, expected=shapes, max_bytes=LIMIT)
    assert np.array_equal(arrays["1.weight"], delta["1.weight"]) and metadata["round"] == "3"


@pytest.mark.parametrize(
    ("readers", "binding"),
    [
        ([], BINDING),
        (READERS[:1] * 2, BINDING),
        ([b"\x01" * 31], BINDING),
        ([bytes(32)], BINDING),
        (["0x" + READERS[0].hex()], BINDING),
        ([os.urandom(32) for _ in range(sealed.MAX_READERS + 1)], BINDING),
        (READERS, {**BINDING, "extra": "1"}),
        (READERS, {k: v for k, v in BINDING.items() if k != "samples"}),
        (READERS, {**BINDING, "samples": 120}),
    ],
    ids=[
        "no readers",
        "reader twice",
        "short key",
        "low-order key",
        "hex key",
        "too many readers",
        "extra binding",
        "missing binding",
        "number in binding",
    ],
)
def test_seal_refuses_bad_arguments(readers: list[bytes], binding: Mapping[str, Any]) -> None:
    with pytest.raises(ConfigError):
        seal(PLAINTEXT, readers, binding)


def test_open_refuses_bad_arguments() -> None:
    data = seal(PLAINTEXT, READERS, BINDING)
    with pytest.raises(ConfigError, match="max_bytes"):
        open_sealed(data, KEYS[0], _expected(), 0)
    with pytest.raises(ConfigError, match="expected"):
        open_sealed(data, KEYS[0], dict(BINDING), LIMIT)
    assert set(BINDING_KEYS) == set(_expected())


def test_a_rejection_survives_pickling() -> None:
    error = SealedRejected(SealedReason.UNDECRYPTABLE, "x")
    copy = pickle.loads(pickle.dumps(error))
    assert copy.reason is SealedReason.UNDECRYPTABLE and str(copy) == str(error)


def test_reader_public_keys_in_hex() -> None:
    text = reader_public_hex(KEYS[0])
    assert text == "0x" + READERS[0].hex() and len(text) == 66
    assert parse_reader_public(text.upper().replace("0X", "0x")) == READERS[0]
    for bad in ("", text[2:], text + "00", "0x" + "zz" * 32):
        with pytest.raises(ConfigError):
            parse_reader_public(bad)


def test_a_key_file_round_trips_with_mode_0600(tmp_path: Path) -> None:
    path = save_reader_key(tmp_path / "reader.pem", KEYS[0])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert reader_public(load_reader_key(path)) == READERS[0]


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = save_reader_key(tmp_path / "reader.pem", KEYS[0])
    before = path.read_bytes()
    with pytest.raises(ConfigError, match="already exists") as caught:
        save_reader_key(path, KEYS[1])
    MESSAGES.append(str(caught.value))
    assert path.read_bytes() == before


def test_a_bad_key_file_names_the_file_not_its_content(tmp_path: Path) -> None:
    good = save_reader_key(tmp_path / "good.pem", KEYS[0]).read_bytes()
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cases = {"missing.pem": None, "cut.pem": good[:-30], "ed25519.pem": other, "empty.pem": b""}
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
            path.chmod(0o600)
        with pytest.raises(ConfigError) as caught:
            load_reader_key(path)
        message = str(caught.value)
        MESSAGES.append(message)
        assert str(path) in message and "\n" not in message
        assert b"PRIVATE" not in message.encode() and good.split(b"\n")[1].decode() not in message


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = save_reader_key(tmp_path / "reader.pem", KEYS[0])
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_reader_key(path)


def test_no_private_key_appears_in_a_repr_or_a_message(tmp_path: Path) -> None:
    # MESSAGES also holds what the tests above saw, when they ran first.
    data = seal(PLAINTEXT, READERS, BINDING)
    for key in KEYS:
        _rejected(data[:-1], key)
        _rejected(data, key, expected=_expected(round="9"))
    _rejected(_crafted(PLAINTEXT, [os.urandom(32) for _ in KEYS]), KEYS[0])
    path = save_reader_key(tmp_path / "reader.pem", KEYS[0])
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ConfigError) as caught:
        load_reader_key(path)
    MESSAGES.append(str(caught.value))
    for key, secret in zip(KEYS, SECRETS, strict=True):
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        body = pem.split(b"\n")[1].decode()
        for text in [repr(key), str(key), *MESSAGES]:
            assert secret.hex() not in text.lower() and body not in text
