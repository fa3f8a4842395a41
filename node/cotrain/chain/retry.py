"""Which JSON-RPC failures are worth another attempt, and the capped, jittered backoff that retries them.

A hosted endpoint drops connections, answers HTTP 429 or 5xx, or a JSON-RPC rate-limit error when asked too
often; all of these pass if asked again a little later. A provider's cap on ``eth_getLogs`` is not one of
them: asking again for the same range fails again, so :func:`log_limit` tells it apart for the pager.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import TypeVar

from cotrain.chain.settings import ChainSettings
from cotrain.errors import ChainError

T = TypeVar("T")

# Infura says "query returned more than 10000 results", Alchemy "Log response size exceeded", others
# "block range too large", "exceed maximum block range: 5000", "query exceeds max block range 1000".
_LOG_LIMIT = re.compile(
    r"more than \d+ results|response size|too many (results|logs|blocks)|block range"
    r"|range (is )?too (large|wide)",
    re.IGNORECASE,
)
_RATE_LIMIT = re.compile(r"rate.?limit|too many requests|capacity|throttl|request limit", re.IGNORECASE)
# -32005 is "limit exceeded" in EIP-1474 (Infura uses it for rate limits and for its log cap alike).
_RATE_LIMIT_CODES = (-32005, 429)


class Transient(Exception):
    """A failure another attempt may not meet; ``error`` is what to raise if none succeeds."""

    def __init__(self, error: ChainError) -> None:
        self.error = error
        super().__init__(str(error))


def log_limit(message: str) -> bool:
    """Whether a node's error message refuses an ``eth_getLogs`` range as too wide or too full."""
    return _LOG_LIMIT.search(message) is not None


def rate_limited(code: object, message: str) -> bool:
    """Whether a JSON-RPC error (its ``code`` and ``message``) asks the caller to slow down.

    A revert (code 3, or "revert" in the message) never does, whatever its reason string says.
    """
    if code == 3 or "revert" in message.lower() or log_limit(message):
        return False
    return code in _RATE_LIMIT_CODES or _RATE_LIMIT.search(message) is not None


def transient_status(status: int) -> bool:
    """Whether an HTTP status says "try again later" (429 Too Many Requests, 5xx)."""
    return status == 429 or 500 <= status < 600


def retry(attempt: Callable[[], T], settings: ChainSettings) -> T:
    """Call ``attempt`` until it returns, retrying each :class:`Transient` it raises.

    Pauses double from ``settings.retry_backoff`` up to ``settings.retry_backoff_cap``, each drawn between
    half and all of that (so many clients do not retry in step), while the total stays within
    ``settings.retry_budget``.

    Raises
    ------
    ChainError
        The last failure, with the attempts and time spent, once the budget is used up.
    """
    started = time.monotonic()
    delay = settings.retry_backoff
    attempts = 0
    while True:
        attempts += 1
        try:
            return attempt()
        except Transient as failure:
            pause = random.uniform(delay / 2, delay)
            elapsed = time.monotonic() - started
            if elapsed + pause > settings.retry_budget:
                message = f"{failure.error} ({attempts} attempts over {elapsed:.1f} s)"
                raise ChainError(message) from failure.error.__cause__
        time.sleep(pause)
        delay = min(2 * delay, settings.retry_backoff_cap)
