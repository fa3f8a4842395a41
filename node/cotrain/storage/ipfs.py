"""A content store backed by an IPFS daemon (Kubo, or js-ipfs in the tests) over its HTTP RPC API.

Files are added as CIDv1 with raw leaves and 256 KiB chunks, and the daemon's CID must equal the one
computed locally (:func:`cotrain.storage.unixfs.compute_cid`), so the embedded store and IPFS name every
file alike. What comes back from the daemon is checked against its CID before it is returned.
"""

from __future__ import annotations

import ipaddress
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import ipfshttpclient
from ipfshttpclient import exceptions as ipfs_errors

from cotrain.errors import ConfigError, IntegrityError, StorageError
from cotrain.storage.base import ContentNotFoundError, ContentTooLargeError, StoreUnreachableError
from cotrain.storage.unixfs import CHUNK_SIZE, canonical_cid, compute_cid, same_cid

T = TypeVar("T")

# ipfshttpclient 0.7.0 passes urllib3 2 an argument it deprecated, and urllib3 warns on every request.
warnings.filterwarnings("ignore", message="The 'strict' parameter is no longer", category=FutureWarning)

# Words in the daemons' error messages for content they do not have: js-ipfs times out (even offline),
# Kubo says "not found" offline and "context deadline exceeded" when its timeout runs out.
_NOT_AVAILABLE = ("timed out", "deadline exceeded", "not found")
# The HTTP timeout outlasts the daemon's own lookup timeout, so that content the daemon cannot find is
# reported by the daemon as missing, not by the client as a connection that went quiet.
_HTTP_GRACE = 5.0


