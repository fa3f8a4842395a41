"""Challenges after the fact: what became of each challenge of a task (from its events and the round's
``outcome``), filing one, the arbiter's ruling, and taking a returned bond back.

Any number of accounts may challenge an accepted round within its challenge window, one challenge each. The
arbiter upholds one of them (its challenger is credited its bond plus half the proposers' slashed bonds, the
task halts, and the other challengers take their bonds back), or rejects them all once the window closed (the
bonds burn); an arbiter that says nothing until the arbitration window ends has them dismissed (every bond
comes back). A halt voids later accepted rounds, whose challengers take their bonds back too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from cotrain.chain.market import ZERO_ADDRESS, ChallengeOutcome, RoundStatus
from cotrain.errors import ConfigError
from cotrain.roles.task_view import TaskView
from eth_utils import is_hex_address, to_checksum_address

#: What a challenge's outcome is called, from its challenger's side.
OPEN = "open"
UPHELD = "upheld"
UPHELD_FOR_ANOTHER = "upheld for another challenger"
REJECTED = "rejected"
DISMISSED = "dismissed"
VOIDED = "voided"
#: Outcomes whose bond the challenger takes back with ``withdrawChallengeBond``.
RETURNED_OUTCOMES = frozenset({UPHELD_FOR_ANOTHER, DISMISSED, VOIDED})


@dataclass(frozen=True)
class Challenge:
    """One account's challenge of one round, and what became of it.

    Attributes
    ----------
    round : int
        The challenged round.
    challenger : str
        Who filed it (checksummed).
    evidence_cid : str
        Where its evidence is stored.
    outcome : str
        ``open`` (awaiting the arbiter), ``upheld`` (this challenge won), ``upheld for another challenger``,
        ``rejected``, ``dismissed`` (the arbiter let its window pass) or ``voided`` (a halt voided the round).
    payout_wei : int
        What an upheld challenge credited its challenger (its bond plus its share of the slashed bonds), in
        the task's currency (wei, or a token's smallest unit: see :mod:`cotrain.roles.currency`).
    bond_wei : int
        The bond it locked, in the task's currency.
    returned : bool
        Whether the bond was withdrawn (``ChallengeBondReturned``).
    """

    round: int
    challenger: str
    evidence_cid: str
    outcome: str
    payout_wei: int
    bond_wei: int
    returned: bool

    @property
    def withdrawable(self) -> bool:
        """Whether its challenger can take the bond back now."""
        return self.outcome in RETURNED_OUTCOMES and not self.returned


def challenges_of(view: TaskView, account: str | None = None) -> list[Challenge]:
    """The viewed task's challenges (``account``'s only, when given), by round then filing order.

    The view is refreshed first.
    """
    view.refresh()
    market, task_id = view.market, view.task_id
    bond = market.get_task(task_id).params.challenge_bond
    wanted = None if account is None else account.lower()
    found = []
    rounds = {}
    for event in view.events("RoundChallenged"):
        challenger = event.args["challenger"]
        if wanted is not None and challenger.lower() != wanted:
            continue
        round_ = event.args["round"]
        if round_ not in rounds:
            rounds[round_] = market.get_round(task_id, round_)
        r = rounds[round_]
        resolved = view.events("ChallengeResolved", round_)
        winner = resolved[-1].args["winner"] if resolved else ZERO_ADDRESS
        payout = 0
        if r.outcome == ChallengeOutcome.UPHELD:
            won = winner.lower() == challenger.lower()
            outcome = UPHELD if won else UPHELD_FOR_ANOTHER
            payout = resolved[-1].args["payout"] if won else 0
        elif r.outcome == ChallengeOutcome.REJECTED:
            outcome = REJECTED
        elif r.outcome == ChallengeOutcome.DISMISSED:
            outcome = DISMISSED
        elif r.status == RoundStatus.VOIDED:
            outcome = VOIDED
        else:
            outcome = OPEN
        returned = any(
            e.args["challenger"].lower() == challenger.lower()
            for e in view.events("ChallengeBondReturned", round_)
        )
        found.append(
            Challenge(round_, challenger, event.args["evidenceCid"], outcome, payout, bond, returned)
        )
    return sorted(found, key=lambda c: c.round)


def round_challenges(view: TaskView, round_: int, challenges: list[Challenge] | None = None) -> str:
    """A short cell for a round's challenges: ``-``, ``2 open``, ``1 rejected``, ``3, upheld for 0x12...``."""
    mine = [c for c in (challenges_of(view) if challenges is None else challenges) if c.round == round_]
    if not mine:
        return "-"
    winners = [c.challenger for c in mine if c.outcome == UPHELD]
    if winners:
        return f"{len(mine)}, upheld for {winners[0]}"
    outcome = mine[0].outcome
    return f"{len(mine)} {outcome}"


def forfeits(view: TaskView, round_: int | None = None) -> list[tuple[str, int]]:
    """(contributor, amount in the task's currency) of each commitment forfeited unopened in the viewed task
    (of ``round_``, if any)."""
    return [(e.args["contributor"], e.args["amount"]) for e in view.events("CommitmentForfeited", round_)]


