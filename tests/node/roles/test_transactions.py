"""Tests for cotrain.roles.transactions: a lost race is tolerated, every other refusal stops the node."""

from __future__ import annotations

import pytest
from cotrain.chain.client import ContractRevert
from cotrain.roles.timings import Timings
from cotrain.roles.transactions import RACES, send_tolerantly


def refusal(name: str | None) -> ContractRevert:
    return ContractRevert(name, {}, data=b"", stage="estimate", function="propose")


def refuse(name: str | None):
    def transaction() -> None:
        raise refusal(name)

    return transaction


@pytest.mark.parametrize("name", sorted(RACES))
def test_a_lost_race_is_logged_and_gives_false(name: str) -> None:
    timings = Timings()

    assert send_tolerantly(refuse(name), timings, 3) is False
    assert [(e["round"], e["kind"]) for e in timings.entries] == [(3, "chain")]


@pytest.mark.parametrize("name", ["NotValidator", "CommitmentMismatch", "InvalidProof", "WrongAmount", None])
def test_any_other_refusal_is_raised(name: str | None) -> None:
    with pytest.raises(ContractRevert) as raised:
        send_tolerantly(refuse(name), Timings(), 0)

    assert raised.value.name == name


def test_an_accepted_transaction_gives_true() -> None:
    sent = []

    assert send_tolerantly(lambda: sent.append(1), Timings(), 0) is True
    assert sent == [1]


def test_races_are_errors_the_market_has() -> None:
    from cotrain.chain.market_errors import REVERT_WORDS

    assert REVERT_WORDS.keys() >= RACES
