"""Where one account stands on a market: each round's verdict, reward and slash, what it claimed and what it
can still claim, and the stake or bond it has locked.

Everything is read from the chain and the accepted round records (verified against their on-chain digests),
so the numbers are the market's own: a reward counts as claimed only when its leaf is marked claimed on chain,
and a slash counts as taken only when the market emitted ``ContributorSlashed``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from cotrain.chain.market import FORFEITED, REVEALED, Market, RoundStatus
from cotrain.errors import ConfigError
from cotrain.roles.challenges import Challenge, challenges_of
from cotrain.roles.task_view import TaskView
from cotrain.storage.base import ContentStore
from eth_utils import is_hex_address, to_checksum_address

EMPTY = bytes(32)
NO_VERDICT = "-"
NOT_REVEALED = "not revealed"
FORFEITED_VERDICT = "forfeited"
#: Events that name an account taking part in a task (validators are also listed in ``TaskCreated``).
PARTICIPATION_EVENTS = {
    "ContributorJoined": "contributor",
    "ValidatorBonded": "validator",
    "RoundChallenged": "challenger",
}


@dataclass(frozen=True)
class RoundResult:
    """What one round meant for one contributor; amounts (``*_wei``) are in the task's currency: wei, or the
    smallest unit of the task's token (:attr:`TaskStanding.unit` names it).

    Attributes
    ----------
    round : int
        The round number (from 0).
    status : str
        The round's status on chain in lower case: ``open``, ``accepted``, ``finalized``, ``failed``,
        ``voided``.
    verdict : str
        ``accepted`` or ``rejected`` (from the accepted record); ``forfeited`` when the account committed,
        never revealed, and its stake was forfeited; ``not revealed`` when it committed and never revealed
        (forfeit, but not taken yet); ``committed`` or ``revealed`` while the round is open; ``-`` when the
        account sent nothing or the round has no accepted result.
    reason : str
        The record's reason code (``ok``, ``free_rider``, ...), or ``-``.
    score : str or None
        The record's score (a decimal string), or None without a verdict.
    reward_wei : int
        The reward the accepted record allocates to the account.
    slash_wei : int
        The stake slash the accepted record allocates to the account.
    slashed_wei : int
        Stake the market actually took for this round (``ContributorSlashed``; at most the stake left).
    claimed : bool
        Whether the account's reward leaf is marked claimed on chain.
    claimable_wei : int
        What the account can claim now: its reward once the round is finalized, until it is claimed.
    forfeited_wei : int
        Stake the market took because the account's commitment of this round was never revealed
        (``CommitmentForfeited``).
    epsilon : str or None
        In a task with differential privacy: the epsilon the account's update of this round declared it had
        spent in the task (from the accepted record), else None.
    """

    round: int
    status: str
    verdict: str
    reason: str
    score: str | None
    reward_wei: int
    slash_wei: int
    slashed_wei: int
    claimed: bool
    claimable_wei: int
    forfeited_wei: int = 0
    epsilon: str | None = None

    @property
    def claimed_wei(self) -> int:
        """The reward paid out for this round (all of it or nothing: a leaf is claimed whole)."""
        return self.reward_wei if self.claimed else 0


@dataclass(frozen=True)
class TaskStanding:
    """One account's standing in one task: its roles, locked money and per-round results; amounts (``*_wei``)
    are in the task's currency.

    Attributes
    ----------
    task_id : int
        The task.
    task_status : str
        The task's status, lower case (``active``, ``completed``, ``cancelled``, ``halted``).
    unit : str
        What the task's amounts are counted in: ``wei``, or ``units of token 0x...`` on a token task.
    contributor : bool
        Whether the account ever joined the task as a contributor.
    joined : bool
        Whether it is a contributor now (it has not left).
    stake_wei : int
        Its contributor stake now (after slashes; zero once it left).
    validator : bool
        Whether the task lists the account as a validator.
    bond_wei : int
        Its validator bond now (zero before bonding and after withdrawing).
    bond_slashed_wei : int
        Bond the market took from it (``ValidatorSlashed``).
    rounds : tuple[RoundResult, ...]
        One result per round so far, when the account is a contributor; empty otherwise.
    challenges : tuple[Challenge, ...]
        The account's challenges of the task's rounds and what became of them.
    """

    task_id: int
    task_status: str
    unit: str
    contributor: bool
    joined: bool
    stake_wei: int
    validator: bool
    bond_wei: int
    bond_slashed_wei: int
    rounds: tuple[RoundResult, ...]
    challenges: tuple[Challenge, ...] = ()

    @property
    def roles(self) -> tuple[str, ...]:
        """Among ``contributor``, ``validator`` and ``challenger``, those the account played."""
        held = (
            ("contributor", self.contributor),
            ("validator", self.validator),
            ("challenger", bool(self.challenges)),
        )
        return tuple(role for role, played in held if played)

    @property
    def rewarded_wei(self) -> int:
        """Rewards the accepted records allocate to the account, claimed or not."""
        return sum(r.reward_wei for r in self.rounds)

    @property
    def slashed_wei(self) -> int:
        """Stake the market took from the account."""
        return sum(r.slashed_wei for r in self.rounds)

    @property
    def forfeited_wei(self) -> int:
        """Stake the account forfeited for commitments it never opened."""
        return sum(r.forfeited_wei for r in self.rounds)

    @property
    def claimed_wei(self) -> int:
        """Rewards paid out to the account."""
        return sum(r.claimed_wei for r in self.rounds)

    @property
    def claimable_wei(self) -> int:
        """Rewards the account can claim now."""
        return sum(r.claimable_wei for r in self.rounds)


def checksum_account(account: str) -> str:
    """Return ``account`` checksummed.

    Raises
    ------
    ConfigError
        If it is not a 0x-prefixed 20-byte hex address.
    """
    if not (isinstance(account, str) and account.startswith("0x") and is_hex_address(account)):
        raise ConfigError(f"{account!r} is not an account address: pass 0x and 40 hex digits")
    return to_checksum_address(account)


def round_result(view: TaskView, round_: int, account: str) -> RoundResult:
    """Read what ``round_`` of the viewed task meant for ``account``.

    The view is refreshed first, so the result includes slashes mined up to now.

    Parameters
    ----------
    view : TaskView
        The task.
    round_ : int
        The round (from 0).
    account : str
        The contributor's address, any case.

    Returns
    -------
    RoundResult

    Raises
    ------
    ChainError, StorageError, IntegrityError
        If the chain cannot be read, or an accepted record cannot be fetched or fails its digest.
    """
    account = checksum_account(account)
    market, task_id = view.market, view.task_id
    view.refresh()
    status = market.get_round(task_id, round_).status
    commitment = market.commitment_of(task_id, round_, account)
    slashed = sum(
        e.args["amount"]
        for e in view.events("ContributorSlashed", round_)
        if e.args["contributor"] == account
    )
    forfeited = sum(
        e.args["amount"]
        for e in view.events("CommitmentForfeited", round_)
        if e.args["contributor"] == account
    )
    reward_wei = slash_wei = 0
    claimed = False
    record = view.record(round_) if status in (RoundStatus.ACCEPTED, RoundStatus.FINALIZED) else None
    entry = next((u for u in record.updates if u.contributor == account.lower()), None) if record else None
    verdict: str
    if record is not None and entry is not None:
        reward_wei, slash_wei = entry.reward, entry.slash
        if reward_wei:
            index = record.reward_proof(account).index
            claimed = market.is_claimed(task_id, round_, index)
        verdict, reason, score = entry.verdict, entry.reason.value, entry.score
    elif commitment == FORFEITED:
        verdict, reason, score = FORFEITED_VERDICT, NO_VERDICT, None
    elif status == RoundStatus.OPEN and commitment != EMPTY:
        verdict, reason, score = "revealed" if commitment == REVEALED else "committed", NO_VERDICT, None
    elif commitment not in (EMPTY, REVEALED):
        verdict, reason, score = NOT_REVEALED, NO_VERDICT, None
    else:
        verdict, reason, score = NO_VERDICT, NO_VERDICT, None
    finalized = status == RoundStatus.FINALIZED
    return RoundResult(
        round=round_,
        status=status.name.lower(),
        verdict=verdict,
        reason=reason,
        score=score,
        reward_wei=reward_wei,
        slash_wei=slash_wei,
        slashed_wei=slashed,
        claimed=claimed,
        claimable_wei=reward_wei if finalized and not claimed else 0,
        forfeited_wei=forfeited,
        epsilon=entry.epsilon if entry is not None else None,
    )


def task_standing(view: TaskView, account: str) -> TaskStanding:
    """Read ``account``'s standing in the viewed task (rounds only if it ever joined as a contributor).

    Raises
    ------
    ChainError, StorageError, IntegrityError
        As :func:`round_result`.
    """
    account = checksum_account(account)
    market, task_id = view.market, view.task_id
    view.refresh()
    task = market.get_task(task_id)
    contributor = any(e.args["contributor"] == account for e in view.events("ContributorJoined"))
    member = market.contributor_info(task_id, account)
    validator = market.validator_info(task_id, account)
    rounds: tuple[RoundResult, ...] = ()
    if contributor:
        last = min(task.current_round, task.params.num_rounds - 1)
        rounds = tuple(round_result(view, round_, account) for round_ in range(last + 1))
    return TaskStanding(
        task_id=task_id,
        task_status=task.status.name.lower(),
        unit=view.unit,
        contributor=contributor,
        joined=member.joined,
        stake_wei=member.stake,
        validator=validator.listed,
        bond_wei=validator.bond,
        bond_slashed_wei=sum(
            e.args["amount"] for e in view.events("ValidatorSlashed") if e.args["validator"] == account
        ),
        rounds=rounds,
        challenges=tuple(challenges_of(view, account)),
    )


def tasks_of(market: Market, account: str) -> list[int]:
    """The ids of the tasks ``account`` joined, bonded for, challenged, or is listed as a validator of,
    ascending.

    Raises
    ------
    ChainError
        If the market's events cannot be read.
    """
    account = checksum_account(account)
    found = set()
    for event in market.events(["TaskCreated", *PARTICIPATION_EVENTS]):
        if event.name == "TaskCreated":
            if account in event.args["validators"]:
                found.add(int(event.args["taskId"]))
        elif event.args[PARTICIPATION_EVENTS[event.name]] == account:
            found.add(int(event.args["taskId"]))
    return sorted(found)


def account_standing(
    market: Market, store: ContentStore, account: str, task_ids: Iterable[int] | None = None
) -> list[TaskStanding]:
    """Read ``account``'s standing in each task it took part in (or in ``task_ids``).

    Parameters
    ----------
    market : Market
        The market; no signing account is needed.
    store : ContentStore
        Where the round records are stored.
    account : str
        The address, any case.
    task_ids : Iterable[int], optional
        The tasks to report; when None, every task found by :func:`tasks_of`.

    Returns
    -------
    list[TaskStanding]
        In the order of ``task_ids``, else by task id.

    Raises
    ------
    ConfigError
        If ``account`` is not an address, or a task in ``task_ids`` does not exist.
    ChainError, StorageError, IntegrityError
        As :func:`round_result`.
    """
    account = checksum_account(account)
    ids = tasks_of(market, account) if task_ids is None else list(task_ids)
    for task_id in ids:
        market.require_task(task_id)
    return [task_standing(TaskView(market, store, task_id), account) for task_id in ids]


def _short(score: str) -> str:
    """``"0.930000"`` -> ``"0.93"``, exactly (no float rounding)."""
    text = format(Decimal(score).normalize(), "f")
    return "0" if text == "-0" else text


def describe(result: RoundResult, unit: str) -> str:
    """One line on a round's outcome for the account, amounts in ``unit`` (the task's: ``TaskView.unit``),
    e.g. ``round 2: accepted, score 0.93, reward 123 wei (claimable)`` or ``round 1: rejected: free_rider,
    score 0, slashed 50 wei``."""
    head = f"round {result.round}: "
    if result.verdict == "accepted":
        if result.claimed:
            state = "claimed"
        elif result.status == "finalized":
            state = "claimable"
        else:
            state = "claimable once the round is finalized"
        score = _short(result.score or "0")
        return f"{head}accepted, score {score}, reward {result.reward_wei} {unit} ({state})"
    if result.verdict == "rejected":
        line = f"{head}rejected: {result.reason}, score {_short(result.score or '0')}"
        if result.slashed_wei:
            return f"{line}, slashed {result.slashed_wei} {unit}"
        if result.slash_wei:
            return f"{line}, slash of {result.slash_wei} {unit} not applied (yet)"
        return f"{line}, not slashed"
    if result.verdict == FORFEITED_VERDICT:
        stake = f"{result.forfeited_wei} {unit}"
        return f"{head}committed but never revealed: the whole stake of {stake} was forfeited"
    if result.verdict == NOT_REVEALED:
        return f"{head}committed but not revealed (round {result.status})"
    if result.verdict in ("committed", "revealed"):
        return f"{head}{result.verdict}, awaiting the verdict"
    if result.status in ("failed", "voided"):
        return f"{head}round {result.status}, no rewards or slashes"
    return f"{head}{result.status}, nothing sent by this account"
