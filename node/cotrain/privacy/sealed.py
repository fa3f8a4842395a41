"""Sealed update files: an update encrypted to its task's readers (validators and named auditors), bound in
the clear to the task, round, contributor and base model it is for.

A sealed file is ``MAGIC + u32_be(N) + header + ciphertext``, where ``header`` is ``N`` bytes of canonical
JSON (sorted keys, no whitespace, UTF-8)::

    {"binding": {"base_digest", "contributor", "plaintext_digest", "round", "samples", "task_id"},   # strings
     "format": "cotrain.sealed/1",
     "nonce": hex(12 bytes),                                       # the content nonce
     "readers": [{"ephemeral": hex(32), "nonce": hex(12), "public": hex(32), "wrapped": hex(48)}, ...]}

with ``readers`` sorted by ``public``. The construction, all from ``cryptography``:

- ``seed``: 32 fresh random bytes; ``content_key = HKDF-SHA256(seed, info="cotrain.sealed/1 content key")``.
- ``ciphertext = AES-256-GCM(content_key, nonce, plaintext, aad = MAGIC + u32_be(N) + header)``, so changing
  any byte before the ciphertext fails authentication too.
- Per reader public key ``R`` (ephemeral-static X25519 ECIES): ``e = X25519 key from HKDF-SHA256(seed,
  info="cotrain.sealed/1 ephemeral" + R)``, ``E = public(e)``, ``kek = HKDF-SHA256(X25519(e, R), salt = E + R,
  info = "cotrain.sealed/1 key wrap")``, ``wrapped = AES-256-GCM(kek, random nonce, seed)``.

The ephemeral keys are derived from the seed rather than drawn at random so that a reader who opens the file
can rebuild every other reader's entry and check that it wraps the same seed (the Fujisaki-Okamoto
re-encryption check). Without it a contributor could give different readers different keys, or, because GCM
does not commit to its key, one ciphertext that opens to two plaintexts, and split the validators' verdicts.
The seed is fresh per file, so sealing the same update twice gives unrelated bytes.

:func:`open_sealed` raises :class:`SealedRejected` with one :class:`SealedReason`; validators give the update
the record reason below (``roles/sealed_updates.py``, PROTOCOL.md section 6.6):

===================  =======================  =======  ====================================================
SealedReason         record reason            slashed  why
===================  =======================  =======  ====================================================
``not_sealed``       ``malformed``            yes      the bytes are pinned by the CID the contributor
                                                       revealed; only it chose them
``not_a_reader``     ``undecryptable``        yes      checked with ``readers=`` set to the task's list, a
                                                       public fact: every validator sees the same omission,
                                                       and leaving a reader out is the contributor's choice
``undecryptable``    ``undecryptable``        yes      every reader checks every entry against the seed, so
                                                       all readers reach the same verdict; a contributor can
                                                       always make a file nobody opens, so it must cost the
                                                       stake as ``malformed`` does
``digest_mismatch``  ``digest_mismatch``      yes      as for public updates
``wrong_binding``    ``wrong_binding``        yes      as for public updates
===================  =======================  =======  ====================================================

A reader that has lost its own key sees ``undecryptable`` on every file while the others open them; that is
the reader's fault, and shows as its record disagreeing with the other validators'. Files above the size limit
are refused by the fetch (``too_large``) before they reach :func:`open_sealed`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, NoReturn

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cotrain.errors import ConfigError, IntegrityError
from cotrain.protocol.update_binding import UPDATE_BINDING

SEALED_FORMAT = "cotrain.sealed/1"
MAGIC = b"cotrain.sealed/1\n"
#: Every key of a sealed file's binding: the update binding plus the plaintext's sha256.
BINDING_KEYS = (*UPDATE_BINDING, "plaintext_digest")
MAX_READERS = 64
# 64 readers take about 20 KB of header; the rest is room for the binding's strings.
MAX_HEADER_BYTES = 65_536

_LENGTH_BYTES = 4
_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
# cryptography's AESGCM refuses more than this in one call.
_MAX_PLAINTEXT_BYTES = 2**31 - 1 - _TAG_BYTES
_CONTENT_INFO = b"cotrain.sealed/1 content key"
_EPHEMERAL_INFO = b"cotrain.sealed/1 ephemeral"
_WRAP_INFO = b"cotrain.sealed/1 key wrap"
_ENTRY_FIELDS = {"ephemeral": _KEY_BYTES, "nonce": _NONCE_BYTES, "public": _KEY_BYTES, "wrapped": 48}
_HEX_DIGITS = frozenset("0123456789abcdef")
_MAX_KEY_FILE_BYTES = 4096


class SealedReason(str, Enum):
    """Why a sealed file was refused; see the module docstring for the round record's reason of each."""

    NOT_SEALED = "not_sealed"
    NOT_A_READER = "not_a_reader"
    UNDECRYPTABLE = "undecryptable"
    DIGEST_MISMATCH = "digest_mismatch"
    WRONG_BINDING = "wrong_binding"