class IpfsStore:
    """Content store on an IPFS daemon, reached over its HTTP RPC API.

    Parameters
    ----------
    api : str
        The daemon's API address: a URL (``http://127.0.0.1:5001``) or a multiaddr
        (``/ip4/127.0.0.1/tcp/5001/http``).
    timeout : float
        Seconds to wait for the daemon to answer, and for it to find content before :meth:`get` gives up.
    retries : int
        How often to retry a request whose connection failed.
    backoff : float
        Seconds before the first retry; each further retry waits twice as long.
    pin : bool
        Pin what :meth:`add` stores and what :meth:`get` fetched, so the daemon's garbage collection keeps
        it and the daemon goes on serving it to its peers when the author's node is gone.
    has_timeout : float
        Seconds :meth:`has` waits for a block; js-ipfs never answers "not here", it times out.
    """

    kind: str = "ipfs"

    def __init__(
        self,
        api: str,
        *,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 0.5,
        pin: bool = True,
        has_timeout: float = 1.0,
    ) -> None:
        if timeout <= 0 or retries < 0 or backoff < 0 or has_timeout <= 0:
            raise ValueError("timeout and has_timeout must be positive, retries and backoff not negative")
        self.api = api
        self.multiaddr = api_multiaddr(api)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.pin = pin
        self.has_timeout = has_timeout
        try:
            # Client(), not connect(): connect() rejects every daemon newer than ipfshttpclient 0.7.0.
            self._client = ipfshttpclient.Client(self.multiaddr, timeout=timeout + _HTTP_GRACE)
        except ipfs_errors.AddressError as exc:
            raise ConfigError(f"{api!r} is not a usable IPFS API address: {exc}") from exc

    def __repr__(self) -> str:
        return f"IpfsStore({self.api!r})"

    def within(self, seconds: float) -> IpfsStore:
        """This store with its timeout cut to ``seconds`` (if that is shorter): a :meth:`get` that must
        finish before a deadline, or report the content missing."""
        return IpfsStore(
            self.api,
            timeout=min(self.timeout, seconds),
            retries=self.retries,
            backoff=self.backoff,
            pin=self.pin,
            has_timeout=self.has_timeout,
        )

    def add(self, data: bytes) -> str:
        """Add ``data`` to the daemon (pinned unless ``pin=False``) and return its CID.

        Raises
        ------
        IntegrityError
            The daemon named the data differently from :func:`compute_cid` (its import settings differ).
        StoreUnreachableError, StorageError
            The daemon could not be reached or refused the data.
        """
        expected = compute_cid(data)

        def add() -> Any:
            # A fresh opts dict each try: the client mutates the one it is given.
            opts = {
                "cid-version": "1",
                "raw-leaves": "true",
                "chunker": f"size-{CHUNK_SIZE}",
                "cid-base": "base32",
                "pin": "true" if self.pin else "false",
            }
            return self._client.add_bytes(data, opts=opts)

        added = str(self._call("adding a file", add))
        if not same_cid(added, expected):
            raise IntegrityError(
                f"the IPFS daemon at {self.api} stored {len(data)} bytes as {added}, but cotrain computes "
                f"{expected} (CIDv1, raw leaves, 256 KiB chunks, balanced DAG of 174 links); "
                "check the daemon's Import settings"
            )
        return expected

    def get(self, cid: str, *, max_size: int) -> bytes:
        """Return the content named ``cid`` from the daemon (which fetches it from its peers), checked
        against the CID, and pinned there unless ``pin=False``.

        The file's size is asked first, so a file over ``max_size`` is refused without being downloaded,
        and the download itself stops after ``max_size`` bytes whatever the daemon claimed.

        Raises
        ------
        ContentNotFoundError
            The daemon could not find ``cid`` within ``timeout`` seconds.
        ContentTooLargeError
            The file is larger than ``max_size``.
        IntegrityError
            The daemon returned bytes that are not the content of ``cid``, or ``cid`` is not a file.
        StoreUnreachableError, StorageError
            The daemon could not be reached or failed.
        """
        canonical = canonical_cid(cid)
        stat = self._call(
            f"looking up {cid}",
            lambda: self._client.files.stat(f"/ipfs/{canonical}", opts={"timeout": _duration(self.timeout)}),
            missing=cid,
        )
        if stat.get("Type") != "file":
            raise IntegrityError(f"{cid} is a UnixFS {stat.get('Type')}, not a file")
        size = int(stat["Size"])
        if size > max_size:
            raise ContentTooLargeError(f"{cid} is {size} bytes, more than the {max_size} allowed")

        def cat() -> bytes:
            chunks: list[bytes] = []
            received = 0
            # length=max_size+1 bounds the download even if the size above was a lie.
            with self._client.cat(canonical, length=max_size + 1, stream=True) as stream:
                for chunk in stream:
                    received += len(chunk)
                    if received > max_size:
                        raise ContentTooLargeError(f"{cid} is larger than the {max_size} bytes allowed")
                    chunks.append(chunk)
            return b"".join(chunks)

        data = self._call(f"downloading {cid}", cat, missing=cid)
        actual = compute_cid(data)
        if not same_cid(actual, canonical):
            raise IntegrityError(
                f"the IPFS daemon at {self.api} returned content with CID {actual} for {cid}"
            )
        if self.pin:  # every block is local now: pinning fetches nothing
            self._call(f"pinning {cid}", lambda: self._client.pin.add(canonical), missing=cid)
        return data

    def has(self, cid: str) -> bool:
        """Return whether the daemon holds the root block of ``cid`` locally (it fetches nothing).

        Raises
        ------
        StoreUnreachableError, StorageError
            The daemon could not be reached or failed.
        """
        canonical = canonical_cid(cid)
        try:
            self._call(
                f"checking for {cid}",
                lambda: self._client.block.stat(
                    canonical, offline=True, opts={"timeout": _duration(self.has_timeout)}
                ),
                missing=cid,
            )
        except ContentNotFoundError:
            return False
        return True

    def _call(self, what: str, request: Callable[[], T], *, missing: str | None = None) -> T:
        """Run one API request, retrying failed connections with exponential backoff."""
        for attempt in range(self.retries + 1):
            try:
                return request()
            except ipfs_errors.ConnectionError as exc:
                if attempt == self.retries:
                    raise StoreUnreachableError(
                        f"cannot reach the IPFS API at {self.api} while {what} "
                        f"({self.retries + 1} attempts): {_reason(exc)}. "
                        f"Is the IPFS daemon running at {self.api}? Start it "
                        "(`ipfs daemon`, or `jsipfs daemon`) or point cotrain at the right address."
                    ) from exc
                time.sleep(self.backoff * 2**attempt)
            except ipfs_errors.TimeoutError as exc:
                raise StorageError(
                    f"the IPFS daemon at {self.api} did not answer within {self.timeout} s while {what}"
                ) from exc
            except ipfs_errors.ErrorResponse as exc:
                message = str(exc)
                if missing is not None and any(word in message.lower() for word in _NOT_AVAILABLE):
                    raise ContentNotFoundError(
                        f"the IPFS daemon at {self.api} has not got {missing} and cannot find it: {message}"
                    ) from exc
                raise StorageError(f"the IPFS daemon at {self.api} failed while {what}: {message}") from exc
            except ipfs_errors.Error as exc:
                raise StorageError(f"the IPFS API at {self.api} failed while {what}: {exc}") from exc
        raise AssertionError("unreachable")


def api_multiaddr(api: str) -> str:
    """Return the multiaddr for an IPFS API address given as a URL or already as a multiaddr.

    >>> api_multiaddr("http://127.0.0.1:5001")
    '/ip4/127.0.0.1/tcp/5001/http'

    Raises
    ------
    ConfigError
        ``api`` is neither an ``http(s)://host:port`` URL nor a multiaddr.
    """
    api = api.strip()
    if api.startswith("/"):
        return api
    parts = urlsplit(api)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"{api!r} is not an IPFS API address such as http://127.0.0.1:5001")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ConfigError(f"{api!r} has an invalid port") from exc
    try:
        protocol = f"ip{ipaddress.ip_address(parts.hostname).version}"
    except ValueError:
        protocol = "dns"
    return f"/{protocol}/{parts.hostname}/tcp/{port}/{parts.scheme}"


def _duration(seconds: float) -> str:
    # Both Kubo (Go durations) and js-ipfs (parse-duration) read "1500ms".
    return f"{max(1, round(seconds * 1000))}ms"


def _reason(exc: Exception) -> str:
    # requests' connection errors repeat the URL and pool internals; the last clause says what happened.
    text = str(exc)
    return text.rsplit(": ", 1)[-1].rstrip("')\"") if "Errno" in text else text
