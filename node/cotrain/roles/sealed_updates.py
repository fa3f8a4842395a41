"""Sealed update files as validators and auditors meet them: opening each with a reader's key, and what each
refusal means in the round record (docs/privacy.md)."""

from __future__ import annotations

from cotrain.errors import ConfigError
from cotrain.privacy.sealed import (
    SealedReason,
    SealedRejected,
    open_sealed,
    parse_reader_public,
    reader_public_hex,
    sealed_limit,
)
from cotrain.protocol.round_judge import FileRejected, RevealedUpdate
from cotrain.protocol.round_record import Reason
from cotrain.protocol.task_spec import FileRef, TaskSpec
from cotrain.protocol.update_binding import update_metadata
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

# What each way a sealed file fails to open means in the round record (docs/privacy.md): every one of them is
# the contributor's doing, since its committed digest pins the bytes.
SEALED_REASONS = {
    SealedReason.NOT_SEALED: Reason.MALFORMED,
    SealedReason.NOT_A_READER: Reason.UNDECRYPTABLE,
    SealedReason.UNDECRYPTABLE: Reason.UNDECRYPTABLE,
    SealedReason.DIGEST_MISMATCH: Reason.DIGEST_MISMATCH,
    SealedReason.WRONG_BINDING: Reason.WRONG_BINDING,
}


class Opener:
    """Opens a round's sealed update files with one reader's key; each refusal becomes its record reason."""

    def __init__(
        self, spec: TaskSpec, task_id: int, round_: int, base: FileRef, key: X25519PrivateKey
    ) -> None:
        if spec.privacy is None or spec.privacy.readers is None:
            raise ConfigError("this task's updates are public; there is nothing to open")
        self.spec, self.task_id, self.round, self.base, self.key = spec, task_id, round_, base, key
        self.readers = [parse_reader_public(reader.key) for reader in spec.privacy.readers]

    def __call__(self, update: RevealedUpdate, data: bytes) -> bytes:
        binding = update_metadata(
            self.task_id, self.round, update.contributor, self.base.digest, update.samples
        )
        expected = {**binding, "plaintext_digest": "0x" + update.digest.hex()}
        limit = sealed_limit(self.spec.limits.max_update_bytes)
        try:
            return open_sealed(data, self.key, expected, limit, readers=self.readers)
        except SealedRejected as rejected:
            raise FileRejected(SEALED_REASONS[rejected.reason], rejected.detail) from None


def check_reader(spec: TaskSpec, reader_key: X25519PrivateKey | None, task_id: int) -> None:
    """Refuse, with one line, a key that cannot open a sealed task's updates.

    Raises
    ------
    ConfigError
        If ``reader_key`` is None or its public key is not among the spec's readers.
    """
    if spec.privacy is None or spec.privacy.readers is None:
        return
    if reader_key is None:
        raise ConfigError(
            f"task {task_id} seals its updates to its readers: pass --reader-key with the key file whose "
            "public key the spec lists"
        )
    public = reader_public_hex(reader_key)
    if public not in {reader.key for reader in spec.privacy.readers}:
        raise ConfigError(
            f"reader key {public} is not among task {task_id}'s readers, so it cannot open its updates; "
            "pass the key file whose public key the spec lists"
        )