class SealedRejected(IntegrityError):
    """A sealed file failed a check; ``reason`` says which and the message says what was found."""

    def __init__(self, reason: SealedReason, detail: str) -> None:
        super().__init__(f"sealed update rejected ({reason.value}): {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail))


def _reject(reason: SealedReason, detail: str) -> NoReturn:
    raise SealedRejected(reason, detail)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _hkdf(secret: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=_KEY_BYTES, salt=salt, info=info).derive(secret)


def _public_bytes(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sealed_limit(plaintext_limit: int) -> int:
    """The largest sealed file of a plaintext of ``plaintext_limit`` bytes (the header at its largest)."""
    return len(MAGIC) + _LENGTH_BYTES + MAX_HEADER_BYTES + plaintext_limit + _TAG_BYTES


# --- reader keys -------------------------------------------------------------------------------------------


def generate_reader_key() -> X25519PrivateKey:
    """Return a new X25519 reader key pair from the operating system's secure random source."""
    return X25519PrivateKey.generate()


def reader_public(key: X25519PrivateKey) -> bytes:
    """Return the 32-byte public key of ``key``: what :func:`seal` takes in ``readers``."""
    return _public_bytes(key.public_key())


def reader_public_hex(key: X25519PrivateKey) -> str:
    """Return the public key of ``key`` as ``"0x"`` and 64 lower-case hex digits, the form a spec lists."""
    return _hex(reader_public(key))


def parse_reader_public(text: str) -> bytes:
    """Return the 32 bytes of a reader public key written as ``"0x"`` and 64 hex digits (any case).

    Raises
    ------
    ConfigError
        If ``text`` is not of that form.
    """
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 2 + 2 * _KEY_BYTES:
        raise ConfigError(f"reader public key {text!r} must be 0x and 64 hex digits")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise ConfigError(f"reader public key {text!r} must be 0x and 64 hex digits") from None


def save_reader_key(path: str | os.PathLike[str], key: X25519PrivateKey) -> Path:
    """Write ``key`` as an unencrypted PKCS8 PEM file readable only by its owner (mode 0600).

    The file is created with its mode already set, so the key is never readable by others, even briefly.

    Returns
    -------
    Path
        The file's path.

    Raises
    ------
    ConfigError
        If the file already exists (it is never overwritten) or cannot be created.
    """
    target = Path(path)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"reader key file {target} already exists; choose another path or remove it first"
        ) from None
    except OSError as error:
        raise ConfigError(f"cannot create reader key file {target}: {error.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(pem)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


def load_reader_key(path: str | os.PathLike[str]) -> X25519PrivateKey:
    """Read a reader key written by :func:`save_reader_key`.

    Raises
    ------
    ConfigError
        If the file is missing, unreadable, readable by group or others, or not an unencrypted PKCS8 PEM
        X25519 private key. The message names the file, never its content.
    """
    source = Path(path)
    try:
        status = source.stat()
        # An oversized file is not a key; reading it whole would only cost memory.
        raw = source.read_bytes() if status.st_size <= _MAX_KEY_FILE_BYTES else b""
    except FileNotFoundError:
        raise ConfigError(f"reader key file {source} not found; pass a saved reader key's path") from None
    except OSError as error:
        raise ConfigError(f"cannot read reader key file {source}: {error.strerror}") from None
    if os.name == "posix" and status.st_mode & 0o077:
        raise ConfigError(f"reader key file {source} is readable by others; run chmod 600 {source}")
    try:
        key = serialization.load_pem_private_key(raw, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, X25519PrivateKey):
        raise ConfigError(
            f"reader key file {source} is not an unencrypted PKCS8 PEM X25519 key; pass a saved reader key"
        )
    return key


# --- sealing -----------------------------------------------------------------------------------------------


def _ephemeral(seed: bytes, reader: bytes) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(_hkdf(seed, _EPHEMERAL_INFO + reader))


def _key_encryption_key(shared: bytes, ephemeral: bytes, reader: bytes) -> bytes:
    return _hkdf(shared, _WRAP_INFO, salt=ephemeral + reader)


def _entry(seed: bytes, reader: bytes, nonce: bytes) -> dict[str, bytes]:
    """One reader's entry; raises ValueError for a reader key that gives no usable shared secret."""
    ephemeral = _ephemeral(seed, reader)
    ephemeral_public = _public_bytes(ephemeral.public_key())
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(reader))
    wrapped = AESGCM(_key_encryption_key(shared, ephemeral_public, reader)).encrypt(nonce, seed, None)
    return {"ephemeral": ephemeral_public, "nonce": nonce, "public": reader, "wrapped": wrapped}


def _canonical(value: Any) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_readers(readers: Sequence[bytes]) -> list[bytes]:
    if not all(isinstance(reader, (bytes, bytearray, memoryview)) for reader in readers):
        raise ConfigError("readers must be public keys as bytes; convert hex with parse_reader_public")
    keys = [bytes(reader) for reader in readers]
    if not 1 <= len(keys) <= MAX_READERS:
        raise ConfigError(f"a sealed file needs 1 to {MAX_READERS} readers, got {len(keys)}")
    for key in keys:
        if len(key) != _KEY_BYTES:
            raise ConfigError(f"a reader public key must be {_KEY_BYTES} bytes, got {len(key)}")
    if len(set(keys)) != len(keys):
        raise ConfigError("the readers list names a key twice; list each reader once")
    return sorted(keys)


def seal(plaintext: bytes, readers: Sequence[bytes], binding: Mapping[str, str]) -> bytes:
    """Encrypt ``plaintext`` so that only ``readers`` can read it, bound in the clear to ``binding``.

    Parameters
    ----------
    plaintext : bytes
        The file to seal, typically an update file (``encode_update``).
    readers : Sequence[bytes]
        The readers' 32-byte X25519 public keys (:func:`reader_public`), each once.
    binding : Mapping[str, str]
        Exactly the update binding (``update_metadata``: task_id, round, contributor, base_digest, samples);
        the plaintext's sha256 is added as ``plaintext_digest``.

    Returns
    -------
    bytes
        The sealed file; different on every call, even for the same arguments.

    Raises
    ------
    ConfigError
        For a binding with other keys or non-string values, a bad readers list or a plaintext too large.
    """
    return seal_with(plaintext, readers, binding, secrets.token_bytes(_KEY_BYTES), secrets.token_bytes)


def seal_with(
    plaintext: bytes,
    readers: Sequence[bytes],
    binding: Mapping[str, str],
    seed: bytes,
    nonces: Callable[[int], bytes],
) -> bytes:
    """:func:`seal` with the given ``seed`` and ``nonces`` (called with a length) instead of fresh random
    ones: for the protocol's test vectors only. A seed used twice exposes both plaintexts to anyone who
    learns it once; nodes call :func:`seal`."""
    if set(binding) != set(UPDATE_BINDING) or not all(isinstance(v, str) for v in binding.values()):
        raise ConfigError(f"binding must map exactly {', '.join(UPDATE_BINDING)} to strings")
    if len(plaintext) > _MAX_PLAINTEXT_BYTES:
        raise ConfigError(f"{len(plaintext)} bytes is too large to seal; the limit is {_MAX_PLAINTEXT_BYTES}")
    if len(seed) != _KEY_BYTES:
        raise ConfigError(f"a seed is {_KEY_BYTES} bytes")
    sorted_readers = _check_readers(readers)
    entries = []
    for reader in sorted_readers:
        try:
            entry = _entry(seed, reader, nonces(_NONCE_BYTES))
        except ValueError:
            raise ConfigError(
                f"reader public key {_hex(reader)} is not a usable X25519 key; check the task's reader list"
            ) from None
        entries.append({name: _hex(value) for name, value in entry.items()})
    nonce = nonces(_NONCE_BYTES)
    header = _canonical(
        {
            "binding": {**binding, "plaintext_digest": _hex(hashlib.sha256(plaintext).digest())},
            "format": SEALED_FORMAT,
            "nonce": _hex(nonce),
            "readers": entries,
        }
    )
    if len(header) > MAX_HEADER_BYTES:
        raise ConfigError(f"the sealed header would take {len(header)} bytes, over {MAX_HEADER_BYTES}")
    prefix = MAGIC + len(header).to_bytes(_LENGTH_BYTES, "big") + header
    return prefix + AESGCM(_hkdf(seed, _CONTENT_INFO)).encrypt(nonce, bytes(plaintext), prefix)


# --- parsing -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sealed:
    prefix_length: int
    binding: dict[str, str]
    nonce: bytes
    readers: dict[bytes, dict[str, bytes]]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            _reject(SealedReason.NOT_SEALED, f"the header names {key!r} twice")
        result[key] = value
    return result


def _no_constants(name: str) -> NoReturn:
    _reject(SealedReason.NOT_SEALED, f"the header holds the non-JSON constant {name}")


def _field_bytes(value: Any, size: int, what: str) -> bytes:
    if (
        not isinstance(value, str)
        or len(value) != 2 + 2 * size
        or not value.startswith("0x")
        or not set(value[2:]) <= _HEX_DIGITS
    ):
        _reject(SealedReason.NOT_SEALED, f"{what} is not 0x and {2 * size} lower-case hex digits")
    return bytes.fromhex(value[2:])


def _parse(data: bytes) -> _Sealed:
    start = len(MAGIC) + _LENGTH_BYTES
    if len(data) < start or not data.startswith(MAGIC):
        _reject(SealedReason.NOT_SEALED, f"the file does not start with {MAGIC!r}")
    length = int.from_bytes(data[len(MAGIC) : start], "big")
    if not 2 <= length <= MAX_HEADER_BYTES or start + length + _TAG_BYTES > len(data):
        _reject(SealedReason.NOT_SEALED, f"header length {length} does not fit a file of {len(data)} bytes")
    text = bytes(data[start : start + length])
    try:
        header = json.loads(
            text.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants
        )
    except SealedRejected:
        raise
    except (ValueError, RecursionError):
        _reject(SealedReason.NOT_SEALED, "the header is not UTF-8 JSON")
    if not isinstance(header, dict) or set(header) != {"binding", "format", "nonce", "readers"}:
        _reject(SealedReason.NOT_SEALED, "the header is not an object of binding, format, nonce, readers")
    if header["format"] != SEALED_FORMAT:
        _reject(SealedReason.NOT_SEALED, f"format {header['format']!r} is not {SEALED_FORMAT!r}")
    binding = header["binding"]
    if (
        not isinstance(binding, dict)
        or set(binding) != set(BINDING_KEYS)
        or not all(isinstance(v, str) for v in binding.values())
    ):
        _reject(SealedReason.NOT_SEALED, f"the binding does not map exactly {', '.join(BINDING_KEYS)}")
    _field_bytes(binding["plaintext_digest"], 32, "plaintext_digest")
    nonce = _field_bytes(header["nonce"], _NONCE_BYTES, "the content nonce")
    listed = header["readers"]
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_READERS:
        _reject(SealedReason.NOT_SEALED, f"readers is not a list of 1 to {MAX_READERS} entries")
    readers: dict[bytes, dict[str, bytes]] = {}
    for index, entry in enumerate(listed):
        if not isinstance(entry, dict) or set(entry) != set(_ENTRY_FIELDS):
            _reject(SealedReason.NOT_SEALED, f"reader entry {index} is not ephemeral, nonce, public, wrapped")
        fields = {
            name: _field_bytes(entry[name], size, f"reader entry {index}'s {name}")
            for name, size in _ENTRY_FIELDS.items()
        }
        if readers and fields["public"] <= max(readers):
            _reject(SealedReason.NOT_SEALED, "reader entries are not in strictly increasing key order")
        readers[fields["public"]] = fields
    # One header, one byte string: a reordered or re-spaced header would be a second form of the same facts.
    if _canonical(header) != text:
        _reject(SealedReason.NOT_SEALED, "the header is not canonical JSON")
    return _Sealed(start + length, dict(binding), nonce, readers)


def sealed_public_facts(data: bytes) -> dict[str, Any]:
    """What anyone can read from a sealed file without a key.

    Returns
    -------
    dict
        ``format``; ``binding`` (task_id, round, contributor, base_digest, samples, plaintext_digest);
        ``readers`` (their public keys, hex, sorted); ``sealed_digest`` (sha256 of the whole file, hex);
        ``sealed_bytes``, ``header_bytes``, ``ciphertext_bytes`` and ``plaintext_bytes`` (GCM hides content,
        not length).

    Raises
    ------
    SealedRejected
        ``not_sealed`` if the file is not a well-formed sealed file.
    """
    parsed = _parse(data)
    ciphertext_bytes = len(data) - parsed.prefix_length
    return {
        "format": SEALED_FORMAT,
        "binding": dict(parsed.binding),
        "readers": [_hex(public) for public in parsed.readers],
        "sealed_digest": _hex(hashlib.sha256(data).digest()),
        "sealed_bytes": len(data),
        "header_bytes": parsed.prefix_length - len(MAGIC) - _LENGTH_BYTES,
        "ciphertext_bytes": ciphertext_bytes,
        "plaintext_bytes": ciphertext_bytes - _TAG_BYTES,
    }


# --- opening -----------------------------------------------------------------------------------------------


def _unwrap(key: X25519PrivateKey, entry: Mapping[str, bytes]) -> bytes:
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(entry["ephemeral"]))
        kek = _key_encryption_key(shared, entry["ephemeral"], entry["public"])
        return AESGCM(kek).decrypt(entry["nonce"], entry["wrapped"], None)
    except (InvalidTag, ValueError):
        _reject(SealedReason.UNDECRYPTABLE, "this reader's wrapped key does not open with this reader key")


