"""Sending a node's transactions where losing a race is normal, and nothing else is."""

from __future__ import annotations

import logging
from collections.abc import Callable

from cotrain.chain.client import ContractRevert
from cotrain.roles.timings import Timings

log = logging.getLogger(__name__)

#: Refusals an honest node meets when another node or the clock got there first: the phase moved on, a round
#: filled or settled, another validator finalized or slashed or forfeited an unrevealed commitment, a claim or
#: bond already went through. The node re-reads the chain at its next step and acts on what it finds. Every
#: other refusal means the node cannot succeed by trying again (it is not a validator, its commitment does not
#: match, ...), so it stops.
RACES = frozenset(
    {
        "AlreadyBonded",
        "AlreadyClaimed",
        "AlreadyCommitted",
        "AlreadyJoined",
        "AlreadyProposed",
        "AlreadyRevealed",
        "ChallengePending",
        "ChallengeWindowOpen",
        "NothingToForfeit",
        "PreviousRoundPending",
        "RoundFull",
        "RoundNotExpired",
        "SlashWindowClosed",
        "TaskNotActive",
        "TooFewReveals",
        "WrongPhase",
        "WrongRound",
        "WrongRoundStatus",
    }
)


def send_tolerantly(transaction: Callable[[], object], timings: Timings, round_: int) -> bool:
    """Send, timed as ``round_``'s chain work; return whether the market accepted it.

    A refusal in :data:`RACES` is logged and gives False; any other refusal is raised.
    """
    try:
        with timings.measure(round_, "chain"):
            transaction()
    except ContractRevert as revert:
        if revert.name not in RACES:
            raise
        log.warning("the market refused: %s", revert)
        return False
    return True
