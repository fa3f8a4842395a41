"""Content-addressed storage for task specs, models and updates: an embedded on-disk store or an IPFS
daemon, both naming every file by the CIDv1 IPFS gives it. Read what peers announced with
:func:`fetch_verified`, never with a bare ``get``."""

from cotrain.storage.base import (
    ContentNotFoundError,
    ContentStore,
    ContentTooLargeError,
    StoreUnreachableError,
    fetch_verified,
    open_store,
)
from cotrain.storage.embedded import EmbeddedStore
from cotrain.storage.ipfs import IpfsStore
from cotrain.storage.unixfs import compute_cid

__all__ = [
    "ContentNotFoundError",
    "ContentStore",
    "ContentTooLargeError",
    "EmbeddedStore",
    "IpfsStore",
    "StoreUnreachableError",
    "compute_cid",
    "fetch_verified",
    "open_store",
]
