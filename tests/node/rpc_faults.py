"""A JSON-RPC proxy that misbehaves like a hosted endpoint, in front of a real node (fault injection).

:class:`FaultyRpc` listens on 127.0.0.1, forwards each POST to the upstream node and, by seeded chance or by
rule, drops the request (closes the connection unanswered), drops the answer after forwarding (the node saw
it, the client did not), answers HTTP 429 or a JSON-RPC rate-limit error instead, delays, or refuses an
``eth_getLogs`` wider than ``log_block_cap`` blocks with the message real providers send. ``counts`` says what
it did: by kind (``"drop"``), by method (``"method:eth_call"``) and both (``"drop:eth_call"``). It lives
beside tests/node/conftest.py so chain and end-to-end tests import it.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

#: What the proxy counts as faults: the drawn kinds, then the log cap.
_KINDS = ("drop", "drop_answer", "http_429", "rate_limit", "log_cap")
# The local node is reached directly: an HTTP(S)_PROXY from the environment must not see its traffic.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Faults:
    """What the proxy does to each request; fractions are probabilities per request, drawn in order.

    Attributes
    ----------
    drop : float
        Close the connection without forwarding or answering.
    drop_answer : float
        Forward, then close the connection without answering (the node acted; the client cannot know).
    http_429 : float
        Answer HTTP 429 Too Many Requests without forwarding.
    rate_limit : float
        Answer a JSON-RPC error ``-32005 "rate limit exceeded"`` (HTTP 200) without forwarding.
    delay : float
        Seconds to wait before forwarding each request.
    log_block_cap : int, optional
        Refuse an ``eth_getLogs`` spanning more blocks than this with ``log_cap_message``.
    log_cap_message : str
        The refusal's message (Infura's "query returned more than 10000 results", others' "block range
        too large").
    spare : frozenset[str]
        Methods never faulted (e.g. the test's own ``anvil_*`` controls).
    only : frozenset[str], optional
        When given, only these methods are faulted.
    """

    drop: float = 0.0
    drop_answer: float = 0.0
    http_429: float = 0.0
    rate_limit: float = 0.0
    delay: float = 0.0
    log_block_cap: int | None = None
    log_cap_message: str = "query returned more than 10000 results"
    spare: frozenset[str] = field(default_factory=frozenset)
    only: frozenset[str] | None = None


class FaultyRpc:
    """A faulty proxy for ``upstream`` (an ``http://`` JSON-RPC URL), as a context manager.

    Parameters
    ----------
    upstream : str
        The real node's URL.
    faults : Faults
        What to do to requests; may be replaced or changed while running (``proxy.faults = Faults()``).
    seed : int
        Seeds the draws, so a test's faults repeat (given the same order of requests).
    """

    def __init__(self, upstream: str, faults: Faults | None = None, *, seed: int = 0) -> None:
        self.upstream = upstream
        self.faults = faults or Faults()
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        # A short poll so that closing the proxy does not keep each test waiting half a second.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        """The proxy's URL: give this to the client under test."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultyRpc:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultyRpc:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def injected(self) -> int:
        """How many requests were faulted, all kinds together."""
        return sum(n for kind, n in self.counts.items() if kind in _KINDS)

    def _draw(self, method: str) -> str | None:
        """The fault to inject for one request of ``method``, or None; counts it."""
        faults = self.faults
        with self._lock:
            self.counts[f"method:{method}"] += 1
            if method in faults.spare or (faults.only is not None and method not in faults.only):
                return None
            for kind in _KINDS[:-1]:
                if self._random.random() < getattr(faults, kind):
                    self.counts[kind] += 1
                    self.counts[f"{kind}:{method}"] += 1
                    return kind
        return None

    def _capped(self, request: dict[str, Any]) -> bool:
        cap = self.faults.log_block_cap
        if cap is None or request.get("method") != "eth_getLogs":
            return False
        query = request["params"][0]
        span = int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1
        if span <= cap:
            return False
        with self._lock:
            self.counts["log_cap"] += 1
        return True

    def _forward(self, body: bytes) -> bytes:
        request = urllib.request.Request(
            self.upstream, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with _DIRECT.open(request, timeout=30) as answer:
            data: bytes = answer.read()
        with self._lock:
            self.counts["forwarded"] += 1
        return data


def _handler(proxy: FaultyRpc) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            request = json.loads(body)
            method = str(request.get("method", "?")) if isinstance(request, dict) else "batch"
            fault = proxy._draw(method)
            if proxy.faults.delay:
                time.sleep(proxy.faults.delay)
            if fault == "drop":
                self._hang_up()
            elif fault == "http_429":
                self._answer(
                    429, b'{"jsonrpc":"2.0","id":1,"error":{"code":429,"message":"Too Many Requests"}}'
                )
            elif fault == "rate_limit":
                self._answer(200, _error(request, -32005, "rate limit exceeded"))
            elif isinstance(request, dict) and proxy._capped(request):
                self._answer(200, _error(request, -32005, proxy.faults.log_cap_message))
            else:
                answer = proxy._forward(body)
                if fault == "drop_answer":
                    self._hang_up()
                else:
                    self._answer(200, answer)

        def _answer(self, status: int, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _hang_up(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the counts say what happened

    return Handler


def _error(request: Any, code: int, message: str) -> bytes:
    ident = request.get("id") if isinstance(request, dict) else None
    return json.dumps({"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}).encode()
