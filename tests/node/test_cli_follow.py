"""Tests for the command line's follow loop: transient failures are retried with backoff, a refusal by the
market is not (asking again gets the same answer), and no other error is swallowed."""

from __future__ import annotations

import pytest
from cotrain.chain.client import ContractRevert
from cotrain.cli import _follow
from cotrain.errors import ChainError, NodeStateError


def failing(error: Exception, calls: list[int], succeed_after: int | None = None):
    def step() -> bool:
        calls.append(1)
        if succeed_after is not None and len(calls) > succeed_after:
            return True
        raise error

    return step


def test_an_unreachable_chain_is_retried_until_it_answers() -> None:
    calls: list[int] = []

    _follow(failing(ChainError("cannot reach RPC"), calls, succeed_after=3), True, 0.001)

    assert len(calls) == 4


def test_an_unreachable_chain_gives_up_after_max_failures() -> None:
    calls: list[int] = []

    with pytest.raises(ChainError):
        _follow(failing(ChainError("cannot reach RPC"), calls), True, 0.001, max_failures=3)

    assert len(calls) == 4


@pytest.mark.parametrize(
    "error",
    [
        ContractRevert("NotValidator", {}, data=b"", stage="estimate", function="bondValidator"),
        NodeStateError("round 0: the journal does not match the commitment"),
    ],
    ids=["revert", "node-state"],
)
def test_a_refusal_or_a_contradiction_stops_at_once(error: Exception) -> None:
    calls: list[int] = []

    with pytest.raises(type(error)):
        _follow(failing(error, calls), True, 0.001)

    assert len(calls) == 1