def _check_entries(seed: bytes, readers: Mapping[bytes, Mapping[str, bytes]]) -> None:
    for public, entry in readers.items():
        try:
            rebuilt = _entry(seed, public, entry["nonce"])
        except ValueError:
            rebuilt = {}
        if rebuilt != entry:
            _reject(SealedReason.UNDECRYPTABLE, f"reader {_hex(public)}'s entry does not wrap the same key")


def open_sealed(
    data: bytes,
    key: X25519PrivateKey,
    expected: Mapping[str, str],
    max_bytes: int,
    *,
    readers: Collection[bytes] | None = None,
) -> bytes:
    """Check a sealed file completely and return its plaintext.

    The checks run in this order; the first failure raises :class:`SealedRejected` with its reason:
    ``not_sealed`` (more than ``max_bytes``; no magic; header length out of range; header not canonical JSON
    of exactly the known fields); ``not_a_reader`` (the file's readers differ from ``readers``, when given;
    no entry for ``key``); ``undecryptable`` (this reader's wrapped key does not open; any reader's entry does
    not wrap the same seed; the ciphertext or anything before it fails authentication); ``digest_mismatch``
    (sha256 of the plaintext differs from the header's ``plaintext_digest``, or that from
    ``expected["plaintext_digest"]``); ``wrong_binding`` (any other binding value differs from ``expected``).

    Parameters
    ----------
    data : bytes
        The whole sealed file.
    key : X25519PrivateKey
        This reader's key.
    expected : Mapping[str, str]
        Exactly the binding keys (``BINDING_KEYS``) with the values the file must hold.
    max_bytes : int
        The largest file accepted.
    readers : Collection[bytes], optional
        The task's reader public keys; when given, the file must list exactly these. Validators pass it, so
        an omitted reader is the same verdict for every one of them.

    Raises
    ------
    SealedRejected
        As above.
    ConfigError
        If ``max_bytes`` is not a positive integer or ``expected`` does not map exactly the binding keys.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if set(expected) != set(BINDING_KEYS):
        raise ConfigError(f"expected must map exactly {', '.join(BINDING_KEYS)}")
    if len(data) > max_bytes:
        _reject(SealedReason.NOT_SEALED, f"{len(data)} bytes exceeds the limit of {max_bytes}")
    data = bytes(data)
    parsed = _parse(data)
    if readers is not None:
        wanted, listed = {bytes(r) for r in readers}, set(parsed.readers)
        if wanted != listed:
            _reject(
                SealedReason.NOT_A_READER,
                f"the file lists {len(listed - wanted)} unexpected readers and misses {len(wanted - listed)}",
            )
    own = reader_public(key)
    if own not in parsed.readers:
        _reject(SealedReason.NOT_A_READER, f"the file has no entry for reader {_hex(own)}")
    seed = _unwrap(key, parsed.readers[own])
    _check_entries(seed, parsed.readers)
    try:
        plaintext = AESGCM(_hkdf(seed, _CONTENT_INFO)).decrypt(
            parsed.nonce, data[parsed.prefix_length :], data[: parsed.prefix_length]
        )
    except InvalidTag:
        _reject(SealedReason.UNDECRYPTABLE, "the ciphertext or header fails authentication")
    actual = _hex(hashlib.sha256(plaintext).digest())
    if actual != parsed.binding["plaintext_digest"]:
        _reject(
            SealedReason.DIGEST_MISMATCH,
            f"the plaintext hashes to {actual}, the header says {parsed.binding['plaintext_digest']}",
        )
    if actual != expected["plaintext_digest"]:
        _reject(
            SealedReason.DIGEST_MISMATCH,
            f"the plaintext hashes to {actual}, expected {expected['plaintext_digest']}",
        )
    for name in UPDATE_BINDING:
        if parsed.binding[name] != expected[name]:
            _reject(
                SealedReason.WRONG_BINDING,
                f"{name} is {parsed.binding[name]!r}, expected {expected[name]!r}",
            )
    return plaintext