def describe(challenge: Challenge, unit: str) -> str:
    """One line on a challenge from its challenger's side, amounts in ``unit`` (the task's:
    ``TaskView.unit``)."""
    head = f"round {challenge.round}: challenged with a bond of {challenge.bond_wei} {unit}, "
    if challenge.outcome == UPHELD:
        return f"{head}upheld: credited {challenge.payout_wei} {unit}"
    if challenge.outcome == REJECTED:
        return f"{head}rejected: the bond was burned"
    if challenge.outcome == OPEN:
        return f"{head}awaiting the arbiter"
    state = "withdrawn" if challenge.returned else "withdrawable (`cotrain claim`)"
    return f"{head}{challenge.outcome}: the bond is {state}"


# ---------------------------------------------------------------- acting


def file_challenge(view: TaskView, round_: int, problems: list[str]) -> str:
    """Challenge ``round_`` of the viewed task with its bond, storing ``problems`` as the evidence; return one
    line saying what was done (or why nothing was: the round is no longer open to challenge, or this account
    already challenged it).

    Raises
    ------
    ContractRevert
        If the market refuses (e.g. the window closed in between).
    """
    market, task_id = view.market, view.task_id
    me = market.client.signing_address()
    task = market.get_task(task_id)
    r = market.get_round(task_id, round_)
    window_end = r.accepted_at + task.params.challenge_duration
    if r.status != RoundStatus.ACCEPTED:
        status = r.status.name.lower()
        return f"round {round_} failed the audit, but it is {status}: it can no longer be challenged"
    if market.client.latest_timestamp() >= window_end:
        return f"round {round_} failed the audit, but its challenge window closed at {_when(window_end)}"
    earlier = [c for c in challenges_of(view, me) if c.round == round_]
    if earlier:
        return (
            f"{me} already challenged round {round_} of task {task_id} (evidence {earlier[0].evidence_cid}); "
            f"the arbiter has until {_when(window_end + task.params.challenge_duration)} to rule"
        )
    evidence = json.dumps({"task_id": task_id, "round": round_, "problems": problems}, sort_keys=True)
    cid = view.store.add(evidence.encode())
    market.challenge(task_id, round_, cid)
    others = market.get_round(task_id, round_).challenges - 1
    also = f"; {others} other challenge(s) of the round" if others else ""
    return (
        f"challenged round {round_} of task {task_id} with a bond of {task.params.challenge_bond} "
        f"{view.unit} (evidence {cid}{also}); the arbiter has until "
        f"{_when(window_end + task.params.challenge_duration)} to rule"
    )


def arbitrate(view: TaskView, round_: int, winner: str | None) -> str:
    """As the task's arbiter, uphold ``winner``'s challenge of ``round_`` or (``winner`` None) reject every
    challenge of the round; return one line saying what the market did.

    Raises
    ------
    ConfigError
        If this account is not the task's arbiter, the round has no challenge, or ``winner`` did not
        challenge it.
    ContractRevert
        If the market refuses (e.g. rejecting before the challenge window closed).
    """
    market, task_id = view.market, view.task_id
    me = market.client.signing_address()
    arbiter = market.get_task(task_id).params.arbiter
    if arbiter.lower() != me.lower():
        raise ConfigError(
            f"{me} is not the arbiter of task {task_id} (its arbiter is {arbiter}): use the arbiter's key"
        )
    challenges = [c for c in challenges_of(view) if c.round == round_]
    if not challenges:
        raise ConfigError(f"round {round_} of task {task_id} has no challenge to rule on")
    if winner is not None:
        if not (winner.startswith("0x") and is_hex_address(winner)):
            raise ConfigError(f"--winner {winner!r} is not an account address: pass 0x and 40 hex digits")
        winner = to_checksum_address(winner)
        if winner not in {c.challenger for c in challenges}:
            listed = ", ".join(c.challenger for c in challenges)
            raise ConfigError(
                f"{winner} did not challenge round {round_} of task {task_id}; its challengers: {listed}"
            )
    receipt = market.resolve_challenge(task_id, round_, winner or ZERO_ADDRESS)
    (resolved,) = [e for e in market.receipt_events(receipt) if e.name == "ChallengeResolved"]
    if winner is None:
        burned = len(challenges) * challenges[0].bond_wei
        return (
            f"rejected the {len(challenges)} challenge(s) of round {round_} of task {task_id}: "
            f"{burned} {view.unit} of challenge bonds burned"
        )
    slashed = sum(e.args["amount"] for e in market.receipt_events(receipt) if e.name == "ValidatorSlashed")
    return (
        f"upheld {winner}'s challenge of round {round_} of task {task_id}: it is credited "
        f"{resolved.args['payout']} {view.unit}, the proposers lost {slashed} {view.unit} of bonds, and the "
        "task halted"
    )


def withdraw_challenge_bonds(view: TaskView) -> list[tuple[int, int]]:
    """Take back every bond of this account's challenges that the market returns; (round, amount in the task's
    currency) of each."""
    market = view.market
    withdrawn = []
    for challenge in challenges_of(view, market.client.signing_address()):
        if challenge.withdrawable:
            market.withdraw_challenge_bond(view.task_id, challenge.round)
            withdrawn.append((challenge.round, challenge.bond_wei))
    return withdrawn


def _when(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
