"""A stateful (hypothesis) test of the whole market: random sequences of every external function over one or
two tasks, checked against a Python model of what each money bucket, stake, bond, credit and balance holds.

The machine runs once with its tasks paid in ETH (this file) and once in the standard ERC20 ``TestToken``
(conftest's ``token`` fixture; test_stateful_tokens.py, so that make test's two workers run them side by
side); a replay may mix both. On a token task a paying call (createTokenTask, bondValidator,
join, challenge) is preceded by the payer's approval of exactly what it owes (a separate transaction at the
same timestamp) and sends no wei; the rules' deliberately wrong payments become, for a token task, one wei
sent along (``WrongAmount``) or an approval one unit short (the token's ``ERC20InsufficientAllowance``, which
the market's transferFrom raises after every check of its own). The model keeps balances and credits per
currency: ETH balances and ``credits``, token balances (``balanceOf``) and ``tokenCredits``.

Every rule first asks the model whether the call must succeed, or revert and with which custom error; it
sends the call at an exact block timestamp and, on success, applies the same change to the model. The model
owns the clock: each transaction lands one second after the previous one (``evm_setNextBlockTimestamp``
through conftest's ``next_block_at``) and a time jump moves that clock forward, so phase boundaries are hit
to the second (``chain.sleep`` follows the wall clock and could not). After every step one batched JSON-RPC
read compares the contract with the model:

- per currency, the market's balance is the sum of that currency's tasks' holdings plus its credits
  (``totalCredits`` for ETH, ``totalTokenCredits(token)``), and a task's holdings are its seven buckets
  (escrow, reserved, unclaimed, stakes, bonds, challenge bonds, burned), each equal to the model's;
  ``tokenOf`` names the task's currency;
- a task's ``stakes`` is the sum of its contributors' stakes and ``bonds`` the sum of its validators' bonds;
- ``isClaimed`` / ``isSlashed`` agree with the leaves the model paid (a second claim is tried after every
  claim and must revert ``AlreadyClaimed``);
- per round ``rewardClaimed <= rewardTotal <= roundBudget``, and its schedule, counters and status match;
- every account's balance in each currency is what the model predicts: gas is free on the test chain, so an
  account's balance moves only by what it paid the market and what the market paid it; so are its credits.

A leave is modelled on ``leave``'s NatSpec: it succeeds only when every round the contributor committed to
is settled (failed, voided, never to be validated, or finalized with its slash window over), except that a
last commitment left unopened after its reveal phase forfeits the stake instead (as a commit after it is
refused). The model does not call forfeitUnrevealed or withdrawChallengeBond itself.

Most rules pick arguments that are usually valid in the model's state, but any of them may be out of phase
and some are deliberately wrong. ``rule_progress*`` (one autopilot listed six times, to weigh about a
quarter of the draws) takes the next steps of a task's happy path or wind-down, and the ``rule_dispute*``
rules, enabled while an accepted round can be challenged, run a challenge to its end; so the runs reach
claims, slashes, challenges and refunds within the step budget.

brownie 1.22.2's compiled ``brownie.test.state_machine`` cannot run a machine (its generated subclass fails
with "TypeError: brownie.test.stateful._BrownieStateMachine object expected"), so this drives
``hypothesis.stateful`` directly with brownie's chain snapshot, as brownie's wrapper would: the settings
are the profile brownie loads from brownie-config.yaml (max_examples 60, stateful_step_count 40).
"""

from __future__ import annotations

import contextlib
import io
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

import hypothesis
import pytest
from brownie import accounts, chain, web3
from brownie.exceptions import VirtualMachineError
from conftest import (
    ACCEPTED,
    CLOSED,
    COMMIT,
    DISMISSED,
    EXPIRED,
    FAILED,
    FINALIZED,
    JOIN,
    NO_OUTCOME,
    OPEN,
    PARAM_FIELDS,
    REJECTED,
    REVEAL,
    TASK_ACTIVE,
    TASK_CANCELLED,
    TASK_COMPLETED,
    TASK_HALTED,
    UPHELD,
    VALIDATE,
    VOIDED,
    ZERO_ADDRESS,
    RoundResult,
    Update,
    digest_of,
    make_proposal,
    next_block_at,
    task_params,
)
from cotrain.protocol.commitment import update_commitment
from cotrain.protocol.merkle import ALLOCATION_TYPES, leaf_hash, verify
from hypothesis import Verbosity
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

ZERO_ROOT = b"\x00" * 32
SPEC = "bafkreispec"
ETH = ZERO_ADDRESS  # a task's currency, as tokenOf names it: ETH, or the ERC20's address
# What OpenZeppelin's ERC20 reverts with when transferFrom asks for more than the allowance.
ALLOWANCE_ERROR = "ERC20InsufficientAllowance"
# The actions each run must have completed at least once, across all examples, on an ETH task and on a token
# task (there counted as "<action> [token]").
MAIN_ACTIONS = (
    "createTask",
    "bondValidator",
    "join",
    "leave",
    "commit",
    "reveal",
    "propose",
    "propose (accepting)",
    "propose (dissent)",
    "failRound",
    "challenge",
    "resolveChallenge (upheld)",
    "resolveChallenge (rejected)",
    "finalizeRound",
    "claim",
    "claim again: AlreadyClaimed",
    "slashContributor",
    "cancelTask",
    "withdrawRefund",
    "withdrawBond",
    "withdrawCredit",
)
# The dispute path, which a run reaches only a few times: test_replay_token_dispute walks it on a token task
# step by step.
TOKEN_RARE = (
    "resolveChallenge (upheld)",
    "resolveChallenge (rejected)",
    "slashContributor",
    "cancelTask",
    "withdrawCredit",
)


# ---------------------------------------------------------------- the model


@dataclass
class RoundModel:
    starts_at: int = 0
    commit_end: int = 0
    reveal_end: int = 0
    validate_end: int = 0
    commits: int = 0
    reveals: int = 0
    accepted_at: int = 0
    finalized_at: int = 0
    status: int = OPEN
    accepted_key: tuple | None = None
    reward_total: int = 0
    reward_claimed: int = 0
    challengers: dict[str, str] = field(default_factory=dict)  # account -> "open" or "settled"
    challenges: int = 0
    outcome: int = NO_OUTCOME
    forfeited: set[str] = field(default_factory=set)
    updates: dict[str, Update] = field(default_factory=dict)  # committed, by contributor
    revealed: set[str] = field(default_factory=set)
    proposals: dict[str, tuple] = field(default_factory=dict)  # validator -> proposal key
    votes: Counter = field(default_factory=Counter)
    results: dict[tuple, RoundResult] = field(default_factory=dict)  # every proposal made, by key
    claimed: set[int] = field(default_factory=set)
    slashed: set[int] = field(default_factory=set)

    @property
    def accepted(self) -> RoundResult | None:
        return self.results.get(self.accepted_key) if self.accepted_key else None


@dataclass
class TaskModel:
    id: int
    params: dict
    owner: str
    validators: list[str]
    budget: int
    currency: str = ETH
    status: int = TASK_ACTIVE
    current: int = 0
    active: int = 0
    pending: int = 0
    escrow: int = 0
    reserved: int = 0
    unclaimed: int = 0
    stakes: int = 0
    bonds: int = 0
    challenge_bonds: int = 0
    burned: int = 0
    closed_at: int = 0
    bonded: dict[str, bool] = field(default_factory=dict)
    bond: dict[str, int] = field(default_factory=dict)
    joined: dict[str, bool] = field(default_factory=dict)
    stake: dict[str, int] = field(default_factory=dict)
    committed: dict[str, set[int]] = field(default_factory=dict)  # rounds each contributor committed to
    rounds: dict[int, RoundModel] = field(default_factory=dict)

    @property
    def round_budget(self) -> int:
        return self.budget // self.params["numRounds"]

    @property
    def arbiter(self) -> str:
        return self.params["arbiter"]

    @property
    def holdings(self) -> int:
        buckets = (self.escrow, self.reserved, self.unclaimed, self.stakes, self.bonds, self.challenge_bonds)
        return sum(buckets) + self.burned

    def round(self, r: int) -> RoundModel:
        """The round's model; a blank (Open, unscheduled) one for a round that never started."""
        return self.rounds.get(r) or RoundModel()


def proposal_key(proposal: tuple) -> tuple:
    """What two proposals must share to agree: digests, roots and reward total (not the CIDs)."""
    return tuple(proposal[:5])


def proof_valid(tree, index: int, account: str, amount: int, proof: list[bytes]) -> bool:
    root = tree.root if tree is not None else ZERO_ROOT
    return verify(root, leaf_hash(ALLOCATION_TYPES, (index, account, amount)), proof)


def error_name(exc: VirtualMachineError) -> str:
    return (exc.revert_msg or "").split(":")[0]


# ---------------------------------------------------------------- the machine


ST_PARAMS = st.fixed_dictionaries(
    {
        "numRounds": st.integers(1, 3),
        "minContributors": st.integers(1, 2),
        "maxContributors": st.integers(2, 4),
        "joinDuration": st.sampled_from([0, 30]),
        # phases outlast a challenge window, so that finalizing one round does not time out the next
        "commitDuration": st.sampled_from([300, 900]),
        "revealDuration": st.sampled_from([300, 900]),
        # the challenge window is at least the validation phase
        "validationDuration": st.sampled_from([60, 120]),
        "challengeDuration": st.sampled_from([120, 240]),
        "quorum": st.sampled_from([2, 3]),  # more than half of the three validators
        "contributorStake": st.sampled_from([1_000, 1]),  # 1: a forfeit bounty of zero
        "validatorBond": st.sampled_from([10_000, 1]),
        "validatorSlash": st.sampled_from([2_500, 10_000]),
        "challengeBond": st.sampled_from([5_000, 1]),
        "budget": st.sampled_from([3_000_000, 1_000_003]),
    }
)
ST_TASK = st.integers(0, 9)  # 9: an id no task has
ST_SEL = st.integers(0, 15)  # mostly a candidate the model thinks valid, sometimes any account
ST_RARE = st.integers(0, 7)  # 0 (sometimes 1, 2): a deliberately wrong variant
ST_KIND = st.sampled_from(["honest", "honest", "dissent", "understated", "greedy"])
ST_CREATE = st.integers(0, 11)  # 0-1: valid, 2-11: one invalid field each
ST_BOOL = st.booleans()
ST_DT = st.sampled_from([1, 5, 20, 60, 1000])
ST_OFFSET = st.sampled_from([-1, 0, 1])
ST_MASK = st.integers(0, 5)  # 1-3: all validators but that one bond; else all do
ST_JOINERS = st.integers(0, 4)
ST_CHOICES = st.lists(st.integers(0, 1023), min_size=1, max_size=3)


