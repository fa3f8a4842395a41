"""Sending a node's transactions where losing a race is normal."""

from __future__ import annotations

import logging
from collections.abc import Callable

from cotrain.chain.client import ContractRevert
from cotrain.roles.timings import Timings

log = logging.getLogger(__name__)


def send_tolerantly(transaction: Callable[[], object], timings: Timings, round_: int) -> bool:
    """Send, timed as ``round_``'s chain work; return whether the market accepted it.

    A refusal (another node finalized first, the phase moved on) is logged, not raised: nodes re-read the
    chain at their next step and act on what they find.
    """
    try:
        with timings.measure(round_, "chain"):
            transaction()
    except ContractRevert as revert:
        log.warning("the market refused: %s", revert)
        return False
    return True
