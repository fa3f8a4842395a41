"""Wake a node when its task's events are mined, instead of polling the chain on a timer.

A node's step re-reads the task (events, views, records): doing it every fraction of a second costs CPU in
every participant, doing it rarely costs latency on every stage of a round. :class:`TaskEvents` subscribes
to the market's logs of one task over the RPC endpoint's WebSocket (``eth_subscribe``, which anvil, geth,
reth and most providers serve), so a follow loop waits without asking anything and steps once per block
that carries the task's events. Steps still run at least every ``timeout`` seconds for what no event
announces (a phase deadline passing). Where no WebSocket answers, :meth:`TaskEvents.wait` is a plain sleep.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

_log = logging.getLogger("cotrain")

#: Seconds to wait for the endpoint to accept a subscription before falling back to sleeping.
CONNECT_TIMEOUT = 5.0
#: Seconds between attempts to subscribe again after the endpoint refused or dropped a subscription.
RETRY_AFTER = 30.0


def websocket_url(rpc_url: str) -> str:
    """The WebSocket URL of an HTTP(S) JSON-RPC endpoint on the same host, port and path."""
    parts = urlsplit(rpc_url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path, parts.query, parts.fragment))


class TaskEvents:
    """A subscription to the market logs of one task: :meth:`wait` returns when one arrives.

    Parameters
    ----------
    rpc_url : str
        The node's JSON-RPC URL (``http://`` is turned into ``ws://`` on the same port).
    market : str
        The market's address.
    task_id : int
        Only logs whose first indexed topic is this task id wake the waiter.
    topics : Sequence[str], optional
        Only these events (their ``0x`` topic hashes) wake it; all of the task's when None. Each event wakes
        every process that subscribed to it, so a role leaves out those it never acts on (another
        contributor's commit).
    """

    def __init__(self, rpc_url: str, market: str, task_id: int, topics: Sequence[str] | None = None) -> None:
        self.url = websocket_url(rpc_url)
        events = None if topics is None else list(topics)
        self._filter = {"address": market, "topics": [events, "0x" + task_id.to_bytes(32, "big").hex()]}
        self._socket: ClientConnection | None = None
        self._retry_at = 0.0
        self._warned = False

    def wait(self, timeout: float) -> bool:
        """Block until the task's next event is mined (True) or ``timeout`` seconds pass (False).

        Events mined while the caller was busy count: they were queued on the socket and return at once.
        """
        deadline = time.monotonic() + timeout
        socket = self._subscribed()
        if socket is None:
            time.sleep(timeout)
            return False
        try:
            socket.recv(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return False
        except (OSError, WebSocketException) as error:
            self._drop(f"event subscription at {self.url} lost ({error}); polling until it is back")
            time.sleep(max(0.0, deadline - time.monotonic()))
            return False
        self._drain()
        return True

    def close(self) -> None:
        """Close the subscription (a later :meth:`wait` opens a new one)."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> TaskEvents:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _subscribed(self) -> ClientConnection | None:
        if self._socket is not None or time.monotonic() < self._retry_at:
            return self._socket
        request = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": ["logs", self._filter]}
        try:
            socket = connect(self.url, open_timeout=CONNECT_TIMEOUT, max_size=None)
            socket.send(json.dumps(request))
            answer = json.loads(socket.recv(timeout=CONNECT_TIMEOUT))
        except (OSError, TimeoutError, WebSocketException, ValueError) as error:
            self._drop(f"no event subscription at {self.url} ({error}); polling instead")
            return None
        if "result" not in answer:
            socket.close()
            self._drop(f"{self.url} refused the event subscription ({answer.get('error')}); polling instead")
            return None
        self._socket = socket
        self._warned = False
        return socket

    def _drain(self) -> None:
        """Swallow the other notifications already queued: one step reads them all from the chain."""
        assert self._socket is not None
        try:
            while True:
                self._socket.recv(timeout=0)
        except TimeoutError:
            return
        except (OSError, WebSocketException):
            self.close()

    def _drop(self, message: str) -> None:
        self.close()
        self._retry_at = time.monotonic() + RETRY_AFTER
        if not self._warned:
            _log.warning(message)
            self._warned = True