class MarketMachine(RuleBasedStateMachine):
    """Rules, invariant and model. `market` is set by the test; each example starts from its snapshot."""

    counts: ClassVar[Counter] = Counter()
    stats: ClassVar[Counter] = Counter()

    market = None

    @classmethod
    def configure(cls, market, token, in_token: bool = False) -> None:
        """Aim the machine at `market`; its tasks are paid in `token` if `in_token`, else in ETH (a replay
        may name a task's currency with a "token" entry in its drawn parameters)."""
        cls.market = market
        cls.token = token
        cls.in_token = in_token
        cls.currencies = (ETH, str(token.address))
        cls.owner = str(accounts[0])
        cls.validator_pool = [str(a) for a in accounts[1:4]]
        cls.contributor_pool = [str(a) for a in accounts[4:8]]
        cls.arbiter_account = str(accounts[8])
        cls.outsider = str(accounts[9])
        cls.everyone = [str(a) for a in accounts[:10]]
        cls.signers = {str(a): a for a in accounts[:10]}

    def __init__(self):
        """Each example starts from the snapshot: the market deployed, no task."""
        super().__init__()
        chain.revert()
        self.stats["examples"] += 1
        self.now = web3.eth.get_block("latest")["timestamp"]
        self.tasks: list[TaskModel] = []
        self.picks = 0
        # by currency (ETH, the token), then account
        self.credits = {c: dict.fromkeys(self.everyone, 0) for c in self.currencies}
        self.balances, self.market_balance = {}, {}
        holders = [*self.everyone, self.market.address]
        for currency in self.currencies:
            balances = self._batch([self._balance_of(currency, a) for a in holders])
            self.balances[currency] = dict(zip(self.everyone, balances[:-1], strict=True))
            self.market_balance[currency] = balances[-1]
            assert self.market_balance[currency] == 0

    # ------------------------------------------------------------ plumbing

    def _step(self):
        self.stats["steps"] += 1

    def _tick(self) -> int:
        """The timestamp of the next transaction: one second after the last one (or after a time jump)."""
        self.now += 1
        return self.now

    def _jump_to(self, timestamp: int) -> None:
        """Make the next transaction land exactly at `timestamp` (never back in time)."""
        if timestamp - 1 > self.now:
            self.now = timestamp - 1
            self.stats["time jumps"] += 1

    def _send(
        self,
        action: str,
        fn,
        args: tuple,
        sender: str,
        error: str | None,
        value: int = 0,
        currency: str = ETH,
        approve: int | None = None,
        paid: int = 0,
    ):
        """Send at self.now; assert it reverts with `error` (a custom error name) or succeeds. `value` is the
        wei sent along; on a token task (`currency`), `approve` is approved to the market first (in a block
        of the same timestamp) and `paid` is what the call takes from the sender when it succeeds."""
        label = action if currency == ETH else f"{action} [token]"
        if approve is not None:
            self._approve(sender, approve)
        next_block_at(self.now)
        # A gas limit unique to this transaction: examples replay the same calls from the same snapshot, and
        # anvil can lose track of a transaction whose hash it has seen before a revert ("Tx dropped").
        self.stats["transactions"] += 1
        params = {
            "from": self.signers[sender],
            "value": value,
            "gas": 10_000_000 + self.stats["transactions"],
            "gas_price": 0,  # free, whatever price a module run before this one left (the books hold no gas)
        }
        with contextlib.redirect_stdout(io.StringIO()):
            if error is not None:
                try:
                    fn(*args, params)
                except VirtualMachineError as exc:
                    got = error_name(exc)
                    assert got == error, f"{label} reverted with {exc.revert_msg!r}, the model said {error}"
                    self._count(f"{action}: {error}", currency)
                    return None
                raise AssertionError(
                    f"{label}{args} from {sender} succeeded; the model said it reverts {error}"
                )
            try:
                tx = fn(*args, params)
            except VirtualMachineError as exc:
                raise AssertionError(
                    f"{label} reverted with {exc.revert_msg!r}, model said it succeeds"
                ) from exc
        self._pay(sender, -value)
        if currency != ETH:
            self._pay(sender, -paid, currency)
        self._count(action, currency)
        return tx

    def _approve(self, owner: str, amount: int) -> None:
        """`owner` approves the market for `amount` of the token, at self.now (the market is not called)."""
        next_block_at(self.now)
        self.stats["transactions"] += 1
        params = {"from": self.signers[owner], "gas": 10_000_000 + self.stats["transactions"], "gas_price": 0}
        with contextlib.redirect_stdout(io.StringIO()):
            self.token.approve(self.market, amount, params)

    @staticmethod
    def _money(currency: str, required: int, amount: int, extra: int = 0) -> dict:
        """_send's keywords for a call that owes `required` and brings `amount`: in ETH, `amount` wei as its
        value; in a token, an approval of `amount`, with `extra` wei sent along."""
        if currency == ETH:
            return {"value": amount}
        return {"value": extra, "currency": currency, "approve": amount, "paid": required}

    @staticmethod
    def _payment_error(currency: str, required: int, amount: int, extra: int = 0) -> str | None:
        """Why a call that owes `required` and brings `amount` (and, in a token, `extra` wei) reverts, if it
        does: the wrong value (WrongAmount: a token task takes no wei), or an approval short of it (the
        token's own error, raised by the market's transferFrom after every other check)."""
        if currency == ETH:
            return "WrongAmount" if amount != required else None
        if extra:
            return "WrongAmount"
        return ALLOWANCE_ERROR if amount < required else None

    def _pay(self, account: str, amount: int, currency: str = ETH) -> None:
        self.balances[currency][account] += amount
        self.market_balance[currency] -= amount

    def _count(self, action: str, currency: str = ETH) -> None:
        """Count an outcome; a token task's is marked " [token]"."""
        self.counts[action if currency == ETH else f"{action} [token]"] += 1

    @staticmethod
    def _currency(task: TaskModel | None) -> str:
        return task.currency if task is not None else ETH

    def _balance_of(self, currency: str, account: str) -> tuple:
        """A _batch item: what `account` holds in `currency`."""
        return ("balance", account) if currency == ETH else (self.token.balanceOf, account)

    def _rng(self, seed: int) -> random.Random:
        """A generator for picking among candidates. hypothesis favours small integers, so `seed % len`
        would favour the first candidates; seeding with the draw and this example's own count of picks
        spreads the picks evenly and still replays the same example the same way."""
        self.picks += 1
        return random.Random(self.picks * 1_000_003 + seed)

    def _task(self, sel: int) -> tuple[int, TaskModel | None]:
        if sel == 9 or not self.tasks:
            return len(self.tasks) + 1, None
        task = self.tasks[sel % len(self.tasks)]
        return task.id, task

    @staticmethod
    def _pick(sel: int, preferred: list[str], pool: list[str]) -> str:
        if preferred and sel < 12:
            return preferred[sel % len(preferred)]
        return pool[sel % len(pool)]

    def _batch(self, items: list[tuple]) -> list:
        """Read many values in one JSON-RPC batch: ("balance", address) or (contract function, *args)."""
        requests = []
        for item in items:
            if item[0] == "balance":
                requests.append(("eth_getBalance", [item[1], "latest"]))
            else:
                fn, *args = item
                call = {"to": fn._address, "data": fn.encode_input(*args)}
                requests.append(("eth_call", [call, "latest"]))
        responses = sorted(web3.provider.make_batch_request(requests), key=lambda r: r["id"])
        results = []
        for item, response in zip(items, responses, strict=True):
            assert "error" not in response, (item, response)
            if item[0] == "balance" or [o["type"] for o in item[0].abi["outputs"]] == ["uint256"]:
                results.append(int(response["result"], 16))  # a plain number: no ABI decoding needed
            else:
                results.append(item[0].decode_output(response["result"]))
        return results

    # ------------------------------------------------------------ model rules

    def _phase(self, task: TaskModel, rm: RoundModel, t: int) -> int:
        if task.status != TASK_ACTIVE or rm.status != OPEN:
            return CLOSED
        if t < rm.starts_at:
            return JOIN
        if t < rm.commit_end:
            return COMMIT
        if t < rm.reveal_end:
            return REVEAL
        if t < rm.validate_end:
            return VALIDATE
        return EXPIRED

    def _schedule(self, task: TaskModel, r: int, starts_at: int, commit_end: int, reveal_end: int) -> None:
        rm = task.rounds.setdefault(r, RoundModel())
        rm.starts_at, rm.commit_end, rm.reveal_end = starts_at, commit_end, reveal_end
        rm.validate_end = reveal_end + task.params["validationDuration"]

    def _start_round(self, task: TaskModel, r: int, starts_at: int) -> None:
        task.current = r
        commit_end = starts_at + task.params["commitDuration"]
        self._schedule(task, r, starts_at, commit_end, commit_end + task.params["revealDuration"])

    def _next_round(self, task: TaskModel, t: int) -> None:
        if task.current + 1 == task.params["numRounds"]:
            task.current += 1
            task.status = TASK_COMPLETED
            task.closed_at = t
        else:
            self._start_round(task, task.current + 1, t)

    def _slash_validator(self, task: TaskModel, validator: str) -> None:
        slashed = min(task.params["validatorSlash"], task.bond[validator])
        if slashed == 0:
            return
        task.bond[validator] -= slashed
        task.bonded[validator] = False
        task.bonds -= slashed
        task.escrow += slashed

    def _refund(self, task: TaskModel) -> None:
        if task.escrow:
            self._pay(task.owner, task.escrow, task.currency)
            task.escrow = 0

    def _settled(self, task: TaskModel, r: int, t: int) -> bool:
        """leave's NatSpec: a committed round no longer holds the stake."""
        rm = task.round(r)
        if rm.status in (FAILED, VOIDED):
            return True
        if rm.status == FINALIZED:
            return t > rm.finalized_at + task.params["challengeDuration"]
        if rm.status == OPEN:
            return task.status != TASK_ACTIVE
        return False

    def _forfeitable(self, task: TaskModel, r: int, who: str, t: int) -> bool:
        """A commitment left unopened through a reveal phase the task was active for."""
        rm = task.round(r)
        if who not in rm.updates or who in rm.revealed or who in rm.forfeited or t < rm.reveal_end:
            return False
        return task.closed_at == 0 or rm.reveal_end <= task.closed_at

    def _last_unopened(self, task: TaskModel, who: str, t: int) -> int | None:
        """The contributor's last committed round, if that commitment is forfeitable at t."""
        last = max(task.committed.get(who, ()), default=None)
        return last if last is not None and self._forfeitable(task, last, who, t) else None

    def _forfeit(self, task: TaskModel, r: int, who: str, caller: str) -> None:
        task.round(r).forfeited.add(who)
        amount, task.stake[who] = task.stake.get(who, 0), 0
        task.stakes -= amount
        if task.joined.get(who):
            task.joined[who] = False
            task.active -= 1
        bounty = amount // 10
        task.burned += amount - bounty
        self.credits[task.currency][caller] += bounty

    def _halt(self, task: TaskModel, from_round: int, t: int) -> None:
        task.status = TASK_HALTED
        if task.closed_at == 0:
            task.closed_at = t
        last = min(task.current, task.params["numRounds"] - 1)
        for r in range(from_round, last + 1):
            rm = task.round(r)
            if rm.status == ACCEPTED:
                rm.status = VOIDED
                task.reserved -= rm.reward_total
                task.escrow += rm.reward_total
                task.pending -= 1

    def _update(self, task_id: int, r: int, who: str) -> Update:
        return Update(who, digest_of(f"update {task_id} {r} {who}"), digest_of(f"salt {task_id} {r} {who}"))

    def _result(self, task: TaskModel | None, r: int, kind: str) -> RoundResult:
        """The proposal a validator makes for a round: deterministic in the round's reveals, so honest
        validators agree. Honest: rewards for every revealer (leaving some budget unspent), slashes for
        every committer that did not reveal (over its stake, to test the cap) and a small one for the first
        revealer. Dissent: the whole budget to one revealer, no slashes. Understated: the honest trees with
        half the reward total declared. Greedy: over the round budget."""
        if task is None:
            return make_proposal([(self.contributor_pool[0], 1)], label="unknown")
        rm = task.round(r)
        silent = [a for a in self.contributor_pool if a in rm.updates and a not in rm.revealed]
        revealers = [a for a in self.contributor_pool if a in rm.revealed]
        first = revealers[:1]  # slashed a little on top of the silent ones
        revealers = revealers or self.contributor_pool[:1]  # only for proposals that must revert
        budget, stake = task.round_budget, task.params["contributorStake"]
        label = f"t{task.id} r{r}"
        if kind == "dissent":
            return make_proposal([(revealers[-1], budget)], label=f"dissent {label}")
        if kind == "greedy":
            return make_proposal([(revealers[0], budget + 1)], label=f"greedy {label}")
        each = budget // (len(revealers) + 1)
        rewards = [(a, each - i) for i, a in enumerate(revealers)]
        slashes = [(a, 2 * stake + 1) for a in silent] + [(a, stake // 2 + 1) for a in first]
        if kind == "understated":
            result = make_proposal(rewards, slashes, label=f"understated {label}")
            fields = list(result.proposal)
            fields[4] //= 2
            result.proposal = tuple(fields)
            return result
        return make_proposal(rewards, slashes, label=f"model {label}")

    # ------------------------------------------------------------ actions: model, send, apply

    def _do_create(
        self,
        creator: str,
        params: dict,
        budget: int,
        validators: list[str],
        spec: str,
        currency: str = ETH,
        short: bool = False,
    ) -> None:
        """Create a task paid in `currency`; in a token, the budget is approved first (one unit less if
        `short`: createTokenTask pulls the budget before any other check)."""
        t = self._tick()
        p = params
        error = None
        approval = max(budget - short, 0)
        if currency != ETH and approval < budget:
            error = ALLOWANCE_ERROR
        elif budget == 0:
            error = "EmptyBudget"
        elif p["numRounds"] == 0 or p["numRounds"] > 1000:
            error = "BadRoundCount"
        elif p["minContributors"] == 0 or p["maxContributors"] < p["minContributors"]:
            error = "BadContributorRange"
        elif (
            0 in (p["commitDuration"], p["revealDuration"], p["validationDuration"])
            or p["challengeDuration"] < p["validationDuration"]
        ):
            error = "BadDuration"
        elif not 0 < len(validators) <= 32:
            error = "BadValidatorCount"
        elif not len(validators) < 2 * p["quorum"] <= 2 * len(validators):
            error = "BadQuorum"
        elif 0 in (p["contributorStake"], p["validatorBond"], p["challengeBond"]):
            error = "BadBond"
        elif p["validatorSlash"] > p["validatorBond"]:
            error = "BadSlash"
        elif p["arbiter"] in (ZERO_ADDRESS, creator):
            error = "BadArbiter"
        elif not 0 < len(spec) <= 128:
            error = "BadCid"
        else:
            for i, v in enumerate(validators):
                if v == ZERO_ADDRESS or v in validators[:i]:
                    error = "BadValidator"
                    break
                if v == p["arbiter"]:
                    error = "BadArbiter"
                    break
        args = (task_params(**p), spec, validators)
        if currency == ETH:
            sent = self._send("createTask", self.market.createTask, args, creator, error, budget)
        else:
            args = (*args, currency, budget)
            money = self._money(currency, budget, approval)
            sent = self._send("createTask", self.market.createTokenTask, args, creator, error, **money)
        if sent is None:
            return
        task = TaskModel(
            len(self.tasks) + 1, dict(p), creator, list(validators), budget, currency, escrow=budget
        )
        for v in validators:
            task.bonded[v] = False
            task.bond[v] = 0
        self.tasks.append(task)
        self._start_round(task, 0, t + p["joinDuration"])

    def _drawn_currency(self, drawn: dict) -> str:
        """The currency of a task created from `drawn`: the token's address, or ETH."""
        return self.currencies[1] if drawn.get("token", self.in_token) else ETH

    def _create_valid(self, drawn: dict, creator: str) -> None:
        params = {name: drawn[name] for name in PARAM_FIELDS if name in drawn}
        params["validatorSlash"] = min(drawn["validatorSlash"], drawn["validatorBond"])
        params["arbiter"] = self.arbiter_account
        params = {**dict(zip(PARAM_FIELDS, task_params(), strict=True)), **params}
        self._do_create(
            creator, params, drawn["budget"], list(self.validator_pool), SPEC, self._drawn_currency(drawn)
        )

    def _active_error(self, task: TaskModel | None) -> str | None:
        if task is None:
            return "UnknownTask"
        if task.status != TASK_ACTIVE:
            return "TaskNotActive"
        return None

    def _do_bond(self, task_id: int, task: TaskModel | None, who: str, amount: int, extra: int = 0) -> None:
        """`who` bonds bringing `amount` (see _money) for the first bond or the top-up of a slashed one."""
        self._tick()
        currency = self._currency(task)
        missing = task.params["validatorBond"] - task.bond.get(who, 0) if task else amount
        error = self._active_error(task)
        if error is None:
            if who not in task.validators:
                error = "NotValidator"
            elif missing == 0:
                error = "AlreadyBonded"
            else:
                error = self._payment_error(currency, missing, amount, extra)
        money = self._money(currency, missing, amount, extra)
        if self._send("bondValidator", self.market.bondValidator, (task_id,), who, error, **money) is None:
            return
        if task.bond[who]:
            self._count("bondValidator (top-up)", currency)
        task.bonded[who] = True
        task.bond[who] += missing
        task.bonds += missing

    def _do_join(self, task_id: int, task: TaskModel | None, who: str, amount: int, extra: int = 0) -> None:
        """`who` joins bringing `amount` (see _money)."""
        t = self._tick()
        currency = self._currency(task)
        stake = task.params["contributorStake"] if task else amount
        error = self._active_error(task)
        if error is None:
            if who in task.validators or who == task.arbiter:
                error = "ConflictOfInterest"
            elif task.joined.get(who):
                error = "AlreadyJoined"
            else:
                error = self._payment_error(currency, stake, amount, extra)
        money = self._money(currency, stake, amount, extra)
        if self._send("join", self.market.join, (task_id,), who, error, **money) is None:
            return
        task.joined[who] = True
        task.stake[who] = stake
        task.active += 1
        task.stakes += stake
        if t < task.round(task.current).starts_at and task.active >= task.params["maxContributors"]:
            self._start_round(task, task.current, t)

    def _do_leave(self, task_id: int, task: TaskModel | None, who: str) -> None:
        t = self._tick()
        error = "UnknownTask" if task is None else None
        if error is None:
            unopened = self._last_unopened(task, who, t)
            if not task.joined.get(who):
                error = "NotJoined"
            elif unopened is None and not all(self._settled(task, r, t) for r in task.committed.get(who, ())):
                error = "StakeLocked"
        if (
            self._send("leave", self.market.leave, (task_id,), who, error, currency=self._currency(task))
            is None
        ):
            return
        if unopened is not None:  # leaving forfeits a stake whose last commitment was never opened
            self._count("leave (forfeit)", task.currency)
            self._forfeit(task, unopened, who, who)
            return
        refund = task.stake[who]
        task.joined[who] = False
        task.stake[who] = 0
        task.active -= 1
        task.stakes -= refund
        self._pay(who, refund, task.currency)

    def _do_commit(self, task_id: int, task: TaskModel | None, who: str, r: int, empty: bool = False) -> None:
        t = self._tick()
        update = self._update(task_id, r, who)
        commitment = ZERO_ROOT if empty else update_commitment(who, task_id, r, update.digest, update.salt)
        error = self._active_error(task)
        if error is None:
            rm = task.round(r)
            if r != task.current:
                error = "WrongRound"
            elif self._phase(task, rm, t) != COMMIT:
                error = "WrongPhase"
            elif not task.joined.get(who):
                error = "NotJoined"
            elif empty:
                error = "EmptyCommitment"
            elif who in rm.updates:
                error = "AlreadyCommitted"
            elif rm.commits >= task.params["maxContributors"]:
                error = "RoundFull"
            elif self._last_unopened(task, who, t) is not None:
                error = "UnopenedCommitment"
        args = (task_id, r, commitment)
        if self._send("commit", self.market.commit, args, who, error, currency=self._currency(task)) is None:
            return
        rm.updates[who] = update
        task.committed.setdefault(who, set()).add(r)
        rm.commits += 1
        if rm.commits == min(task.active, task.params["maxContributors"]):
            self._schedule(task, r, rm.starts_at, t, t + task.params["revealDuration"])

    def _do_reveal(self, task_id: int, task: TaskModel | None, who: str, r: int, variant: int = 9) -> None:
        t = self._tick()
        update = self._update(task_id, r, who)
        salt = digest_of("wrong salt") if variant == 0 else update.salt
        samples = 0 if variant == 1 else 100
        cid = "" if variant == 2 else "bafkreiupdate"
        error = self._active_error(task)
        if error is None:
            rm = task.round(r)
            if r != task.current:
                error = "WrongRound"
            elif self._phase(task, rm, t) != REVEAL:
                error = "WrongPhase"
            elif who not in rm.updates:
                error = "NotCommitted"
            elif who in rm.revealed:
                error = "AlreadyRevealed"
            elif (update.digest, salt) != (rm.updates[who].digest, rm.updates[who].salt):
                error = "CommitmentMismatch"
            elif samples == 0:
                error = "ZeroSamples"
            elif not cid:
                error = "BadCid"
        args = (task_id, r, cid, update.digest, samples, salt)
        if self._send("reveal", self.market.reveal, args, who, error, currency=self._currency(task)) is None:
            return
        rm.revealed.add(who)
        rm.reveals += 1
        if rm.reveals == rm.commits:
            self._schedule(task, r, rm.starts_at, rm.commit_end, t)

    def _do_propose(self, task_id: int, task: TaskModel | None, who: str, r: int, kind: str) -> None:
        t = self._tick()
        result = self._result(task, r, kind)
        key = proposal_key(result.proposal)
        error = "UnknownTask" if task is None else None
        if error is None:
            rm = task.round(r)
            if rm.status == OPEN:
                if task.status != TASK_ACTIVE:
                    error = "TaskNotActive"
                elif r != task.current:
                    error = "WrongRound"
                elif self._phase(task, rm, t) != VALIDATE:
                    error = "WrongPhase"
            elif rm.status == ACCEPTED:
                if t >= rm.validate_end:
                    error = "WrongPhase"
            else:
                error = "WrongRoundStatus"
        if error is None:
            if who not in task.validators:
                error = "NotValidator"
            elif task.bond[who] < task.params["validatorBond"]:
                error = "NotBonded"
            elif rm.reveals < task.params["minContributors"]:
                error = "TooFewReveals"
            elif who in rm.proposals:
                error = "AlreadyProposed"
            elif key[4] > task.round_budget:
                error = "RewardsOverBudget"
        args = (task_id, r, result.proposal)
        if (
            self._send("propose", self.market.propose, args, who, error, currency=self._currency(task))
            is None
        ):
            return
        if kind != "honest":
            self._count("propose (dissent)", task.currency)
        rm.proposals[who] = key
        rm.results[key] = result
        rm.votes[key] += 1
        if rm.votes[key] == task.params["quorum"] and rm.status == OPEN:
            self._count("propose (accepting)", task.currency)
            rm.status = ACCEPTED
            rm.accepted_at = t
            rm.accepted_key = key
            rm.reward_total = key[4]
            task.escrow -= key[4]
            task.reserved += key[4]
            task.pending += 1
            self._next_round(task, t)

    def _do_fail(self, task_id: int, task: TaskModel | None, who: str) -> None:
        t = self._tick()
        error = self._active_error(task)
        if error is None:
            rm = task.round(task.current)
            phase = self._phase(task, rm, t)
            too_few = rm.reveals < task.params["minContributors"]
            if phase != EXPIRED and not (phase == VALIDATE and too_few):
                error = "RoundNotExpired"
        currency = self._currency(task)
        if self._send("failRound", self.market.failRound, (task_id,), who, error, currency=currency) is None:
            return
        rm.status = FAILED
        self._count(
            f"failRound ({'too few reveals' if too_few else 'no quorum'}, {rm.commits} commits)", currency
        )
        if not too_few:
            for v in task.validators:
                if v not in rm.proposals:
                    self._slash_validator(task, v)
        self._next_round(task, t)

    def _do_challenge(
        self, task_id, task: TaskModel | None, who: str, r: int, amount: int, extra: int = 0
    ) -> None:
        """`who` challenges round r bringing `amount` (see _money)."""
        t = self._tick()
        currency = self._currency(task)
        bond = task.params["challengeBond"] if task else amount
        error = "UnknownTask" if task is None else None
        if error is None:
            rm = task.round(r)
            if rm.status != ACCEPTED:
                error = "WrongRoundStatus"
            elif t >= rm.accepted_at + task.params["challengeDuration"]:
                error = "ChallengeWindowClosed"
            elif who in rm.challengers:
                error = "AlreadyChallenged"
            else:
                error = self._payment_error(currency, bond, amount, extra)
        args = (task_id, r, "bafkreievidence")
        money = self._money(currency, bond, amount, extra)
        if self._send("challenge", self.market.challenge, args, who, error, **money) is None:
            return
        rm.challengers[who] = "open"
        rm.challenges += 1
        task.challenge_bonds += bond

    def _do_resolve(self, task_id: int, task: TaskModel | None, who: str, r: int, winner: str) -> None:
        """The arbiter upholds naming `winner`, or rejects every challenge (winner zero)."""
        t = self._tick()
        error = "UnknownTask" if task is None else None
        if error is None:
            rm = task.round(r)
            window_end = rm.accepted_at + task.params["challengeDuration"]
            if who != task.arbiter:
                error = "NotArbiter"
            elif rm.status != ACCEPTED or rm.challenges == 0 or rm.outcome != NO_OUTCOME:
                error = "NoChallenge"
            elif t >= window_end + task.params["challengeDuration"]:
                error = "ChallengeWindowClosed"
            elif winner == ZERO_ADDRESS and t < window_end:
                error = "ChallengeWindowOpen"
            elif winner != ZERO_ADDRESS and rm.challengers.get(winner) != "open":
                error = "NotAChallenger"
        upheld = winner != ZERO_ADDRESS
        action = "resolveChallenge (upheld)" if upheld else "resolveChallenge (rejected)"
        args = (task_id, r, winner)
        if (
            self._send(action, self.market.resolveChallenge, args, who, error, currency=self._currency(task))
            is None
        ):
            return
        bond = task.params["challengeBond"]
        if not upheld:  # every challenge bond of the round burns
            rm.outcome = REJECTED
            lost = bond * rm.challenges
            task.challenge_bonds -= lost
            task.burned += lost
            return
        rm.outcome = UPHELD
        rm.challengers[winner] = "settled"
        slashed = 0
        for v in task.validators:
            if rm.proposals.get(v) == rm.accepted_key and task.bond[v]:
                slashed += task.bond[v]
                task.bonds -= task.bond[v]
                task.bond[v] = 0
                task.bonded[v] = False
        reward = slashed // 2
        task.burned += slashed - reward
        task.challenge_bonds -= bond
        self.credits[task.currency][winner] += bond + reward
        self._halt(task, r, t)

    def _do_finalize(self, task_id: int, task: TaskModel | None, who: str, r: int) -> None:
        t = self._tick()
        error = "UnknownTask" if task is None else None
        if error is None:
            rm = task.round(r)
            duration = task.params["challengeDuration"]
            if rm.status != ACCEPTED:
                error = "WrongRoundStatus"
            elif t < rm.accepted_at + duration:
                error = "ChallengeWindowOpen"
            elif self._earlier_pending(task, r):
                error = "PreviousRoundPending"
            elif rm.challenges and rm.outcome == NO_OUTCOME and t < rm.accepted_at + 2 * duration:
                error = "ChallengePending"
        args = (task_id, r)
        if (
            self._send(
                "finalizeRound", self.market.finalizeRound, args, who, error, currency=self._currency(task)
            )
            is None
        ):
            return
        if rm.challenges and rm.outcome == NO_OUTCOME:  # the arbiter let the window pass: bonds withdrawable
            rm.outcome = DISMISSED
            self._count("finalizeRound (challenges dismissed)", task.currency)
        rm.status = FINALIZED
        rm.finalized_at = t
        task.reserved -= rm.reward_total
        task.unclaimed += rm.reward_total
        task.pending -= 1
        for v in task.validators:
            if rm.proposals.get(v) != rm.accepted_key:
                self._slash_validator(task, v)

    def _earlier_pending(self, task: TaskModel, r: int) -> bool:
        """Whether the latest round before r that did not fail is still accepted (rounds settle in order)."""
        for k in range(r - 1, -1, -1):
            status = task.round(k).status
            if status == ACCEPTED:
                return True
            if status != FAILED:
                return False
        return False

    def _leaf(self, task: TaskModel | None, r: int, sel: int, slash: bool):
        """A leaf of the round's accepted result (the honest one if none): (index, account, amount, proof)."""
        rm = task.round(r) if task else RoundModel()
        result = rm.accepted or self._result(task, r, "honest")
        allocations = result.slash_allocations if slash else result.reward_allocations
        tree = result.slashes if slash else result.rewards
        if not allocations:
            return 0, self.contributor_pool[0], 1, []
        i = sel % len(allocations)
        return i, allocations[i].account, allocations[i].amount, tree.proof(i)

    def _do_claim(self, task_id, task, who, r, index, account, amount, proof, again=True) -> None:
        self._tick()
        error = "UnknownTask" if task is None else None
        if error is None:
            rm = task.round(r)
            tree = rm.accepted.rewards if rm.accepted else None
            if rm.status != FINALIZED:
                error = "WrongRoundStatus"
            elif index in rm.claimed:
                error = "AlreadyClaimed"
            elif not proof_valid(tree, index, account, amount, proof):
                error = "InvalidProof"
            elif amount > rm.reward_total - rm.reward_claimed:
                error = "ExceedsRoundRewards"
        args = (task_id, r, index, account, amount, proof)
        currency = self._currency(task)
        if self._send("claim", self.market.claim, args, who, error, currency=currency) is None:
            return
        rm.claimed.add(index)
        rm.reward_claimed += amount
        task.unclaimed -= amount
        self._pay(account, amount, currency)
        if again:  # the same leaf once more: must revert AlreadyClaimed
            self._tick()
            self._send("claim again", self.market.claim, args, who, "AlreadyClaimed", currency=currency)

    def _do_slash(self, task_id, task, who, r, index, account, amount, proof) -> None:
        t = self._tick()
        currency = self._currency(task)
        error = "UnknownTask" if task is None else None
        if error is None:
            rm = task.round(r)
            tree = rm.accepted.slashes if rm.accepted else None
            if rm.status != FINALIZED:
                error = "WrongRoundStatus"
            elif t > rm.finalized_at + task.params["challengeDuration"]:
                error = "SlashWindowClosed"
            elif index in rm.slashed:  # a leaf already applied: a no-op
                args = (task_id, r, index, account, amount, proof)
                fn = self.market.slashContributor
                self._send("slashContributor (no-op)", fn, args, who, None, currency=currency)
                return
            elif not proof_valid(tree, index, account, amount, proof):
                error = "InvalidProof"
        args = (task_id, r, index, account, amount, proof)
        if (
            self._send("slashContributor", self.market.slashContributor, args, who, error, currency=currency)
            is None
        ):
            return
        rm.slashed.add(index)
        slashed = min(amount, task.stake.get(account, 0))
        task.stake[account] = task.stake.get(account, 0) - slashed
        task.stakes -= slashed
        task.escrow += slashed
        if task.stake[account] == 0 and task.joined.get(account):  # nothing left at stake: the slot goes
            task.joined[account] = False
            task.active -= 1
        if slashed < amount:
            self._count("slashContributor (capped)", currency)

    def _do_cancel(self, task_id: int, task: TaskModel | None, who: str) -> None:
        t = self._tick()
        error = self._active_error(task)
        if error is None and who != task.owner:
            error = "NotOwner"
        elif error is None and task.round(task.current).reveals:
            error = "RoundHasReveals"
        currency = self._currency(task)
        if (
            self._send("cancelTask", self.market.cancelTask, (task_id,), who, error, currency=currency)
            is None
        ):
            return
        task.status = TASK_CANCELLED
        task.closed_at = t
        self._refund(task)

    def _do_withdraw_refund(self, task_id: int, task: TaskModel | None, who: str) -> None:
        self._tick()
        error = "UnknownTask" if task is None else None
        if error is None:
            if who != task.owner:
                error = "NotOwner"
            elif task.status == TASK_ACTIVE:
                error = "TaskStillActive"
            elif task.escrow == 0:
                error = "NothingToWithdraw"
        fn, currency = self.market.withdrawRefund, self._currency(task)
        if self._send("withdrawRefund", fn, (task_id,), who, error, currency=currency) is None:
            return
        self._refund(task)

    def _do_withdraw_bond(self, task_id: int, task: TaskModel | None, who: str) -> None:
        self._tick()
        error = "UnknownTask" if task is None else None
        if error is None:
            if who not in task.validators:
                error = "NotValidator"
            elif task.status == TASK_ACTIVE:
                error = "TaskStillActive"
            elif task.pending:
                error = "RoundsPending"
            elif task.bond[who] == 0:
                error = "NothingToWithdraw"
        fn, currency = self.market.withdrawBond, self._currency(task)
        if self._send("withdrawBond", fn, (task_id,), who, error, currency=currency) is None:
            return
        amount, task.bond[who] = task.bond[who], 0
        task.bonds -= amount
        self._pay(who, amount, currency)

    def _do_withdraw_credit(self, who: str, currency: str = ETH) -> None:
        """withdrawCredit, or withdrawTokenCredit(token) for the token."""
        self._tick()
        credits = self.credits[currency]
        error = None if credits[who] else "NothingToWithdraw"
        if currency == ETH:
            fn, args = self.market.withdrawCredit, ()
        else:
            fn, args = self.market.withdrawTokenCredit, (currency,)
        if self._send("withdrawCredit", fn, args, who, error, currency=currency) is None:
            return
        amount, credits[who] = credits[who], 0
        self._pay(who, amount, currency)

    # ------------------------------------------------------------ choosing rounds and accounts

    def _rounds_with(self, task: TaskModel | None, *statuses: int) -> list[int]:
        if task is None:
            return []
        return [r for r, rm in sorted(task.rounds.items()) if rm.status in statuses]

    def _pick_round(self, task: TaskModel | None, sel: int, *statuses: int) -> int:
        preferred = self._rounds_with(task, *statuses)
        if preferred and sel < 12:
            return preferred[sel % len(preferred)]
        return sel % 4

    # ------------------------------------------------------------ rules

    @initialize(params=ST_PARAMS, mask=ST_MASK, joiners=ST_JOINERS)
    def initialize_task(self, params, mask, joiners):
        """Task 1, its validators bonded (all but one if `mask`), its first `joiners` contributors joined."""
        self._step()
        self._create_valid(params, self.owner)
        task = self.tasks[0]
        for i, v in enumerate(task.validators, start=1):
            if i != mask and task.bond[v] < task.params["validatorBond"]:
                self._do_bond(task.id, task, v, task.params["validatorBond"] - task.bond[v])
        for who in self.contributor_pool[:joiners]:
            self._do_join(task.id, task, who, task.params["contributorStake"])

    @rule(params=ST_PARAMS, variant=ST_CREATE)
    def rule_create_task(self, params, variant):
        self._step()
        if variant <= 1 and len(self.tasks) < 2:
            self._create_valid(params, self.owner if variant else self.outsider)
            return
        fields = dict(zip(PARAM_FIELDS, task_params(), strict=True))
        budget, validators, spec = params["budget"], list(self.validator_pool), SPEC
        bad = 3 + variant % 9
        if bad == 3:
            budget = 0
        elif bad == 4:
            fields["numRounds"] = 1001 if variant % 2 else 0
        elif bad == 5:
            fields["minContributors"], fields["maxContributors"] = 3, 2
        elif bad == 6:
            fields["challengeDuration"] = fields["validationDuration"] - 1
        elif bad == 7:
            validators = []
        elif bad == 8:
            fields["quorum"] = 1  # not more than half of three
        elif bad == 9:
            fields["validatorSlash"] = fields["validatorBond"] + 1
        elif bad == 10:
            validators = [*validators, validators[0]]
        else:
            spec = "x" * 129
        # a token task approves one unit short of the budget in one variant out of nine (bad 5 otherwise)
        self._do_create(
            self.owner, fields, budget, validators, spec, self._drawn_currency(params), short=variant == 11
        )

    @rule(task=ST_TASK, who=ST_SEL, rare=ST_RARE)
    def rule_bond(self, task, who, rare):
        self._step()
        task_id, t = self._task(task)
        unbonded = [v for v in t.validators if t.bond[v] < t.params["validatorBond"]] if t else []
        account = self._pick(who, unbonded, self.everyone)
        value = t.params["validatorBond"] - t.bond.get(account, 0) if t else 10_000
        self._do_bond(task_id, t, account, *self._bring(t, value, rare))

    @rule(task=ST_TASK, who=ST_SEL, rare=ST_RARE)
    def rule_join(self, task, who, rare):
        self._step()
        task_id, t = self._task(task)
        unjoined = [a for a in self.contributor_pool if not (t and t.joined.get(a))]
        value = t.params["contributorStake"] if t else 1_000
        self._do_join(task_id, t, self._pick(who, unjoined, self.everyone[1:8]), *self._bring(t, value, rare))

    @staticmethod
    def _bring(t: TaskModel | None, required: int, rare: int) -> tuple[int, int]:
        """What a rule brings for `required` (amount, extra: see _money): in ETH the right value, or (rare 0)
        one wei too much; in a token the right approval, with (rare 0) one wei sent along, or (rare 1) an
        approval one unit short (of a nonzero amount)."""
        if t is None or t.currency == ETH:
            return required + (rare == 0), 0
        return max(required - (rare == 1), 0), int(rare == 0)

    @rule(task=ST_TASK, who=ST_SEL)
    def rule_leave(self, task, who):
        self._step()
        task_id, t = self._task(task)
        joined = [a for a in self.contributor_pool if t and t.joined.get(a)]
        self._do_leave(task_id, t, self._pick(who, joined, self.everyone))

    @rule(task=ST_TASK, who=ST_SEL, rare=ST_RARE)
    def rule_commit(self, task, who, rare):
        self._step()
        task_id, t = self._task(task)
        r = (t.current if t else 0) + (rare == 1)
        waiting = [a for a in self.contributor_pool if t and t.joined.get(a) and a not in t.round(r).updates]
        self._do_commit(task_id, t, self._pick(who, waiting, self.everyone), r, empty=rare == 0)

    @rule(task=ST_TASK, who=ST_SEL, rare=ST_RARE)
    def rule_reveal(self, task, who, rare):
        self._step()
        task_id, t = self._task(task)
        r = t.current if t else 0
        rm = t.round(r) if t else RoundModel()
        waiting = [a for a in rm.updates if a not in rm.revealed]
        self._do_reveal(task_id, t, self._pick(who, waiting, self.everyone), r, variant=rare)

    @rule(task=ST_TASK, who=ST_SEL, kind=ST_KIND, rare=ST_RARE)
    def rule_propose(self, task, who, kind, rare):
        self._step()
        task_id, t = self._task(task)
        accepted = self._rounds_with(t, ACCEPTED)
        r = accepted[-1] if rare == 0 and accepted else (t.current if t else 0)
        rm = t.round(r) if t else RoundModel()
        waiting = [v for v in t.validators if v not in rm.proposals] if t else []
        self._do_propose(task_id, t, self._pick(who, waiting, self.everyone), r, kind)

    @rule(task=ST_TASK, who=ST_SEL)
    def rule_fail_round(self, task, who):
        self._step()
        task_id, t = self._task(task)
        self._do_fail(task_id, t, self.everyone[who % 10])

    @rule(task=ST_TASK, rnd=ST_SEL, who=ST_SEL, rare=ST_RARE)
    def rule_challenge(self, task, rnd, who, rare):
        self._step()
        task_id, t = self._task(task)
        r = self._pick_round(t, rnd, ACCEPTED)
        value = t.params["challengeBond"] if t else 5_000
        self._do_challenge(task_id, t, self.everyone[who % 10], r, *self._bring(t, value, rare))

    @rule(task=ST_TASK, rnd=ST_SEL, upheld=ST_BOOL, rare=ST_RARE)
    def rule_resolve(self, task, rnd, upheld, rare):
        self._step()
        task_id, t = self._task(task)
        challenged = [r for r in self._rounds_with(t, ACCEPTED) if self._unresolved(t, r)]
        r = challenged[rnd % len(challenged)] if challenged and rnd < 12 else rnd % 4
        who = self.everyone[rare] if rare < 2 or t is None else t.arbiter
        winner = ZERO_ADDRESS
        if upheld:  # the first open challenger, or (rare == 2) an account that did not challenge
            rm = t.round(r) if t else RoundModel()
            open_ = [a for a, state in rm.challengers.items() if state == "open"]
            winner = open_[0] if open_ and rare != 2 else self.outsider
        self._do_resolve(task_id, t, who, r, winner)

    @staticmethod
    def _unresolved(t: TaskModel, r: int) -> bool:
        rm = t.round(r)
        return rm.challenges > 0 and rm.outcome == NO_OUTCOME

    @rule(task=ST_TASK, rnd=ST_SEL, who=ST_SEL)
    def rule_finalize(self, task, rnd, who):
        self._step()
        task_id, t = self._task(task)
        self._do_finalize(task_id, t, self.everyone[who % 10], self._pick_round(t, rnd, ACCEPTED))

    @rule(task=ST_TASK, rnd=ST_SEL, leaf=ST_SEL, rare=ST_RARE)
    def rule_claim(self, task, rnd, leaf, rare):
        self._step()
        task_id, t = self._task(task)
        r = self._pick_round(t, rnd, FINALIZED)
        index, account, amount, proof = self._leaf(t, r, leaf, slash=False)
        if rare == 0:
            amount += 1  # a leaf the tree does not hold
        elif rare == 1:
            index += 1
        self._do_claim(task_id, t, self.everyone[leaf % 10], r, index, account, amount, proof)

    @rule(task=ST_TASK, rnd=ST_SEL, leaf=ST_SEL, rare=ST_RARE)
    def rule_slash(self, task, rnd, leaf, rare):
        self._step()
        task_id, t = self._task(task)
        r = self._pick_round(t, rnd, FINALIZED)
        index, account, amount, proof = self._leaf(t, r, leaf, slash=True)
        if rare == 0:
            amount += 1
        self._do_slash(task_id, t, self.everyone[leaf % 10], r, index, account, amount, proof)

    @rule(task=ST_TASK, who=ST_SEL)
    def rule_cancel(self, task, who):
        self._step()
        task_id, t = self._task(task)
        self._do_cancel(task_id, t, t.owner if t and who < 2 else self.everyone[who % 10])

    @rule(task=ST_TASK, who=ST_SEL)
    def rule_withdraw_refund(self, task, who):
        self._step()
        task_id, t = self._task(task)
        self._do_withdraw_refund(task_id, t, t.owner if t and who < 12 else self.everyone[who % 10])

    @rule(task=ST_TASK, who=ST_SEL)
    def rule_withdraw_bond(self, task, who):
        self._step()
        task_id, t = self._task(task)
        self._do_withdraw_bond(task_id, t, self._pick(who, self.validator_pool, self.everyone))

    def _open_to_challenge(self) -> list[tuple[TaskModel, int]]:
        """Accepted rounds whose challenge window is open and that nobody challenged yet."""
        return [
            (t, r)
            for t in self.tasks
            for r in self._rounds_with(t, ACCEPTED)
            if t.round(r).challenges == 0
            and self.now + 1 < t.round(r).accepted_at + t.params["challengeDuration"]
        ]

    def _oldest_pending(self, t: TaskModel, r: int) -> bool:
        return r == self._rounds_with(t, ACCEPTED)[0]

    def _dispute(self, sel: int, who: int, uphold: bool) -> None:
        """Two challenges of an accepted round (the first does not block the second). The arbiter upholds
        naming the first challenger (the payout is withdrawn, the task halts and every contributor of it
        tries to leave); or, for the oldest pending round and `uphold` false, rejects both once the challenge
        window is over (sel odd; the bonds burn) or lets the arbitration window lapse (sel even): the round
        is then finalized and one slash leaf applied."""
        self._step()
        candidates = self._open_to_challenge()
        t, r = candidates[sel % len(candidates)]
        challengers = (9, 4, 5, 6, 7, 0)
        challenger = self.everyone[challengers[who % 6]]
        bond = t.params["challengeBond"]
        self._do_challenge(t.id, t, challenger, r, bond)
        self._do_challenge(t.id, t, self.everyone[challengers[(who + 1) % 6]], r, bond)
        if uphold or not self._oldest_pending(t, r):
            self._do_resolve(t.id, t, t.arbiter, r, challenger)
            self._do_withdraw_credit(challenger, t.currency)
            for a in self.contributor_pool:
                if t.joined.get(a):
                    self._do_leave(t.id, t, a)
            return
        if sel % 2:
            self._jump_to(t.round(r).accepted_at + t.params["challengeDuration"])
            self._do_resolve(t.id, t, t.arbiter, r, ZERO_ADDRESS)
        self._finalize_after_jump(t, r)
        result = t.round(r).accepted
        if t.round(r).status == FINALIZED and result.slash_allocations:
            self._slash_leaf(t, r, sel % len(result.slash_allocations))

    @precondition(lambda self: self._open_to_challenge())
    @rule(sel=ST_SEL, who=ST_SEL, uphold=ST_BOOL)
    def rule_dispute(self, sel, who, uphold):
        self._dispute(sel, who, uphold)

    @rule(who=ST_SEL)
    def rule_withdraw_credit(self, who):
        self._step()
        owed = [(a, c) for c in self.currencies for a in self.everyone if self.credits[c][a]]
        if owed and who < 12:
            self._do_withdraw_credit(*owed[who % len(owed)])
        else:  # anyone, in ETH or the token (who % 2)
            self._do_withdraw_credit(self.everyone[who % 10], self.currencies[who % 2])

    @rule(dt=ST_DT)
    def rule_sleep(self, dt):
        """A time jump: the next transaction lands dt seconds later."""
        self._step()
        self.now += dt
        self.stats["time jumps"] += 1

    @rule(task=ST_TASK, offset=ST_OFFSET)
    def rule_sleep_to_deadline(self, task, offset):
        """Jump to one second before, at or after the task's next deadline, to probe the boundaries."""
        self._step()
        _, t = self._task(task)
        if t is None:
            return
        duration = t.params["challengeDuration"]
        deadlines = []
        rm = t.round(t.current)
        if t.status == TASK_ACTIVE:
            deadlines += [rm.starts_at, rm.commit_end, rm.reveal_end, rm.validate_end]
        for rm in t.rounds.values():
            if rm.status == ACCEPTED:
                deadlines += [rm.accepted_at + duration, rm.validate_end]
                if rm.challenges and rm.outcome == NO_OUTCOME:
                    deadlines.append(rm.accepted_at + 2 * duration)
            elif rm.status == FINALIZED:
                deadlines.append(rm.finalized_at + duration + 1)
        upcoming = [d for d in deadlines if d > self.now + 1]
        if upcoming:
            self._jump_to(min(upcoming) + offset)

    @rule(task=ST_TASK, choices=ST_CHOICES, params=ST_PARAMS)
    def rule_progress(self, task, choices, params):
        """The autopilot: one to three steps of a task's happy path or wind-down. It is listed five
        times (rule_progress_2 to _5 are the same) so that it weighs about a sixth of the draws."""
        self._autopilot(task, choices, params)

    @rule(task=ST_TASK, choices=ST_CHOICES, params=ST_PARAMS)
    def rule_progress_2(self, task, choices, params):
        self._autopilot(task, choices, params)

    @rule(task=ST_TASK, choices=ST_CHOICES, params=ST_PARAMS)
    def rule_progress_3(self, task, choices, params):
        self._autopilot(task, choices, params)

    @rule(task=ST_TASK, choices=ST_CHOICES, params=ST_PARAMS)
    def rule_progress_4(self, task, choices, params):
        self._autopilot(task, choices, params)

    @rule(task=ST_TASK, choices=ST_CHOICES, params=ST_PARAMS)
    def rule_progress_5(self, task, choices, params):
        self._autopilot(task, choices, params)

    def _autopilot(self, task, choices, params):
        self._step()
        for choice in choices:
            _, t = self._task(task % 2)
            candidates = self._candidates(t, choice, params)
            self._rng(choice).choice(candidates)()

    def _candidates(self, t: TaskModel, choice: int, params: dict) -> list:
        """Actions that move `t` forward (each listed as often as it should weigh)."""
        out = []

        def add(weight, fn, *args, **kwargs):
            out.extend([lambda: fn(*args, **kwargs)] * weight)

        next_t = self.now + 1
        p = t.params
        duration = p["challengeDuration"]
        if t.status == TASK_ACTIVE:
            r = t.current
            rm = t.round(r)
            phase = self._phase(t, rm, next_t)
            for v in t.validators:
                if t.bond[v] < p["validatorBond"]:
                    add(1, self._do_bond, t.id, t, v, p["validatorBond"] - t.bond[v])
            unjoined = [a for a in self.contributor_pool if not t.joined.get(a)]
            enough = t.active >= p["minContributors"]
            acted = len(out)
            if phase in (JOIN, COMMIT) and unjoined and t.active < p["maxContributors"]:
                add(1 if enough else 4, self._do_join, t.id, t, unjoined[0], p["contributorStake"])
            if phase == COMMIT and enough:
                for a in self.contributor_pool:
                    if t.joined.get(a) and a not in rm.updates and self._last_unopened(t, a, next_t) is None:
                        add(3, self._do_commit, t.id, t, a, r)
            elif phase == REVEAL:
                for a in rm.updates:
                    if a not in rm.revealed:
                        add(3, self._do_reveal, t.id, t, a, r)
            elif phase == VALIDATE:
                if rm.reveals < p["minContributors"]:
                    add(3, self._do_fail, t.id, t, self.outsider)
                else:
                    for v in t.validators:
                        if t.bond[v] == p["validatorBond"] and v not in rm.proposals:
                            add(6, self._do_propose, t.id, t, v, r, "honest")
                            add(2, self._do_propose, t.id, t, v, r, "dissent")
            elif phase == EXPIRED:
                add(3, self._do_fail, t.id, t, self.outsider)
            if len(out) == acted and phase in (JOIN, COMMIT, REVEAL, VALIDATE):
                # nobody left to act in this phase: on to its end
                deadline = {JOIN: rm.starts_at, COMMIT: rm.commit_end, REVEAL: rm.reveal_end}
                add(2, self._jump_to, deadline.get(phase, rm.validate_end))
        accepted = self._rounds_with(t, ACCEPTED)
        for r in accepted:
            rm = t.round(r)
            challenger = self.everyone[(4, 5, 9)[choice % 3]]
            if challenger not in rm.challengers and next_t < rm.accepted_at + duration:
                add(5, self._do_challenge, t.id, t, challenger, r, p["challengeBond"])
            if self._unresolved(t, r) and next_t < rm.accepted_at + 2 * duration:
                first = next(a for a, state in rm.challengers.items() if state == "open")
                add(4, self._do_resolve, t.id, t, t.arbiter, r, first)
                if next_t >= rm.accepted_at + duration:
                    add(4, self._do_resolve, t.id, t, t.arbiter, r, ZERO_ADDRESS)
                else:
                    add(4, self._reject_after_jump, t, r)
        if accepted:
            add(3, self._finalize_after_jump, t, accepted[0])
        for r in self._rounds_with(t, FINALIZED):
            rm = t.round(r)
            result = rm.accepted
            for i in range(len(result.reward_allocations)):
                if i not in rm.claimed:
                    add(2, self._claim_leaf, t, r, i)
            if next_t <= rm.finalized_at + duration:
                for i in range(len(result.slash_allocations)):
                    if i not in rm.slashed:
                        add(3, self._slash_leaf, t, r, i)
        if t.status != TASK_ACTIVE:
            if t.escrow:
                add(2, self._do_withdraw_refund, t.id, t, t.owner)
            if not t.pending:
                for v in t.validators:
                    if t.bond[v]:
                        add(2, self._do_withdraw_bond, t.id, t, v)
            if len(self.tasks) < 2:
                add(2, self._create_valid, params, self.owner)
        if t.status != TASK_ACTIVE:  # contributors leave once the task is over (rule_leave tries any time)
            for a in self.contributor_pool:
                if t.joined.get(a):
                    unlock = self._unlock_time(t, a)
                    if unlock is not None:
                        add(2, self._leave_after_jump, t, a, unlock)
                    else:
                        add(1, self._do_leave, t.id, t, a)  # an attempt: a round still holds the stake
        for c in self.currencies:
            for a in self.everyone:
                if self.credits[c][a]:
                    add(3, self._do_withdraw_credit, a, c)
        if t.status == TASK_ACTIVE and choice % 64 == 0:
            add(1, self._do_cancel, t.id, t, t.owner)
        if not out:
            add(1, self._jump_to, self.now + 30)
        return out

    def _claim_leaf(self, t: TaskModel, r: int, i: int) -> None:
        result = t.round(r).accepted
        leaf = result.reward_allocations[i]
        self._do_claim(t.id, t, self.outsider, r, i, leaf.account, leaf.amount, result.rewards.proof(i))

    def _slash_leaf(self, t: TaskModel, r: int, i: int) -> None:
        result = t.round(r).accepted
        leaf = result.slash_allocations[i]
        self._do_slash(t.id, t, self.outsider, r, i, leaf.account, leaf.amount, result.slashes.proof(i))

    def _finalize_after_jump(self, t: TaskModel, r: int) -> None:
        rm = t.round(r)
        duration = t.params["challengeDuration"]
        ready = rm.accepted_at + duration
        if self._unresolved(t, r):
            ready += duration  # the arbitration window must be over
        self._jump_to(ready)
        self._do_finalize(t.id, t, self.outsider, r)

    def _reject_after_jump(self, t: TaskModel, r: int) -> None:
        """The arbiter rejects every challenge of round r as soon as its challenge window is over."""
        self._jump_to(t.round(r).accepted_at + t.params["challengeDuration"])
        self._do_resolve(t.id, t, t.arbiter, r, ZERO_ADDRESS)

    def _unlock_time(self, t: TaskModel, who: str) -> int | None:
        """When `who`'s stake is free (per leave's NatSpec), if only finalized slash windows hold it."""
        unlock = 0
        for r in t.committed.get(who, ()):
            rm = t.round(r)
            if rm.status == FINALIZED:
                unlock = max(unlock, rm.finalized_at + t.params["challengeDuration"] + 1)
            elif not self._settled(t, r, self.now + 1):
                return None
        return unlock

    def _leave_after_jump(self, t: TaskModel, who: str, unlock: int) -> None:
        self._jump_to(unlock)
        self._do_leave(t.id, t, who)

    # ------------------------------------------------------------ the invariant

    @invariant()
    def check_model(self):
        m, token = self.market, self.currencies[1]
        items: list[tuple] = []
        for currency in self.currencies:  # ETH as ever, then the token
            total = (m.totalCredits,) if currency == ETH else (m.totalTokenCredits, token)
            items += [self._balance_of(currency, m.address), total]
            items += [self._balance_of(currency, a) for a in self.everyone]
            if currency == ETH:
                items += [(m.credits, a) for a in self.everyone]
            else:
                items += [(m.tokenCredits, token, a) for a in self.everyone]
        for t in self.tasks:
            items += [(m.getTask, t.id), (m.taskHoldings, t.id), (m.tokenOf, t.id)]
            items += [(m.contributorInfo, t.id, a) for a in self.contributor_pool]
            items += [(m.validatorInfo, t.id, v) for v in t.validators]
            for r, rm in sorted(t.rounds.items()):
                items.append((m.getRound, t.id, r))
                if rm.accepted is not None:
                    result = rm.accepted
                    items += [(m.isClaimed, t.id, r, i) for i in range(len(result.reward_allocations))]
                    items += [(m.isSlashed, t.id, r, i) for i in range(len(result.slash_allocations))]
        values = iter(self._batch(items))

        market_balance, total_credits = {}, {}
        for c in self.currencies:
            kind = "ETH" if c == ETH else "token"
            market_balance[c], total_credits[c] = next(values), next(values)
            for a in self.everyone:
                assert next(values) == self.balances[c][a], f"{kind} balance of {a}"
            credits = [next(values) for _ in self.everyone]
            assert credits == [self.credits[c][a] for a in self.everyone], f"{kind} credits"
            assert total_credits[c] == sum(credits), f"{kind} total credits"
            assert market_balance[c] == self.market_balance[c], f"market {kind} balance"
        holdings_sum = dict.fromkeys(self.currencies, 0)
        for t in self.tasks:
            task, holdings, currency = next(values), next(values), next(values)
            assert currency == t.currency, f"task {t.id}: tokenOf"
            buckets = [task[i] for i in range(8, 15)]
            assert holdings == sum(buckets), f"task {t.id}: taskHoldings != sum of buckets"
            holdings_sum[t.currency] += holdings
            expected = [t.escrow, t.reserved, t.unclaimed, t.stakes, t.bonds, t.challenge_bonds, t.burned]
            assert buckets == expected, f"task {t.id} buckets (escrow..burned)"
            state = [task[2], task[3], task[4], task[5], task[6], task[7], str(task[1])]
            model = [t.status, t.current, t.active, t.pending, t.closed_at, t.round_budget, t.owner]
            assert state == model, f"task {t.id}"
            stakes = 0
            for a in self.contributor_pool:
                joined, _, _, stake = next(values)
                assert (joined, stake) == (bool(t.joined.get(a)), t.stake.get(a, 0)), f"task {t.id} {a}"
                stakes += stake
            assert task[11] == stakes, f"task {t.id}: stakes != sum of contributor stakes"
            bonds = 0
            for v in t.validators:
                listed, bonded, bond = next(values)
                assert (listed, bonded, bond) == (True, t.bonded[v], t.bond[v]), f"task {t.id} validator {v}"
                bonds += bond
            assert task[12] == bonds, f"task {t.id}: bonds != sum of validator bonds"
            for r, rm in sorted(t.rounds.items()):
                got = next(values)
                where = f"task {t.id} round {r}"
                assert got[14] <= got[13] <= t.round_budget, (
                    f"{where}: rewardClaimed <= rewardTotal <= budget"
                )
                schedule = [got[0], got[1], got[2], got[5]]
                assert schedule == [rm.starts_at, rm.commit_end, rm.reveal_end, rm.validate_end], where
                counters = [got[3], got[4], got[8], got[6], got[7], got[13], got[14], got[15], got[16]]
                assert counters == [
                    rm.commits,
                    rm.reveals,
                    rm.status,
                    rm.accepted_at,
                    rm.finalized_at,
                    rm.reward_total,
                    rm.reward_claimed,
                    rm.challenges,
                    rm.outcome,
                ], where
                if rm.accepted is not None:
                    assert got[11] == "0x" + rm.accepted.rewards.root.hex(), where
                    claimed = [next(values) for _ in rm.accepted.reward_allocations]
                    assert claimed == [i in rm.claimed for i in range(len(claimed))], f"{where}: isClaimed"
                    slashed = [next(values) for _ in rm.accepted.slash_allocations]
                    assert slashed == [i in rm.slashed for i in range(len(slashed))], f"{where}: isSlashed"
        for c in self.currencies:  # per currency: its tasks' holdings and its credits
            kind = "ETH" if c == ETH else "token"
            assert market_balance[c] == holdings_sum[c] + total_credits[c], (
                f"market {kind} balance != {kind} tasks' holdings + {kind} credits"
            )


def run_machine(market, token, in_token: bool) -> None:
    """Run the machine with its tasks in ETH or in `token`, print what it did, and require every main action
    to have succeeded at least once."""
    MarketMachine.configure(market, token, in_token)
    MarketMachine.counts.clear()
    MarketMachine.stats.clear()
    # brownie loads brownie-config.yaml's hypothesis section (max_examples, stateful_step_count) as the
    # current profile; only the step-by-step printing that -s switches on is turned off.
    # derandomize: every run (and CI) explores the same sequences, so the coverage check below cannot flake.
    settings = hypothesis.settings(hypothesis.settings(), verbosity=Verbosity.normal, derandomize=True)
    chain.snapshot()
    run_state_machine_as_test(MarketMachine, settings=settings)
    stats, counts = MarketMachine.stats, MarketMachine.counts
    print(
        f"\nexamples x steps: {stats['examples']} x {settings.stateful_step_count} "
        f"(max_examples {settings.max_examples}; {stats['steps']} steps run, "
        f"{stats['time jumps']} time jumps, {stats['transactions']} transactions)"
    )
    for action, count in sorted(counts.items()):
        print(f"  {count:6d}  {action}")
    suffix = " [token]" if in_token else ""
    missing = [action for action in MAIN_ACTIONS if not counts[action + suffix]]
    assert not missing, f"never succeeded in any example: {missing}"


def test_market_state_machine(market, token):
    """The machine on ETH tasks (test_stateful_tokens.py runs it on token tasks, beside this file)."""
    run_machine(market, token, in_token=False)


@pytest.mark.parametrize("in_token", [False, True], ids=["eth", "erc20"])
def test_replay_leave_before_an_earlier_accepted_round_settles(market, token, in_token):
    """A fixed sequence through the same model: one contributor commits to rounds 0, 1 and 2; rounds 0 and
    1 are accepted; round 1 is challenged and the challenge upheld (round 1 voided, the task halted) while
    round 0 is still accepted and not finalized. leave's NatSpec keeps the stake locked until every round
    the caller committed to is settled, so the model expects StakeLocked; finalizing round 0 would then
    apply its slash leaf to that stake."""
    MarketMachine.configure(market, token)
    chain.snapshot()
    m = MarketMachine()
    params = {
        "numRounds": 3,
        "minContributors": 1,
        "maxContributors": 1,
        "joinDuration": 0,
        "commitDuration": 60,
        "revealDuration": 60,
        "validationDuration": 60,
        "challengeDuration": 300,
        "quorum": 2,
        "contributorStake": 1_000,
        "validatorBond": 10_000,
        "validatorSlash": 2_500,
        "challengeBond": 5_000,
        "arbiter": "arbiter",
        "budget": 3_000_000,
        "token": in_token,
    }
    m.initialize_task(params, 0, 1)
    t, contributor = m.tasks[0], m.contributor_pool[0]
    for r in (0, 1):
        m._do_commit(t.id, t, contributor, r)
        m._do_reveal(t.id, t, contributor, r)
        for validator in m.validator_pool[:2]:
            m._do_propose(t.id, t, validator, r, "honest")
    m._do_commit(t.id, t, contributor, 2)
    m._do_challenge(t.id, t, m.outsider, 1, params["challengeBond"])
    m._do_resolve(t.id, t, t.arbiter, 1, m.outsider)
    m.check_model()
    assert (t.round(0).status, t.round(1).status, t.status) == (ACCEPTED, VOIDED, TASK_HALTED)
    m._do_leave(t.id, t, contributor)  # the model expects StakeLocked (round 0 is not settled)
    m.check_model()


def test_replay_token_payments(market, token):
    """Every way to pay a token task wrongly, through the same model (the machine draws them only now and
    then): a task created with an approval one unit short of its budget; a validator bond, a join and a
    challenge each with a wei sent along (WrongAmount) and with an approval one unit short (the token's
    ERC20InsufficientAllowance), then paid right; the invariant after every step."""
    MarketMachine.configure(market, token)
    MarketMachine.counts.clear()
    chain.snapshot()
    m = MarketMachine()
    params = {
        "numRounds": 1,
        "minContributors": 1,
        "maxContributors": 2,
        "joinDuration": 0,
        "commitDuration": 60,
        "revealDuration": 60,
        "validationDuration": 60,
        "challengeDuration": 300,
        "quorum": 2,
        "contributorStake": 1_000,
        "validatorBond": 10_000,
        "validatorSlash": 2_500,
        "challengeBond": 5_000,
        "arbiter": "arbiter",
        "budget": 3_000_000,
        "token": True,
    }
    fields = {**dict(zip(PARAM_FIELDS, task_params(), strict=True)), **params, "arbiter": m.arbiter_account}
    del fields["budget"], fields["token"]
    m._do_create(m.owner, fields, params["budget"], list(m.validator_pool), SPEC, m.currencies[1], short=True)
    assert not m.tasks
    m.check_model()
    m.initialize_task(params, 1, 0)  # every validator but the first bonds
    t, validator, contributor = m.tasks[0], m.validator_pool[0], m.contributor_pool[0]
    assert t.currency == str(token.address)
    for do, who in ((m._do_bond, validator), (m._do_join, contributor)):
        required = t.params["validatorBond"] if who == validator else t.params["contributorStake"]
        for amount, extra in ((required, 1), (required - 1, 0), (required, 0)):
            do(t.id, t, who, amount, extra)
            m.check_model()
    m._do_commit(t.id, t, contributor, 0)
    m._do_reveal(t.id, t, contributor, 0)
    for v in m.validator_pool[:2]:
        m._do_propose(t.id, t, v, 0, "honest")
    assert t.round(0).status == ACCEPTED
    bond = t.params["challengeBond"]
    for amount, extra in ((bond, 1), (bond - 1, 0), (bond, 0)):
        m._do_challenge(t.id, t, m.outsider, 0, amount, extra)
        m.check_model()
    counts = MarketMachine.counts
    for action in ("createTask", "bondValidator", "join", "challenge"):
        if action != "createTask":
            assert counts[f"{action} [token]"] >= 1, action
            assert counts[f"{action}: WrongAmount [token]"] >= 1, action
        assert counts[f"{action}: ERC20InsufficientAllowance [token]"] >= 1, action
    assert t.challenge_bonds == bond and t.stake[contributor] == 1_000


def test_replay_token_dispute(market, token):
    """A token task through the dispute path (TOKEN_RARE), which a run reaches only a few times, by the
    machine's own moves, with the invariant after each: round 0 challenged twice, the challenges rejected at
    the end of the window, the round finalized, a slash leaf and a reward claimed; round 1 challenged and the
    challenge upheld, the winner's token credit withdrawn, the contributor leaving; the refund and the bonds
    withdrawn; a second token task cancelled."""
    MarketMachine.configure(market, token)
    MarketMachine.counts.clear()
    chain.snapshot()
    m = MarketMachine()
    params = {
        "numRounds": 2,
        "minContributors": 1,
        "maxContributors": 1,
        "joinDuration": 0,
        "commitDuration": 900,  # round 1 still takes commitments after round 0's dispute
        "revealDuration": 60,
        "validationDuration": 60,
        "challengeDuration": 300,
        "quorum": 2,
        "contributorStake": 1_000,
        "validatorBond": 10_000,
        "validatorSlash": 2_500,
        "challengeBond": 5_000,
        "arbiter": "arbiter",
        "budget": 3_000_000,
        "token": True,
    }
    m.initialize_task(params, 0, 1)
    t, contributor = m.tasks[0], m.contributor_pool[0]
    assert t.currency == str(token.address)

    def accept(r: int) -> None:
        m._do_commit(t.id, t, contributor, r)
        m._do_reveal(t.id, t, contributor, r)
        for validator in m.validator_pool[:2]:
            m._do_propose(t.id, t, validator, r, "honest")
        assert t.round(r).status == ACCEPTED
        m.check_model()

    accept(0)
    m._dispute(1, 0, False)  # odd sel, oldest pending round, not upheld: rejected, finalized, a slash leaf
    m.check_model()
    assert t.round(0).status == FINALIZED and t.round(0).outcome == REJECTED and t.round(0).slashed
    m._claim_leaf(t, 0, 0)
    m.check_model()
    accept(1)
    m._dispute(0, 0, True)  # upheld: the winner's credit withdrawn, the task halted, the contributor leaves
    m.check_model()
    assert t.status == TASK_HALTED and not any(m.credits[t.currency].values())
    m._do_withdraw_refund(t.id, t, t.owner)
    for validator in m.validator_pool:
        m._do_withdraw_bond(t.id, t, validator)
    m.check_model()
    m.initialize_task(params, 0, 0)
    m._do_cancel(2, m.tasks[1], m.owner)
    m.check_model()
    counts = MarketMachine.counts
    missing = [action for action in TOKEN_RARE if not counts[f"{action} [token]"]]
    assert not missing, f"never succeeded on the token task: {missing}"
