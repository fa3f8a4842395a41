"""Tests for cotrain.roles.validator.verified_fetch: storage failures become reject reasons."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cotrain.errors import IntegrityError, StorageError
from cotrain.learning.tensor_files import RejectReason, UpdateRejected
from cotrain.protocol.round_outcome import RevealedUpdate
from cotrain.roles.validator import verified_fetch
from cotrain.storage.base import ContentNotFoundError, ContentTooLargeError, StoreUnreachableError
from cotrain.storage.embedded import EmbeddedStore
from cotrain.storage.unixfs import compute_cid

CONTRIBUTOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
UPDATE = b"an update file" * 10
OTHER = b"another update file" * 10
LIMIT = 1000


class FailingStore:
    """A store whose every read fails with the given error, as a dead daemon or a lying peer might."""

    kind = "failing"

    def __init__(self, error: Exception | None = None, answer: bytes = b"") -> None:
        self.error = error
        self.answer = answer

    def add(self, data: bytes) -> str:
        return compute_cid(data)

    def get(self, cid: str, *, max_size: int) -> bytes:
        if self.error is not None:
            raise self.error
        return self.answer

    def has(self, cid: str) -> bool:
        return False


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


def _revealed(data: bytes, cid: str | None = None) -> RevealedUpdate:
    return RevealedUpdate(CONTRIBUTOR, cid or compute_cid(data), hashlib.sha256(data).digest(), 10)


def _reason(fetch: Callable[[RevealedUpdate], bytes], update: RevealedUpdate) -> RejectReason:
    with pytest.raises(UpdateRejected) as caught:
        fetch(update)
    assert isinstance(caught.value, IntegrityError)
    assert caught.value.__suppress_context__, "the storage error is replaced, not chained"
    return caught.value.reason


def test_a_stored_file_matching_its_cid_and_digest_is_returned(store: EmbeddedStore) -> None:
    cid = store.add(UPDATE)

    assert verified_fetch(store, LIMIT)(_revealed(UPDATE, cid)) == UPDATE


def test_a_file_over_the_limit_is_oversize(store: EmbeddedStore) -> None:
    store.add(UPDATE)

    assert _reason(verified_fetch(store, len(UPDATE) - 1), _revealed(UPDATE)) == RejectReason.OVERSIZE
    assert verified_fetch(store, len(UPDATE))(_revealed(UPDATE)) == UPDATE


def test_a_store_that_returns_more_than_the_limit_is_oversize() -> None:
    lying = FailingStore(answer=b"x" * (LIMIT + 1))

    assert _reason(verified_fetch(lying, LIMIT), _revealed(UPDATE)) == RejectReason.OVERSIZE


def test_a_digest_of_other_content_is_a_digest_mismatch(store: EmbeddedStore) -> None:
    cid = store.add(UPDATE)
    update = RevealedUpdate(CONTRIBUTOR, cid, hashlib.sha256(OTHER).digest(), 10)

    assert _reason(verified_fetch(store, LIMIT), update) == RejectReason.DIGEST_MISMATCH


def test_a_corrupt_block_is_a_digest_mismatch(store: EmbeddedStore) -> None:
    cid = store.add(UPDATE)
    store.block_path(cid).write_bytes(OTHER)

    assert _reason(verified_fetch(store, LIMIT), _revealed(UPDATE, cid)) == RejectReason.DIGEST_MISMATCH


def test_a_store_that_answers_with_other_content_is_a_digest_mismatch() -> None:
    lying = FailingStore(answer=OTHER)

    assert _reason(verified_fetch(lying, LIMIT), _revealed(UPDATE)) == RejectReason.DIGEST_MISMATCH


def test_a_malformed_cid_is_a_digest_mismatch(store: EmbeddedStore) -> None:
    update = _revealed(UPDATE, "not-a-cid")

    assert _reason(verified_fetch(store, LIMIT), update) == RejectReason.DIGEST_MISMATCH


def test_a_file_the_store_lacks_is_missing(store: EmbeddedStore) -> None:
    assert _reason(verified_fetch(store, LIMIT), _revealed(UPDATE)) == RejectReason.MISSING


@pytest.mark.parametrize(
    "error",
    [
        ContentNotFoundError("not found in time"),
        StoreUnreachableError("daemon down"),
        StorageError("disk error"),
        ContentTooLargeError("too big"),
        IntegrityError("forged block"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_each_storage_error_maps_to_its_reason(error: Exception) -> None:
    expected = {
        ContentNotFoundError: RejectReason.MISSING,
        StoreUnreachableError: RejectReason.MISSING,
        StorageError: RejectReason.MISSING,
        ContentTooLargeError: RejectReason.OVERSIZE,
        IntegrityError: RejectReason.DIGEST_MISMATCH,
    }[type(error)]

    with pytest.raises(UpdateRejected) as caught:
        verified_fetch(FailingStore(error), LIMIT)(_revealed(UPDATE))

    assert caught.value.reason == expected
    assert caught.value.detail == str(error)


def test_other_errors_are_not_disguised_as_rejections() -> None:
    with pytest.raises(ZeroDivisionError):
        verified_fetch(FailingStore(ZeroDivisionError()), LIMIT)(_revealed(UPDATE))


class CountingStore(EmbeddedStore):
    """An embedded store that counts its reads."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads = 0

    def get(self, cid: str, *, max_size: int) -> bytes:
        self.reads += 1
        return super().get(cid, max_size=max_size)


def test_a_fetch_after_the_deadline_is_missing_without_asking_the_store(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "store")
    store.add(UPDATE)

    late = verified_fetch(store, LIMIT, deadline=time.monotonic() - 0.001)
    in_time = verified_fetch(store, LIMIT, deadline=time.monotonic() + 60)

    with pytest.raises(UpdateRejected, match="the validation deadline passed before its fetch") as caught:
        late(_revealed(UPDATE))
    assert caught.value.reason == RejectReason.MISSING
    assert store.reads == 0
    assert in_time(_revealed(UPDATE)) == UPDATE
    assert store.reads == 1
