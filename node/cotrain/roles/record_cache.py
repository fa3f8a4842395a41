"""Round records by their sha256: each fetched, checked against its digest, parsed (and its reward trees
built) once per node, however often its steps read it.

A record is cached only after :func:`fetch_verified` matched it against the digest it was asked for and
:func:`parse_record` accepted it, and only under that digest, so a cached record is exactly the bytes that
digest names: another record (another round's, a competing proposal's) has another digest and is read anew,
and a file that fails its checks is never cached.
"""

from __future__ import annotations

from cotrain.protocol.round_record import RoundRecord, parse_record
from cotrain.protocol.task_spec import FileRef
from cotrain.storage.base import ContentStore, fetch_verified

#: Upper bound for spec and round-record files (they are small JSON).
MAX_RECORD_BYTES = 16 * 1024 * 1024


class RecordCache:
    """Verified, parsed round records of one store, keyed by their sha256 digest."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self._records: dict[bytes, RoundRecord] = {}

    def load(self, ref: FileRef) -> RoundRecord:
        """The record in the file ``ref``, fetched and verified against ``ref.digest`` the first time.

        Raises
        ------
        IntegrityError
            If the file does not match its CID or digest, or is not a canonical round record.
        StorageError
            If the store cannot deliver it.
        """
        record = self._records.get(ref.digest)
        if record is None:
            data = fetch_verified(self.store, ref.cid, ref.digest, max_size=MAX_RECORD_BYTES)
            record = parse_record(data)
            self._records[ref.digest] = record
        return record

    def __len__(self) -> int:
        return len(self._records)
