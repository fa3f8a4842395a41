"""Which node answers are retried, and the backoff's bounds (cotrain.chain.retry)."""

from __future__ import annotations

import itertools
import time

import pytest
from cotrain.chain.retry import Transient, log_limit, rate_limited, retry, transient_status
from cotrain.chain.settings import ChainSettings
from cotrain.errors import ChainError


@pytest.mark.parametrize(
    "message",
    [
        "query returned more than 10000 results",
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
        "block range too large",
        "exceed maximum block range: 5000",
        "query exceeds max block range 1000",
    ],
)
def test_providers_log_caps_are_log_limits_not_rate_limits(message: str) -> None:
    assert log_limit(message)
    assert not rate_limited(-32005, message)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (-32005, "daily request count exceeded, request rate limited", True),
        (429, "Your app has exceeded its compute units per second capacity", True),
        (-32000, "Too Many Requests", True),
        (-32000, "nonce too low", False),
        (3, "execution reverted", False),
        (3, "execution reverted: pool over capacity", False),
        (-32000, "execution reverted: rate limit of the vault", False),
    ],
)
def test_rate_limits_are_told_apart_from_refusals(code: int, message: str, expected: bool) -> None:
    assert rate_limited(code, message) is expected


def test_http_statuses_worth_retrying() -> None:
    assert [transient_status(s) for s in (200, 400, 404, 429, 500, 503)] == [
        False,
        False,
        False,
        True,
        True,
        True,
    ]


def test_retry_returns_the_first_success_after_transient_failures() -> None:
    answers = iter([Transient(ChainError("busy")), Transient(ChainError("busy")), 7])

    def attempt() -> int:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry(attempt, ChainSettings(retry_backoff=0.001)) == 7


def test_retry_gives_up_within_its_budget_with_the_last_error_and_the_count() -> None:
    calls = []

    def attempt() -> None:
        calls.append(time.monotonic())
        raise Transient(ChainError(f"busy {len(calls)}"))

    started = time.monotonic()
    with pytest.raises(ChainError, match=r"^busy (\d+) \(\1 attempts over 0\.\d s\)$"):
        retry(attempt, ChainSettings(retry_budget=0.2, retry_backoff=0.01, retry_backoff_cap=0.04))

    assert time.monotonic() - started <= 0.25
    pauses = [b - a for a, b in itertools.pairwise(calls)]
    assert len(calls) >= 4 and max(pauses) < 0.06, "doubling pauses stop at the cap"


def test_other_errors_are_not_retried() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise ChainError("the node refused: nonce too low")

    with pytest.raises(ChainError, match="nonce too low"):
        retry(attempt, ChainSettings())
    assert calls == [1]


def test_settings_refuse_a_fee_bump_nodes_would_refuse() -> None:
    with pytest.raises(ValueError, match=r"fee_bump must be at least 0\.125"):
        ChainSettings(fee_bump=0.1)
