"""What every content store offers, the errors it raises, and the one safe way to read from it.

Content is named by its CID (:func:`cotrain.storage.unixfs.compute_cid`), so any store, embedded or IPFS,
gives a file the same name. Nothing fetched is trusted: :func:`fetch_verified` recomputes the CID and the
sha256 the chain recorded before it hands bytes to a parser.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol, runtime_checkable

from cotrain.errors import ConfigError, IntegrityError, StorageError
from cotrain.storage.unixfs import compute_cid, same_cid


class ContentNotFoundError(StorageError, FileNotFoundError):
    """The store does not hold the content (or could not find it in time)."""


class ContentTooLargeError(StorageError):
    """The content is larger than the caller allowed; it was not downloaded whole."""


class StoreUnreachableError(StorageError, ConnectionError):
    """The store's daemon did not answer, even after retrying."""


@runtime_checkable
class ContentStore(Protocol):
    """A content-addressed file store.

    Attributes
    ----------
    kind : str
        ``"embedded"`` or ``"ipfs"``.
    """

    kind: str

    def add(self, data: bytes) -> str:
        """Store ``data`` and return its CID (base32 CIDv1, as :func:`compute_cid` gives)."""
        ...

    def get(self, cid: str, *, max_size: int) -> bytes:
        """Return the content named ``cid``, refusing more than ``max_size`` bytes.

        Raises
        ------
        ContentNotFoundError
            The store does not hold ``cid``.
        ContentTooLargeError
            The content is larger than ``max_size``.
        StoreUnreachableError
            The store could not be reached.
        IntegrityError
            What the store returned is not the content of ``cid``.
        """
        ...

    def has(self, cid: str) -> bool:
        """Return whether the store holds ``cid`` locally, without fetching it from elsewhere."""
        ...


def fetch_verified(store: ContentStore, cid: str, sha256_digest: bytes | None, *, max_size: int) -> bytes:
    """Fetch ``cid`` and return it only if its CID and, when given, its sha256 match.

    Use this for every file a peer named (updates, models, task specs): the bytes are checked before
    anyone parses them. ``sha256_digest`` is None only for a sealed update, whose recorded digest is that
    of the plaintext inside (checked when it is opened); the CID still pins its bytes.

    Parameters
    ----------
    store : ContentStore
        Where to fetch from. It is not trusted.
    cid : str
        The CID the file was announced under.
    sha256_digest : bytes or None
        The 32-byte sha256 recorded for the file (on chain, typically).
    max_size : int
        Refuse files larger than this many bytes.

    Returns
    -------
    bytes
        The verified file.

    Raises
    ------
    IntegrityError
        The content's CID, recomputed here, or its sha256 does not match.
    StorageError
        The store could not deliver it (see :meth:`ContentStore.get`).
    """
    if sha256_digest is not None and len(sha256_digest) != 32:
        raise ValueError(f"sha256_digest must be 32 bytes, got {len(sha256_digest)}")
    data = store.get(cid, max_size=max_size)
    if len(data) > max_size:
        raise ContentTooLargeError(
            f"{cid}: store returned {len(data)} bytes, more than the {max_size} allowed"
        )
    actual_cid = compute_cid(data)
    if not same_cid(actual_cid, cid):
        raise IntegrityError(
            f"content fetched for {cid} from the {store.kind} store has CID {actual_cid}; refusing it"
        )
    if sha256_digest is None:
        return data
    actual_digest = hashlib.sha256(data).digest()
    if actual_digest != sha256_digest:
        raise IntegrityError(
            f"{cid} has sha256 {actual_digest.hex()}, but {sha256_digest.hex()} was recorded for it; "
            "the CID and the digest name different files"
        )
    return data


def within(store: ContentStore, seconds: float) -> ContentStore:
    """Return ``store`` with its reads bounded by ``seconds``, for a fetch that must end by a deadline.

    A store that waits on nothing (the embedded one) has no timeout and is returned as it is; a store with
    one (IPFS, which waits for peers) offers ``within(seconds)``.
    """
    bounded = getattr(store, "within", None)
    return store if bounded is None else bounded(seconds)


def open_store(url: str, *, timeout: float = 60.0, retries: int = 3) -> ContentStore:
    """Open the content store a URL names.

    Parameters
    ----------
    url : str
        ``embedded:/path/to/dir`` for a store on local disk, or ``ipfs:`` followed by the daemon's
        API address as a URL (``ipfs:http://127.0.0.1:5001``) or a multiaddr
        (``ipfs:/ip4/127.0.0.1/tcp/5001/http``).
    timeout, retries : float, int
        For IPFS: seconds to wait for an answer, and retries of a failed connection.

    Raises
    ------
    ConfigError
        The URL names no store this package knows.
    """
    # Imported here: both modules import this one for the errors above.
    from cotrain.storage.embedded import EmbeddedStore
    from cotrain.storage.ipfs import IpfsStore

    scheme, _, location = url.partition(":")
    if scheme == "embedded" and location:
        return EmbeddedStore(Path(location).expanduser())
    if scheme == "ipfs" and location:
        return IpfsStore(location, timeout=timeout, retries=retries)
    raise ConfigError(
        f"unknown content store {url!r}: use embedded:/path/to/dir or ipfs:http://127.0.0.1:5001 "
        "(or ipfs:/ip4/127.0.0.1/tcp/5001/http)"
    )
