"""Anvil's clock moved forward for in-process end-to-end tests: when every participant has sat idle, the chain
jumps to the task's next deadline instead of the test waiting for it in real time.

Nodes read the time from the chain only (block timestamps), so a jump taken while nobody has anything to do
and no transaction waits to be mined is what waiting would have given, minus the wait.
"""

from __future__ import annotations

from collections.abc import Sequence

from cotrain.chain.anvil import Anvil
from cotrain.chain.market import Market, RoundStatus


def next_deadline(market: Market, task_id: int, now: int) -> int | None:
    """The earliest deadline of the task after ``now``: the current round's start, commit, reveal or
    validation end, or the end of the challenge window of a round still accepted; None if none is ahead."""
    task = market.get_task(task_id)
    challenge = task.params.challenge_duration
    ahead = []
    for round_ in range(min(task.current_round, task.params.num_rounds - 1) + 1):
        info = market.get_round(task_id, round_)
        if round_ == task.current_round:
            ahead += [info.starts_at, info.commit_end, info.reveal_end, info.validate_end]
        if info.status == RoundStatus.ACCEPTED:
            ahead.append(info.accepted_at + challenge)
    future = [deadline for deadline in ahead if deadline > now]
    return min(future) if future else None


class ChainClock:
    """Called after each pass of :func:`e2e_helpers.run_until`: after ``idle_passes`` passes in a row in which
    none of ``addresses`` sent a transaction and none of theirs waits in the pool, mine a block at the task's
    next deadline; ``jumps`` counts the blocks it mined so, ``skipped_s`` the chain seconds they skipped."""

    def __init__(
        self, anvil: Anvil, market: Market, task_id: int, addresses: Sequence[str], *, idle_passes: int = 3
    ) -> None:
        self.anvil = anvil
        self.market = market
        self.task_id = task_id
        self.addresses = list(addresses)
        self.idle_passes = idle_passes
        self.jumps = 0
        self.skipped_s = 0
        self._idle = 0
        self._sent: int | None = None

    def _nonces(self, block: str) -> int:
        return sum(int(self.anvil.rpc("eth_getTransactionCount", [a, block]), 16) for a in self.addresses)

    def __call__(self) -> None:
        sent = self._nonces("pending")
        idle = sent == self._sent and sent == self._nonces("latest")
        self._sent = sent
        self._idle = self._idle + 1 if idle else 0
        if self._idle < self.idle_passes:
            return
        now = self.anvil.timestamp()
        deadline = next_deadline(self.market, self.task_id, now)
        if deadline is None:
            return
        self.anvil.set_next_block_timestamp(deadline)
        self.anvil.mine()
        self.jumps += 1
        self.skipped_s += deadline - now
        self._idle = 0
