"""A stateful (hypothesis) test of the market's economics under attack (issue 12): honest and adversarial
actors move over one task, and once everything owed has been claimed and withdrawn, no honest party ends below
what it put in and no adversary above it.

The actors (anvil's ten accounts plus two local keys), their roles cast per example from a configuration
(``CONFIG_CHOICES``, drawn from one hypothesis integer):

- the task owner, accounts[0]: honest (it collects its refund) or hostile: it tries to cancel after reveals
  (and cancels before them), challenges honest rounds (and frauds, for the reward), tries to arbitrate and
  to take the escrow back early, and forfeits other people's commitments for the bounty;
- three validators, accounts[1:4], each honest or in the cartel (none, one, two or all three: a quorum-less
  minority, or a majority when quorum is 2). Honest ones propose the honest result, fail expired rounds,
  finalize, apply slash leaves and forfeit unopened commitments (the bounty). The cartel proposes a
  fraudulent result paying the round budget to its sock puppet (and, in some runs, slashing the honest
  contributors' whole stakes), tops its bonds up, tries to withdraw them early, to arbitrate and to finalize
  its fraud, and challenges honest rounds;
- honest contributors, two or three of accounts[4:7]: join, commit and reveal a good update every round,
  claim, leave;
- the cartel's sock puppet, accounts[7]: challenges the fraud (in some runs the moment it is accepted,
  before anybody honest can), claims the fraudulent reward, commits and reveals junk, leaves;
- the arbiter, accounts[8], independent and honest: upholds a challenge of a fraudulent round naming the
  first honest challenger if any, else the first challenger (in some runs at once, in others at the end of
  the arbitration window); rejects challenges of honest rounds after the challenge window (always in some
  runs, when hypothesis has it in others: otherwise they are dismissed at finalization);
- Sybil contributors, accounts[9] and two local keys: join, commit early to take the slots and never reveal
  (or reveal junk, which honest results slash), leave or commit again over an unopened commitment, forfeit
  each other, challenge honest rounds (or hunt a fraud's reward), claim other people's leaves.

Honest parties are diligent: each duty has a window (``Duty``) and is done at the latest ``MARGIN`` seconds
before it closes, before any other transaction or time jump could make it miss it: a contributor commits
in every round it can and reveals; a validator proposes the honest result; a watcher (the first honest
validator, else an honest contributor) challenges a fraudulent round; the arbiter rules; honest parties
fail expired rounds, finalize and apply slash leaves. Every other move, honest or not, and the passing of
time are drawn by hypothesis (``_act`` picks a move by weight from what an actor can do now). Each
transaction lands at an exact timestamp, one second after the previous one (conftest's ``next_block_at``),
and gas costs 1 gwei a unit.

The books: after every transaction every account's balance is read; a change not explained by the value it
sent and the gas it paid (``gas_used * gas_price`` of its receipt, reverted transactions included) is wei
the market paid it, and the market's own balance must have moved by exactly the value in minus the payouts.
So ``sent`` and ``received`` hold every account's flows with the market, gas excluded. After every step the
market balance equals the task's holdings plus ``totalCredits``, and the credits match ``credits(account)``.
Transfers between coalitions are attributed from the events (forfeit bounties, slashes into the escrow that
the owner gets back, the winner's share of slashed bonds). Any event that costs an honest account wei (its
stake slashed or forfeited, its bond slashed, its challenge bond burned, a fraudulent round finalized) fails
the run at the step it happens, and so does a contributor taking its stake back while an honest round's
slash leaf against it can still be applied.

At teardown the task is wound down: time moves from deadline to deadline, honest parties do their duties and
the adversaries keep a fixed policy (``_adversaries_wind_down``: Sybils commit at once and stall, the cartel
proposes its fraud, the hostile owner tries to cancel and challenges honest rounds); then every reward is
claimed, unopened commitments forfeited, stakes, bonds, challenge bonds, credits and the refund withdrawn.
Then: the task holds nothing but burned wei and nobody has credits; each honest account's ``received +
credits - sent`` is >= 0 (the honest owner's may be down by the rewards of the rounds it received, none of
them fraudulent); each adversarial coalition (the cartel with its sock puppet, the Sybils, the hostile
owner) ends at most at what it got from other adversaries, and the adversaries together at <= 0.

``test_tour_of_the_strategies`` runs fixed configurations (``TOUR``) through the same machine, so that every
strategy happens at least once whatever hypothesis draws.

brownie 1.22.2's ``state_machine`` cannot run a machine (see test_stateful.py), so this drives
``hypothesis.stateful`` directly from brownie's chain snapshot, with its own settings and ``derandomize`` so
that CI explores the same sequences every time. ``COTRAIN_ADVERSARY_EXAMPLES`` and ``COTRAIN_ADVERSARY_STEPS``
override ``max_examples`` and ``stateful_step_count``; ``COTRAIN_ADVERSARY_RANDOM=1`` explores new sequences
on every run (for a longer hunt).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import ClassVar

import hypothesis
from brownie import accounts, chain, history, network, web3
from brownie.exceptions import VirtualMachineError
from conftest import (
    ACCEPTED,
    CLOSED,
    COMMIT,
    EXPIRED,
    FAILED,
    FINALIZED,
    JOIN,
    NO_OUTCOME,
    OPEN,
    PARAM_FIELDS,
    REJECTED,
    REVEAL,
    ROUND_FIELDS,
    TASK_ACTIVE,
    TASK_FIELDS,
    VALIDATE,
    VOIDED,
    ZERO_ADDRESS,
    RoundResult,
    digest_of,
    make_proposal,
    next_block_at,
    task_params,
)
from cotrain.protocol.commitment import update_commitment
from eth_abi import encode
from eth_utils import keccak
from hypothesis import HealthCheck, Verbosity
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

MAX_EXAMPLES = int(os.environ.get("COTRAIN_ADVERSARY_EXAMPLES", 30))
STEPS = int(os.environ.get("COTRAIN_ADVERSARY_STEPS", 30))
GAS_PRICE = 10**9  # 1 gwei
MARGIN = 16  # an honest party acts at the latest this many seconds before its deadline
SOFT_DUTIES = ("fail", "finalize", "uphold at once")  # no deadline: done late rather than never
BOND = 10_000  # validatorBond
SPEC = "bafkreispec"
EVIDENCE = "bafkreievidence"
UPDATE_CID = "bafkreiupdate"
SYBIL_KEYS = ("cotrain stateful adversaries sybil 1", "cotrain stateful adversaries sybil 2")
# What the hypothesis run must have done at least once, across its examples (the wind-down's adversarial
# policy makes these happen in most configurations; the tour below makes sure of every strategy).
MUST_HAPPEN = (
    "fraud accepted",
    "cartel proposes fraud: ok",
    "upheld: honest winner",
    "forfeitUnrevealed by honest: ok",
    "claim: ok",
    "withdrawCredit: ok",
)
# The tour: fixed configurations (fields over draw_config(index)), each run from the task's creation through
# the wind-down, where the adversaries follow their policy; a prelude may add moves first. Together they must
# show every strategy in TOUR_MUST_HAPPEN.
TOUR = (
    # a cartel majority's fraud, its sock puppet challenging at once and a prompt arbiter naming it
    {"cartel": (0, 1), "quorum": 2, "maxContributors": 5, "sock_first": True, "prompt_arbiter": True},
    # a cartel majority's fraud slashing the honest stakes, upheld for the honest challenger after the sock's
    {
        "cartel": (1, 2),
        "quorum": 2,
        "maxContributors": 5,
        "sock_first": True,
        "prompt_arbiter": False,
        "fraud_slashes_honest": True,
    },
    # the whole validator set in the cartel: only honest contributors watch
    {"cartel": (0, 1, 2), "quorum": 3, "maxContributors": 5, "prompt_arbiter": False, "numRounds": 2},
    # a hostile owner challenging honest rounds: rejected, then dismissed
    {"cartel": (), "hostile_owner": True, "maxContributors": 5, "diligent_rejects": True, "numRounds": 2},
    {"cartel": (), "hostile_owner": True, "maxContributors": 5, "diligent_rejects": False, "numRounds": 2},
    # Sybils stalling three rounds: one reveals junk (slashed), one commits again over an unopened commitment,
    # one leaves over it
    {"cartel": (), "numRounds": 3, "maxContributors": 5, "minContributors": 1, "sybils_joined": 3},
    # a minority cartel proposing its fraud: outvoted, its dissent slashed into the escrow at finalization
    {"cartel": (0,), "quorum": 2, "maxContributors": 5, "numRounds": 2},
    # a hostile owner cancelling before any reveal (prelude)
    {"cartel": (2,), "hostile_owner": True, "maxContributors": 5, "sybils_joined": 2, "prelude": "cancel"},
)
TOUR_MUST_HAPPEN = (
    *MUST_HAPPEN,
    "upheld: cartel winner",
    "rejected",
    "dismissed",
    "sybil leaves: ok",
    "sybil commits while unopened: UnopenedCommitment",
    "owner cancels: RoundHasReveals",
    "owner cancels: ok",
    "owner challenges an honest round: ok",
    "apply slash leaf: ok",
    "withdrawChallengeBond: ok",
    "validator slashed into escrow",
)

# A run's configuration: each field drawn from its choices by a generator seeded from one hypothesis integer
# (hypothesis mutates a dictionary of small draws into near copies; one seed spreads the few examples CI
# affords over the whole grid).
CONFIG_CHOICES = {
    "numRounds": (1, 2, 3),
    "minContributors": (1, 2),
    "maxContributors": (2, 3, 4, 5),
    "joinDuration": (0, 60),
    "commitDuration": (120, 300),
    "revealDuration": (120, 300),
    "validationDuration": (60, 120),
    "challengeDuration": (120, 240),  # at least the validation phase
    "quorum": (2, 2, 3),  # more than half of the three validators
    "contributorStake": (1_000, 10),  # 10: a forfeit bounty of 1 wei
    "validatorSlash": (2_500, BOND),
    "challengeBond": (5_000, 1),
    "budget": (3_000_000, 1_000_003),
    # which validators (indexes into accounts[1:4]) form the cartel: none, a minority, a majority, all
    "cartel": ((), (0,), (2,), (0, 1), (1, 2), (0, 1, 2), (0, 1)),
    "hostile_owner": (False, True),
    "honest_contributors": (2, 3),
    "sybils_joined": (0, 1, 2, 3),  # Sybils that join at once (more may join later)
    "sock_joins": (False, True),
    "sock_first": (False, True),  # the sock puppet challenges a fraud the moment it is accepted
    "fraud_slashes_honest": (False, True),
    "junk_slash_divisor": (2, 1),  # an honest result slashes a junk update by stake / this
    "diligent_rejects": (False, True),  # the arbiter rejects every challenge of an honest round in time
    "prompt_arbiter": (False, True),  # the arbiter upholds a fraud's challenge at once, not at its deadline
}


def draw_config(seed: int) -> dict:
    rng = random.Random(seed)
    return {name: rng.choice(choices) for name, choices in CONFIG_CHOICES.items()}


ST_CHOICE = st.integers(0, 2**20)
OK = ("ok",)
ANY = "any"  # an adversary's move that may succeed or revert, as the books will tell


def _hex(value) -> str:
    text = value.hex() if isinstance(value, bytes) else str(value)
    text = text.lower()
    return text if text.startswith("0x") else "0x" + text


def proposal_hash(proposal: tuple) -> str:
    """keccak256(abi.encode(modelDigest, recordDigest, rewardsRoot, slashRoot, rewardTotal)), as `propose`."""
    words = [bytes.fromhex(_hex(x)[2:]) for x in proposal[:4]]
    return _hex(keccak(encode(["bytes32"] * 4 + ["uint256"], [*words, proposal[4]])))


def error_name(exc: VirtualMachineError) -> str:
    return (exc.revert_msg or "").split(":")[0]


def _field(event: dict, key: str):
    """An event argument; addresses as plain checksummed strings (brownie's compare only to addresses)."""
    value = event[key] if key in event else event[f"{key} (indexed)"]
    return str(value) if isinstance(value, str) else value


@dataclass
class RoundBook:
    """What the actors know of a round beyond the contract's views."""

    commits: dict[str, tuple[bytes, bytes, str]] = field(default_factory=dict)  # who -> digest, salt, kind
    revealed: list[str] = field(default_factory=list)
    forfeited: set[str] = field(default_factory=set)
    proposals: dict[str, str] = field(default_factory=dict)  # validator -> proposal hash
    challengers: list[str] = field(default_factory=list)  # in the order they challenged
    bond_out: set[str] = field(default_factory=set)  # challengers whose bond the market still holds
    claimed: set[int] = field(default_factory=set)
    slashed: set[int] = field(default_factory=set)


@dataclass
class View:
    """One batched read of the contract."""

    task: dict
    rounds: list[dict]
    contributors: dict[str, tuple]  # joined, lastRound, lockedRound, stake
    validators: dict[str, tuple]  # listed, bonded, bond


@dataclass(order=True)
class Duty:
    """Something an honest party must do in [open, close)."""

    close: int
    open: int
    kind: str = field(compare=False)
    who: str = field(compare=False)
    round: int = field(compare=False)
    index: int = field(default=0, compare=False)  # a slash leaf's


class AdversaryMachine(RuleBasedStateMachine):
    market = None
    cartel: ClassVar[list] = []  # set per example by `setup` (read by rule preconditions)
    hostile_owner = False
    counts: ClassVar[Counter] = Counter()
    stats: ClassVar[Counter] = Counter()
    summaries: ClassVar[list] = []

    @classmethod
    def configure(cls, market, extra_sybils) -> None:
        cls.market = market
        cls.owner = str(accounts[0])
        cls.validator_pool = [str(a) for a in accounts[1:4]]
        cls.honest_pool = [str(a) for a in accounts[4:7]]
        cls.sock = str(accounts[7])
        cls.arbiter = str(accounts[8])
        cls.sybil_pool = [str(accounts[9]), *(str(a) for a in extra_sybils)]
        cls.contributor_pool = [*cls.honest_pool, cls.sock, *cls.sybil_pool]
        cls.everyone = [cls.owner, *cls.validator_pool, *cls.contributor_pool, cls.arbiter]
        cls.signers = {str(a): a for a in [*accounts[:10], *extra_sybils]}

    def __init__(self):
        """Each example starts from the snapshot: the market deployed, no task."""
        super().__init__()
        chain.revert()
        self.stats["examples"] += 1
        self.now = web3.eth.get_block("latest")["timestamp"]
        self.task_id: int | None = None
        self.picks = 0
        self.books: defaultdict[int, RoundBook] = defaultdict(RoundBook)
        self.results: dict[str, RoundResult] = {}  # every proposal made, by hash
        self._honest_cache: dict[tuple, RoundResult] = {}
        self._view: View | None = None
        self.received = dict.fromkeys(self.everyone, 0)
        self.sent = dict.fromkeys(self.everyone, 0)
        self.gas = dict.fromkeys(self.everyone, 0)
        self.credits = dict.fromkeys(self.everyone, 0)
        self.inflow: Counter = Counter()  # coalition -> wei it got from other coalitions
        self.harms: list[str] = []
        self.escapes: list[str] = []  # stakes taken back ahead of a slash that was due
        self.cancel_tried: set[int] = set()  # rounds the hostile owner tried to cancel in, winding down
        self.events: Counter = Counter()
        balances = self._batch([("balance", a) for a in [*self.everyone, self.market.address]])
        self.balances = dict(zip(self.everyone, balances[:-1], strict=True))
        self.market_balance = balances[-1]
        assert self.market_balance == 0

    # ------------------------------------------------------------ plumbing

    def _batch(self, items: list[tuple]) -> list:
        """Read many values in one JSON-RPC batch: ("balance", address) or (contract function, *args)."""
        requests = []
        for item in items:
            if item[0] == "balance":
                requests.append(("eth_getBalance", [item[1], "latest"]))
            else:
                fn, *args = item
                requests.append(
                    ("eth_call", [{"to": self.market.address, "data": fn.encode_input(*args)}, "latest"])
                )
        responses = sorted(web3.provider.make_batch_request(requests), key=lambda r: r["id"])
        results = []
        for item, response in zip(items, responses, strict=True):
            assert "error" not in response, (item, response)
            if item[0] == "balance":
                results.append(int(response["result"], 16))
            else:
                results.append(item[0].decode_output(response["result"]))
        return results

    def _state(self) -> View:
        """The contract's state (cached until the next transaction)."""
        if self._view is None:
            m, tid, n = self.market, self.task_id, self.p["numRounds"]
            items = [(m.getTask, tid), *[(m.getRound, tid, r) for r in range(n)]]
            items += [(m.contributorInfo, tid, a) for a in self.contributor_pool]
            items += [(m.validatorInfo, tid, v) for v in self.validator_pool]
            values = self._batch(items)
            task = dict(zip(TASK_FIELDS, values[0], strict=True))
            rounds = [dict(zip(ROUND_FIELDS, v, strict=True)) for v in values[1 : 1 + n]]
            for rr in rounds:
                rr["acceptedHash"] = _hex(rr["acceptedHash"])
            rest = values[1 + n :]
            contributors = dict(zip(self.contributor_pool, (tuple(v) for v in rest), strict=False))
            validators = dict(
                zip(self.validator_pool, (tuple(v) for v in rest[len(self.contributor_pool) :]), strict=True)
            )
            self._view = View(task, rounds, contributors, validators)
        return self._view

    def _rng(self, seed: int) -> random.Random:
        self.picks += 1
        return random.Random(self.picks * 1_000_003 + seed)

    def _send(self, label: str, sender: str, fn: str, args: tuple, value: int = 0, expect=OK, duty=False):
        """Send at the next second (after any honest duty that falls due) and settle the books.

        expect: the outcomes allowed, "ok" or custom error names; "any" allows every outcome."""
        if not duty:
            self._due()
        self.now += 1
        next_block_at(self.now)
        self.stats["transactions"] += 1
        # A gas limit unique to this transaction: examples replay the same calls from the same snapshot, and
        # anvil can lose track of a transaction whose hash it has seen before a revert ("Tx dropped").
        params = {"from": self.signers[sender], "value": value, "gas": 3_000_000 + self.stats["transactions"]}
        error, message = None, ""
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                tx = getattr(self.market, fn)(*args, params)
            except VirtualMachineError as exc:
                error, message = error_name(exc) or "revert", exc.revert_msg
                tx = history[-1]
        assert str(tx.sender) == sender and tx.status == (error is None), (label, tx)
        self._view = None
        self._settle(sender, value if error is None else 0, tx.gas_used * tx.gas_price)
        outcome = error or "ok"
        self.counts[f"{label}: {outcome}"] += 1
        if expect != "any" and outcome not in expect:
            raise AssertionError(
                f"{label}: {fn}{args} from {sender} -> {outcome} {message!r}; expected {expect}"
            )
        if error is not None:
            return None
        self._on_events(tx, fn)
        return tx

    def _settle(self, sender: str, value_in: int, gas: int) -> None:
        """Attribute every balance change of the last transaction: the sender's value and gas, the rest
        payouts."""
        values = self._batch([("balance", a) for a in [*self.everyone, self.market.address]])
        paid = 0
        for account, after in zip(self.everyone, values, strict=False):
            payout = after - self.balances[account]
            if account == sender:
                payout += value_in + gas
            assert payout >= 0, f"{account} lost {-payout} wei it neither sent nor paid in gas"
            self.received[account] += payout
            self.balances[account] = after
            paid += payout
        market_after = values[-1]
        assert paid == value_in - (market_after - self.market_balance), (
            "payouts do not match the market's balance"
        )
        self.market_balance = market_after
        self.sent[sender] += value_in
        self.gas[sender] += gas

    def _coalition(self, account: str) -> str:
        return self.coalition.get(account, account)

    def _transfer(self, source: str, to: str, amount: int) -> None:
        if amount and self._coalition(source) != self._coalition(to):
            self.inflow[self._coalition(to)] += amount

    def _harm(self, what: str) -> None:
        self.harms.append(what)

    def _on_events(self, tx, fn: str) -> None:
        events = tx.events

        def each(name: str) -> list:
            return list(events[name]) if name in events else []

        upheld_slashed: list[tuple[str, int]] = []
        for e in each("ValidatorSlashed"):
            validator, amount = _field(e, "validator"), _field(e, "amount")
            if validator in self.honest:
                self._harm(
                    f"honest validator {validator} slashed {amount} in {fn} (round {_field(e, 'round')})"
                )
            if fn == "resolveChallenge":
                upheld_slashed.append((validator, amount))
            else:  # into the escrow, which the owner gets back
                self._transfer(validator, self.owner, amount)
                self.events["validator slashed into escrow"] += 1
        for e in each("ContributorSlashed"):
            contributor, amount = _field(e, "contributor"), _field(e, "amount")
            if contributor in self.honest:
                self._harm(f"honest contributor {contributor} slashed {amount} (round {_field(e, 'round')})")
            self._transfer(contributor, self.owner, amount)
        for e in each("CommitmentForfeited"):
            r, contributor = _field(e, "round"), _field(e, "contributor")
            caller, bounty = _field(e, "caller"), _field(e, "bounty")
            self.books[r].forfeited.add(contributor)
            if contributor in self.honest:
                self._harm(f"honest contributor {contributor} forfeited its stake (round {r})")
            self.credits[caller] += bounty
            self._transfer(contributor, caller, bounty)
            self.events["forfeit by " + ("honest" if caller in self.honest else "adversary")] += 1
        for e in each("ChallengeResolved"):
            r, winner, payout = _field(e, "round"), _field(e, "winner"), _field(e, "payout")
            book = self.books[r]
            if winner == ZERO_ADDRESS:
                burned = [c for c in book.bond_out if c in self.honest]
                if burned:
                    self._harm(f"honest challenge bonds of {burned} burned by a rejection (round {r})")
                book.bond_out.clear()
                self.events["rejected"] += 1
            else:
                book.bond_out.discard(winner)
                self.credits[winner] += payout
                reward = payout - self.p["challengeBond"]
                sources = {self._coalition(v) for v, _ in upheld_slashed}
                assert len(sources) <= 1, f"an upheld challenge slashed several coalitions: {upheld_slashed}"
                for v, _ in upheld_slashed[:1]:
                    self._transfer(v, winner, reward)
                who = "honest" if winner in self.honest else self._coalition(winner)
                self.events[f"upheld: {who} winner"] += 1
        for e in each("ContributorLeft"):
            self._check_no_pending_slash(_field(e, "contributor"))
        for e in each("ChallengeBondReturned"):
            self.books[_field(e, "round")].bond_out.discard(_field(e, "challenger"))
        for e in each("CreditWithdrawn"):
            account = _field(e, "account")
            self.credits[account] -= _field(e, "amount")
            assert self.credits[account] == 0
        for e in each("RewardClaimed"):
            self.books[_field(e, "round")].claimed.add(_field(e, "index"))
        self.events["dismissed"] += len(each("ChallengesDismissed"))
        for e in each("RoundFinalized"):
            r = _field(e, "round")
            if self._fraudulent(r):
                self._harm(f"fraudulent round {r} finalized")

    def _check_no_pending_slash(self, who: str) -> None:
        """A contributor that got its stake back must not be named by a slash leaf that can still be applied:
        one of an accepted round, or of a finalized round within its slash window, not applied yet."""
        view, cd = self._state(), self.p["challengeDuration"]
        for r, rr in enumerate(view.rounds):
            open_window = rr["status"] == FINALIZED and self.now <= rr["finalizedAt"] + cd
            if (rr["status"] != ACCEPTED and not open_window) or self._fraudulent(r):
                continue
            result = self.results.get(rr["acceptedHash"])
            leaves = result.slash_allocations if result else []
            for i, leaf in enumerate(leaves):
                if leaf.account == who and i not in self.books[r].slashed:
                    self.escapes.append(
                        f"{who} left with its stake while slash leaf {i} of round {r} was pending"
                    )

    # ------------------------------------------------------------ time and duties

    def _phase(self, view: View, t: int) -> int:
        task = view.task
        if task["status"] != TASK_ACTIVE:
            return CLOSED
        rr = view.rounds[task["currentRound"]]
        if rr["status"] != OPEN:
            return CLOSED
        for phase, end in (
            (JOIN, "startsAt"),
            (COMMIT, "commitEnd"),
            (REVEAL, "revealEnd"),
            (VALIDATE, "validateEnd"),
        ):
            if t < rr[end]:
                return phase
        return EXPIRED

    def _jump(self, timestamp: int, pause=False) -> None:
        """Let time pass so that the next transaction lands at `timestamp`; honest duties due before come
        first (with `pause`, time stops after them, so that others can react to what they changed)."""
        if self._due(timestamp, limit=1 if pause else 300) and pause:
            return
        if timestamp - 1 > self.now:
            self.now = timestamp - 1
            self.stats["time jumps"] += 1

    def _due(self, until: int = 0, limit: int = 300) -> int:
        """Do every honest duty whose deadline is within MARGIN seconds of `until` (or of the next second), at
        most `limit` of them; return how many."""
        if self.task_id is None:
            return 0
        for done in range(limit):
            horizon = max(until, self.now + 1) + MARGIN
            duties = sorted(d for d in self._duties(self._state(), self.now + 1) if d.close <= horizon)
            if not duties:
                return done
            duty = duties[0]
            at = max(self.now + 1, duty.open)
            assert duty.kind in SOFT_DUTIES or at < duty.close, (
                f"an honest party missed {duty} (now {self.now}): the harness acted too late, or a move "
                "shortened the window"
            )
            self.now = at - 1
            self.stats["duties"] += 1
            self._perform(duty)
        if limit < 300:
            return limit
        raise AssertionError("honest duties never settle")

    def _proposing(self, view: View, r: int) -> bool:
        """Whether round r takes proposals now or until its validation deadline."""
        rr, task = view.rounds[r], view.task
        open_now = rr["status"] == OPEN and task["status"] == TASK_ACTIVE and r == task["currentRound"]
        return (open_now or rr["status"] == ACCEPTED) and rr["reveals"] >= self.p["minContributors"]

    def _duties(self, view: View, t: int) -> list[Duty]:
        """What honest parties must do, each in a window [open, close). A "commit" (a contributor takes part
        in every round it can) is only listed while it can still be done; "fail" and "finalize" (someone must
        move the task on) have no deadline: honest parties do them within 2 * MARGIN seconds."""
        duties = []
        p, task = self.p, view.task
        cd, cur = p["challengeDuration"], task["currentRound"]
        caller = self._honest_caller()
        if task["status"] == TASK_ACTIVE and view.rounds[cur]["status"] == OPEN:
            rr, book = view.rounds[cur], self.books[cur]
            for h in self.honest_contributors:
                joined = view.contributors[h][0]
                if (
                    joined
                    and h not in book.commits
                    and rr["commits"] < p["maxContributors"]
                    and t < rr["commitEnd"]
                ):
                    duties.append(Duty(rr["commitEnd"], rr["startsAt"], "commit", h, cur))
            if rr["reveals"] < p["minContributors"] or t >= rr["validateEnd"]:
                opens = rr["revealEnd"] if rr["reveals"] < p["minContributors"] else rr["validateEnd"]
                duties.append(Duty(opens + 2 * MARGIN, opens, "fail", caller, cur))
        for r, rr in enumerate(view.rounds):
            if rr["status"] == FINALIZED and t <= rr["finalizedAt"] + cd and not self._fraudulent(r):
                slashed = self.books[r].slashed
                for i in range(len(self._accepted(r).slash_allocations)):
                    if i not in slashed:
                        duties.append(
                            Duty(rr["finalizedAt"] + cd + 1, rr["finalizedAt"], "slash", caller, r, i)
                        )
            if self._finalizable(view, r, 2**63):
                unresolved = rr["challenges"] and rr["outcome"] == NO_OUTCOME
                opens = rr["acceptedAt"] + cd * (2 if unresolved else 1)
                duties.append(Duty(opens + 2 * MARGIN, opens, "finalize", caller, r))
            book = self.books.get(r)
            if book is None:
                continue
            if task["status"] == TASK_ACTIVE and r == cur and rr["status"] == OPEN:
                for h in self.honest_contributors:
                    if h in book.commits and h not in book.revealed:
                        duties.append(Duty(rr["revealEnd"], rr["commitEnd"], "reveal", h, r))
            if self._proposing(view, r):
                for v in self.honest_validators:
                    if v not in book.proposals:
                        duties.append(Duty(rr["validateEnd"], rr["revealEnd"], "propose", v, r))
            if rr["status"] != ACCEPTED:
                continue
            window_end, arbitration_end = rr["acceptedAt"] + cd, rr["acceptedAt"] + 2 * cd
            unresolved = bool(book.challengers) and rr["outcome"] == NO_OUTCOME
            if self._fraudulent(r):
                if not any(c in self.honest for c in book.challengers):
                    duties.append(Duty(window_end, rr["acceptedAt"], "challenge", self._watcher(book), r))
                if unresolved:
                    duties.append(Duty(arbitration_end, rr["acceptedAt"], "uphold", self.arbiter, r))
                    if self.cfg["prompt_arbiter"]:
                        soon = rr["acceptedAt"] + 2 * MARGIN
                        duties.append(Duty(soon, rr["acceptedAt"], "uphold at once", self.arbiter, r))
            elif unresolved and self.cfg["diligent_rejects"]:
                duties.append(Duty(arbitration_end, window_end, "reject", self.arbiter, r))
        return duties

    def _watcher(self, book: RoundBook) -> str:
        """The honest party that challenges a fraud: the first honest validator, else an honest
        contributor."""
        watchers = [
            a for a in [*self.honest_validators, *self.honest_contributors] if a not in book.challengers
        ]
        return watchers[0]

    def _perform(self, duty: Duty) -> None:
        r, who = duty.round, duty.who
        if duty.kind == "commit":
            self._commit(who, r, "good", "honest commits", OK, duty=True)
        elif duty.kind == "fail":
            self._tx(who, "failRound", "failRound", OK, self.task_id, duty=True)
        elif duty.kind == "finalize":
            self._tx(who, "finalizeRound", "finalizeRound", OK, self.task_id, r, duty=True)
        elif duty.kind == "slash":
            self._apply_slash(who, r, duty.index, self._accepted(r), "apply slash leaf", OK, duty=True)
        elif duty.kind == "reveal":
            self._reveal(who, r, "honest reveals", OK, duty=True)
        elif duty.kind == "propose":
            self._propose(who, r, self._honest_result(r), "honest proposes", OK, duty=True)
        elif duty.kind == "challenge":
            self._challenge(who, r, "honest challenges a fraud", OK, duty=True)
        elif duty.kind in ("uphold", "uphold at once"):
            self._resolve(self.arbiter, r, self._winner(r), "arbiter upholds", OK, duty=True)
        else:
            self._resolve(self.arbiter, r, ZERO_ADDRESS, "arbiter rejects", OK, duty=True)

    def _winner(self, r: int) -> str:
        challengers = self.books[r].challengers
        honest = [c for c in challengers if c in self.honest]
        return (honest or challengers)[0]

    # ------------------------------------------------------------ results

    def _honest_result(self, r: int) -> RoundResult:
        """What honest validators propose: the round budget shared by the good updates, junk slashed."""
        book = self.books[r]
        key = (r, tuple(book.revealed))
        if key not in self._honest_cache:
            good = sorted(a for a in book.revealed if book.commits[a][2] == "good")
            junk = sorted(a for a in book.revealed if book.commits[a][2] == "junk")
            each = self.round_budget // len(good) if good else 0
            slash = self.p["contributorStake"] // self.cfg["junk_slash_divisor"]
            tag = hashlib.sha256(repr(key).encode()).hexdigest()[:10]
            result = make_proposal(
                [(a, each) for a in good], [(a, slash) for a in junk], label=f"honest {tag}"
            )
            self._honest_cache[key] = result
            self.results[proposal_hash(result.proposal)] = result
        return self._honest_cache[key]

    def _fraud_result(self, r: int) -> RoundResult:
        """The cartel's result: the whole round budget to its sock puppet, maybe the honest stakes slashed."""
        book = self.books[r]
        victims = (
            sorted(a for a in book.revealed if a in self.honest) if self.cfg["fraud_slashes_honest"] else []
        )
        result = make_proposal(
            [(self.sock, self.round_budget)],
            [(a, self.p["contributorStake"]) for a in victims],
            label=f"fraud {r} {len(victims)}",
        )
        self.results[proposal_hash(result.proposal)] = result
        return result

    def _fraudulent(self, r: int) -> bool:
        rr = self._state().rounds[r]
        return rr["acceptedHash"] != proposal_hash(self._honest_result(r).proposal)

    def _accepted(self, r: int) -> RoundResult:
        return self.results[self._state().rounds[r]["acceptedHash"]]

    # ------------------------------------------------------------ actions

    def _join(self, who: str, label: str, expect) -> None:
        self._send(label, who, "join", (self.task_id,), value=self.p["contributorStake"], expect=expect)

    def _commit(self, who: str, r: int, kind: str, label: str, expect, duty=False) -> None:
        digest = digest_of(f"{kind} update {r} {who}")
        salt = digest_of(f"salt {r} {who} {self.picks}")
        commitment = update_commitment(who, self.task_id, r, digest, salt)
        if self._send(label, who, "commit", (self.task_id, r, commitment), expect=expect, duty=duty):
            self.books[r].commits[who] = (digest, salt, kind)

    def _reveal(self, who: str, r: int, label: str, expect, duty=False) -> None:
        digest, salt, _ = self.books[r].commits[who]
        args = (self.task_id, r, UPDATE_CID, digest, 100, salt)
        if self._send(label, who, "reveal", args, expect=expect, duty=duty):
            self.books[r].revealed.append(who)

    def _propose(self, who: str, r: int, result: RoundResult, label: str, expect, duty=False) -> None:
        tx = self._send(label, who, "propose", (self.task_id, r, result.proposal), expect=expect, duty=duty)
        if tx is None:
            return
        self.books[r].proposals[who] = proposal_hash(result.proposal)
        if "RoundAccepted" in tx.events and self._fraudulent(r):
            self.events["fraud accepted"] += 1
            if self.cfg["sock_first"] and self.sock not in self.books[r].challengers:
                self._challenge(self.sock, r, "sock challenges its cartel's fraud at once", OK, duty=True)

    def _challenge(self, who: str, r: int, label: str, expect, duty=False) -> None:
        args = (self.task_id, r, EVIDENCE)
        if self._send(label, who, "challenge", args, value=self.p["challengeBond"], expect=expect, duty=duty):
            self.books[r].challengers.append(who)
            self.books[r].bond_out.add(who)

    def _resolve(self, who: str, r: int, winner: str, label: str, expect, duty=False) -> None:
        self._send(label, who, "resolveChallenge", (self.task_id, r, winner), expect=expect, duty=duty)

    def _claim(
        self, who: str, r: int, index: int, result: RoundResult, label: str, expect, account=None
    ) -> None:
        leaf = result.reward_allocations[index]
        args = (self.task_id, r, index, account or leaf.account, leaf.amount, result.reward_proof(index))
        self._send(label, who, "claim", args, expect=expect)

    def _apply_slash(self, who: str, r: int, index: int, result: RoundResult, label: str, expect, duty=False):
        leaf = result.slash_allocations[index]
        args = (self.task_id, r, index, leaf.account, leaf.amount, result.slashes.proof(index))
        if self._send(label, who, "slashContributor", args, expect=expect, duty=duty):
            self.books[r].slashed.add(index)

    def _tx(self, who: str, fn: str, label: str, expect, *args, value: int = 0, duty=False) -> None:
        self._send(label, who, fn, args, value=value, expect=expect, duty=duty)

    # ------------------------------------------------------------ predicates

    def _forfeitable(self, view: View, r: int, who: str, t: int) -> bool:
        book = self.books.get(r)
        if book is None or who not in book.commits or who in book.revealed or who in book.forfeited:
            return False
        reveal_end, closed = view.rounds[r]["revealEnd"], view.task["closedAt"]
        return t >= reveal_end and (closed == 0 or reveal_end <= closed)

    def _forfeitables(self, view: View, t: int) -> list[tuple[int, str]]:
        books = sorted(self.books.items())
        return [(r, a) for r, book in books for a in book.commits if self._forfeitable(view, r, a, t)]

    def _finalizable(self, view: View, r: int, t: int) -> bool:
        rr, cd = view.rounds[r], self.p["challengeDuration"]
        if rr["status"] != ACCEPTED or t < rr["acceptedAt"] + cd:
            return False
        for k in range(r - 1, -1, -1):
            earlier = view.rounds[k]["status"]
            if earlier == ACCEPTED:
                return False
            if earlier != FAILED:
                break
        return not (rr["challenges"] and rr["outcome"] == NO_OUTCOME and t < rr["acceptedAt"] + 2 * cd)

    def _bond_back(self, view: View, r: int, who: str) -> bool:
        """Whether `who` can withdraw its challenge bond of round r now."""
        rr = view.rounds[r]
        if who not in self.books[r].bond_out or rr["outcome"] == REJECTED:
            return False
        return rr["outcome"] != NO_OUTCOME or rr["status"] == VOIDED

    def _challengeable(self, view: View, t: int) -> list[int]:
        """Accepted rounds still in their challenge window."""
        cd = self.p["challengeDuration"]
        return [
            r for r, rr in enumerate(view.rounds) if rr["status"] == ACCEPTED and t < rr["acceptedAt"] + cd
        ]

    def _proposable(self, view: View, r: int, t: int) -> bool:
        """Whether a bonded validator's proposal for round r is taken now."""
        rr = view.rounds[r]
        if not self._proposing(view, r) or t >= rr["validateEnd"]:
            return False
        return rr["status"] == ACCEPTED or self._phase(view, t) == VALIDATE

    # ------------------------------------------------------------ rules

    @initialize(config=st.integers(0, 2**32 - 1))
    def setup(self, config):
        cfg = draw_config(config)
        with contextlib.suppress(hypothesis.errors.InvalidArgument):  # replayed outside hypothesis
            hypothesis.note(f"config {config}: {cfg}")
        self.start(cfg)

    def start(self, cfg: dict) -> None:
        """Cast the roles, post the task, bond the validators, join the first contributors."""
        self.cfg = cfg
        p = {name: cfg[name] for name in PARAM_FIELDS if name in cfg}
        p["maxContributors"] = max(cfg["maxContributors"], cfg["minContributors"])
        p.update(validatorBond=BOND, arbiter=self.arbiter)
        self.p = p
        self.round_budget = cfg["budget"] // p["numRounds"]
        self.cartel = [self.validator_pool[i] for i in cfg["cartel"]]
        self.honest_validators = [v for v in self.validator_pool if v not in self.cartel]
        self.honest_contributors = self.honest_pool[: cfg["honest_contributors"]]
        self.hostile_owner = cfg["hostile_owner"]
        self.honest = {*self.honest_validators, *self.honest_pool, self.arbiter}
        self.coalition = {a: "cartel" for a in [*self.cartel, self.sock]}
        self.coalition.update({a: "sybils" for a in self.sybil_pool})
        if self.hostile_owner:
            self.coalition[self.owner] = "owner"
        else:
            self.honest.add(self.owner)
        args = (task_params(**p), SPEC, self.validator_pool)
        tx = self._send("createTask", self.owner, "createTask", args, value=cfg["budget"])
        self.task_id = tx.events["TaskCreated"]["taskId"]
        for v in self.validator_pool:
            self._tx(v, "bondValidator", "bondValidator", OK, self.task_id, value=BOND)
        joiners = [*self.honest_contributors, *self.sybil_pool[: cfg["sybils_joined"]]]
        if cfg["sock_joins"]:
            joiners.append(self.sock)
        for a in joiners:
            self._join(a, "join", OK)

    def _act(self, seed: int, moves_of) -> None:
        """Do one of the moves `moves_of(view, t, add)` offers, drawn by weight."""
        self.stats["steps"] += 1
        self._due()
        moves: list[tuple[float, partial]] = []
        moves_of(self._state(), self.now + 1, lambda weight, move: moves.append((weight, move)))
        if not moves:  # the actor idles while time passes
            self.stats["idle steps"] += 1
            self._wait(seed)
            return
        rng = self._rng(seed)
        rng.choices([m for _, m in moves], weights=[w for w, _ in moves])[0]()

    def _collect_moves(self, who: str, view: View, t: int, add) -> None:
        """Collecting what one is owed."""
        if self.credits[who]:
            add(1, partial(self._tx, who, "withdrawCredit", "withdrawCredit", OK))
        for r in sorted(self.books):
            if self._bond_back(view, r, who):
                add(
                    1,
                    partial(
                        self._tx, who, "withdrawChallengeBond", "withdrawChallengeBond", OK, self.task_id, r
                    ),
                )

    # ---- honest parties

    def _honest_moves(self, view: View, t: int, add) -> None:
        task, p, tid = view.task, self.p, self.task_id
        active, cur = task["status"] == TASK_ACTIVE, task["currentRound"]
        phase = self._phase(view, t)
        book = self.books[cur] if active else RoundBook()
        rr = view.rounds[cur] if active else {}
        for h in self.honest_contributors:
            joined = view.contributors[h][0]
            if active and not joined:
                add(2, partial(self._join, h, "honest joins", OK))
            if phase == COMMIT and joined and h not in book.commits and rr["commits"] < p["maxContributors"]:
                add(2, partial(self._commit, h, cur, "good", "honest commits", OK))
            if phase == REVEAL and h in book.commits and h not in book.revealed:
                add(1, partial(self._reveal, h, cur, "honest reveals early", OK))
            if joined and (not active or h not in book.commits):
                weight = 0.2 if active else 1  # leaving mid-task: rarely, it stalls the rounds
                add(weight, partial(self._tx, h, "leave", "honest leaves", ("ok", "StakeLocked"), tid))
        if phase == COMMIT:
            add(6, self._commit_all)
        for r in range(len(view.rounds)):
            for v in self.honest_validators:
                if self._proposable(view, r, t) and v not in self.books[r].proposals:
                    add(1, partial(self._propose, v, r, self._honest_result(r), "honest proposes early", OK))
        callers = [*self.honest_validators, *self.honest_contributors]
        caller = callers[self.picks % len(callers)]
        if phase == EXPIRED or (phase == VALIDATE and rr["reveals"] < p["minContributors"]):
            add(4, partial(self._tx, caller, "failRound", "failRound", OK, tid))
        for r, rr_ in enumerate(view.rounds):
            if self._finalizable(view, r, t):
                add(4, partial(self._tx, caller, "finalizeRound", "finalizeRound", OK, tid, r))
            if rr_["status"] != FINALIZED:
                continue
            result = self._accepted(r)
            for i, leaf in enumerate(result.reward_allocations):
                if i not in self.books[r].claimed and leaf.account in self.honest:
                    add(2, partial(self._claim, leaf.account, r, i, result, "claim", OK))
            if t <= rr_["finalizedAt"] + p["challengeDuration"]:
                for i in set(range(len(result.slash_allocations))) - self.books[r].slashed:
                    add(1, partial(self._apply_slash, caller, r, i, result, "apply slash leaf", OK))
        for r, who in self._forfeitables(view, t):
            assert who not in self.honest, f"honest {who} left its commitment of round {r} unopened"
            add(
                2,
                partial(
                    self._tx, caller, "forfeitUnrevealed", "forfeitUnrevealed by honest", OK, tid, r, who
                ),
            )
        for r in self._challengeable(view, t):
            if self._fraudulent(r):
                for h in callers:
                    if h not in self.books[r].challengers:
                        add(0.5, partial(self._challenge, h, r, "honest challenges a fraud early", OK))
        for r, rr_ in enumerate(view.rounds):
            window_end = rr_["acceptedAt"] + p["challengeDuration"]
            if rr_["status"] != ACCEPTED or not rr_["challenges"] or rr_["outcome"] != NO_OUTCOME:
                continue
            if t >= window_end + p["challengeDuration"]:
                continue
            if self._fraudulent(r):
                add(1, partial(self._resolve, self.arbiter, r, self._winner(r), "arbiter upholds early", OK))
            elif t >= window_end:
                add(2, partial(self._resolve, self.arbiter, r, ZERO_ADDRESS, "arbiter rejects", OK))
        for who in sorted(self.honest):
            self._collect_moves(who, view, t, add)
        if not active and task["pendingRounds"] == 0:
            for v in self.honest_validators:
                if view.validators[v][2]:
                    add(1, partial(self._tx, v, "withdrawBond", "withdrawBond", OK, tid))
            if not self.hostile_owner and task["escrow"]:
                add(1, partial(self._tx, self.owner, "withdrawRefund", "withdrawRefund", OK, tid))

    def _commit_all(self) -> None:
        """Every honest contributor that can commits (while the round takes commits)."""
        for h in self.honest_contributors:
            view, t = self._fresh()
            cur = view.task["currentRound"]
            if (
                self._phase(view, t) == COMMIT
                and view.contributors[h][0]
                and h not in self.books[cur].commits
                and view.rounds[cur]["commits"] < self.p["maxContributors"]
            ):
                self._commit(h, cur, "good", "honest commits", OK)

    @rule(seed=ST_CHOICE)
    def honest(self, seed):
        self._act(seed, self._honest_moves)

    @rule(seed=ST_CHOICE)
    def honest_again(self, seed):
        self._act(seed, self._honest_moves)

    @rule(seed=ST_CHOICE)
    def honest_once_more(self, seed):
        self._act(seed, self._honest_moves)

    # ---- Sybils

    def _stranger_moves(self, who: str, view: View, t: int, add, prefix: str) -> None:
        """What a stranger contributor (a Sybil, the sock puppet) can do: join, commit without revealing,
        reveal junk, leave or commit again over an unopened commitment, forfeit, challenge honest rounds,
        claim other people's leaves."""
        task, tid = view.task, self.task_id
        active, cur = task["status"] == TASK_ACTIVE, task["currentRound"]
        phase = self._phase(view, t)
        joined, last = view.contributors[who][0], view.contributors[who][1]
        book = self.books[cur] if active else RoundBook()
        if active and not joined:
            add(2, partial(self._join, who, f"{prefix} joins", ANY))
        if phase == COMMIT and joined and who not in book.commits:
            if last and self._forfeitable(view, last - 1, who, t):
                refused = ("UnopenedCommitment", "RoundFull")
                add(3, partial(self._commit, who, cur, "junk", f"{prefix} commits while unopened", refused))
            else:
                add(4, partial(self._commit, who, cur, "junk", f"{prefix} commits", ANY))
        if phase == REVEAL and who in book.commits and who not in book.revealed:
            add(1, partial(self._reveal, who, cur, f"{prefix} reveals junk", OK))
        if joined:
            add(0.3, partial(self._tx, who, "leave", f"{prefix} leaves", ANY, tid))
        for r, other in self._forfeitables(view, t):
            add(1, partial(self._tx, who, "forfeitUnrevealed", f"{prefix} forfeits", OK, tid, r, other))
        for r in self._challengeable(view, t):
            if who not in self.books[r].challengers:  # griefing an honest round, or bounty-hunting a fraud
                kind = "a fraud" if self._fraudulent(r) else "an honest round"
                add(0.5, partial(self._challenge, who, r, f"{prefix} challenges {kind}", OK))
        for r, rr in enumerate(view.rounds):
            if rr["status"] == FINALIZED:
                result = self._accepted(r)
                for i in range(len(result.reward_allocations)):
                    label = f"{prefix} claims another's leaf"
                    add(
                        0.3,
                        partial(
                            self._claim, who, r, i, result, label, ("InvalidProof", "AlreadyClaimed"), who
                        ),
                    )
        self._collect_moves(who, view, t, add)

    def _sybil_moves(self, view: View, t: int, add) -> None:
        for who in self.sybil_pool:
            self._stranger_moves(who, view, t, add, "sybil")

    @rule(seed=ST_CHOICE)
    def sybil(self, seed):
        self._act(seed, self._sybil_moves)

    # ---- the cartel and its sock puppet

    def _cartel_propose(self, r: int, members: list[str]) -> None:
        """Cartel members that have not proposed yet top their bonds up and propose the fraud, as long as it
        is taken."""
        for v in members:
            view, t = self._fresh()
            if not self._proposable(view, r, t) or v in self.books[r].proposals:
                continue
            bond = view.validators[v][2]
            if bond < BOND and view.task["status"] == TASK_ACTIVE:
                self._tx(v, "bondValidator", "cartel tops its bond up", OK, self.task_id, value=BOND - bond)
                view = self._state()
                if not self._proposable(view, r, self.now + 1):
                    continue
            expect = OK if view.validators[v][2] == BOND else ("NotBonded",)
            self._propose(v, r, self._fraud_result(r), "cartel proposes fraud", expect)

    def _cartel_moves(self, view: View, t: int, add) -> None:
        task, tid = view.task, self.task_id
        active = task["status"] == TASK_ACTIVE
        for r in range(len(view.rounds)):
            if self._proposable(view, r, t):
                add(6, partial(self._cartel_propose, r, self.cartel))
        for v in self.cartel:
            bond = view.validators[v][2]
            if active and bond < BOND:
                add(
                    2,
                    partial(
                        self._tx, v, "bondValidator", "cartel tops its bond up", OK, tid, value=BOND - bond
                    ),
                )
            for r in range(len(view.rounds)):
                if self._proposable(view, r, t) and v not in self.books[r].proposals:
                    expect = OK if bond == BOND else ("NotBonded",)
                    add(
                        1,
                        partial(self._propose, v, r, self._fraud_result(r), "cartel proposes fraud", expect),
                    )
                    label = "cartel proposes the honest result"
                    add(1, partial(self._propose, v, r, self._honest_result(r), label, expect))
            if bond:
                add(0.2, partial(self._tx, v, "withdrawBond", "cartel withdraws its bond", ANY, tid))
            for r in self._challengeable(view, t):
                if not self._fraudulent(r) and v not in self.books[r].challengers:
                    add(0.5, partial(self._challenge, v, r, "cartel challenges an honest round", OK))
            for r, rr in enumerate(view.rounds):
                if rr["challenges"]:
                    add(0.2, partial(self._resolve, v, r, v, "cartel resolves", ("NotArbiter",)))
                if rr["status"] == ACCEPTED and self._fraudulent(r):
                    refused = ("ChallengeWindowOpen", "ChallengePending", "PreviousRoundPending")
                    add(
                        0.5,
                        partial(self._tx, v, "finalizeRound", "cartel finalizes its fraud", refused, tid, r),
                    )
            self._collect_moves(v, view, t, add)
        for r, rr in enumerate(view.rounds):
            if rr["status"] == ACCEPTED and self._fraudulent(r):
                if r in self._challengeable(view, t) and self.sock not in self.books[r].challengers:
                    add(4, partial(self._challenge, self.sock, r, "sock challenges its cartel's fraud", OK))
                label = "sock claims the fraud's reward"
                add(
                    0.5,
                    partial(self._claim, self.sock, r, 0, self._accepted(r), label, ("WrongRoundStatus",)),
                )
        self._stranger_moves(self.sock, view, t, add, "sock")

    @precondition(lambda self: bool(self.cartel))
    @rule(seed=ST_CHOICE)
    def cartel_moves(self, seed):
        self._act(seed, self._cartel_moves)

    @precondition(lambda self: bool(self.cartel))
    @rule(seed=ST_CHOICE)
    def cartel_moves_again(self, seed):
        self._act(seed, self._cartel_moves)

    # ---- the hostile owner

    def _owner_moves(self, view: View, t: int, add) -> None:
        task, owner, tid = view.task, self.owner, self.task_id
        active = task["status"] == TASK_ACTIVE
        if active:
            reveals = view.rounds[task["currentRound"]]["reveals"]
            expect = ("RoundHasReveals",) if reveals else OK
            add(1 if reveals else 0.3, partial(self._tx, owner, "cancelTask", "owner cancels", expect, tid))
        refund = ("TaskStillActive",) if active else OK if task["escrow"] else ("NothingToWithdraw",)
        add(0.5, partial(self._tx, owner, "withdrawRefund", "owner withdraws the escrow", refund, tid))
        for r in self._challengeable(view, t):
            if owner not in self.books[r].challengers:
                fraud = self._fraudulent(r)
                label = "owner challenges a fraud" if fraud else "owner challenges an honest round"
                add(1 if fraud else 3, partial(self._challenge, owner, r, label, OK))
        for r, rr in enumerate(view.rounds):
            if rr["challenges"]:
                add(0.5, partial(self._resolve, owner, r, ZERO_ADDRESS, "owner resolves", ("NotArbiter",)))
        for r, who in self._forfeitables(view, t):
            add(1, partial(self._tx, owner, "forfeitUnrevealed", "owner forfeits", OK, tid, r, who))
        self._collect_moves(owner, view, t, add)

    @precondition(lambda self: self.hostile_owner)
    @rule(seed=ST_CHOICE)
    def owner_moves(self, seed):
        self._act(seed, self._owner_moves)

    # ---- time

    def _boundaries(self, view: View) -> list[int]:
        cd = self.p["challengeDuration"]
        points = []
        task = view.task
        if task["status"] == TASK_ACTIVE:
            rr = view.rounds[task["currentRound"]]
            points += [rr["startsAt"], rr["commitEnd"], rr["revealEnd"], rr["validateEnd"]]
        for rr in view.rounds:
            if rr["status"] == ACCEPTED:
                points += [rr["acceptedAt"] + cd, rr["acceptedAt"] + 2 * cd]
            elif rr["status"] == FINALIZED:
                points.append(rr["finalizedAt"] + cd + 1)
        return points

    @rule(seed=ST_CHOICE)
    def wait(self, seed):
        self.stats["steps"] += 1
        self._wait(seed)

    def _wait(self, seed: int) -> None:
        """Time passes: to one of the next deadlines (mostly the next), or by a few seconds to minutes."""
        rng = self._rng(seed)
        self._due()
        t = self.now + 1
        future = sorted({x for x in self._boundaries(self._state()) if x > t})
        if future and rng.random() < 0.75:
            k = min(int(rng.expovariate(1.2)), len(future) - 1)
            target = future[k] + rng.choice([-1, 0, 0, 1])
        else:
            target = t + rng.choice([1, 15, 60, 200])
        self._jump(target)

    @rule(seed=ST_CHOICE)
    def wait_again(self, seed):
        self.stats["steps"] += 1
        self._wait(seed)

    # ------------------------------------------------------------ invariants

    @invariant()
    def books_balance(self):
        if self.task_id is None:
            return
        assert not self.harms, f"an honest party lost wei: {self.harms}"
        assert not self.escapes, f"a slash was dodged: {self.escapes}"
        m = self.market
        items = [("balance", m.address), (m.taskHoldings, self.task_id), (m.totalCredits,)]
        values = self._batch(items + [(m.credits, a) for a in self.everyone])
        balance, holdings, total_credits = values[:3]
        assert balance == holdings + total_credits, "market balance != task holdings + totalCredits"
        assert balance == self.market_balance == sum(self.sent.values()) - sum(self.received.values())
        assert list(values[3:]) == [self.credits[a] for a in self.everyone], "credits"

    def teardown(self):
        if self.task_id is None or sys.exc_info()[0] is not None:
            self.stats[f"examples not wound down ({sys.exc_info()[0]})"] += 1
            return  # hypothesis abandoned the example, or it already failed
        self._wind_down()
        self._check_books()

    # ------------------------------------------------------------ the end

    def _honest_caller(self) -> str:
        return ([*self.honest_validators, *self.honest_contributors])[0]

    def _wind_down(self) -> None:
        """Honest parties run the task out (their duties do it as time passes) and everyone collects what it
        is owed."""
        p, cd = self.p, self.p["challengeDuration"]
        for _ in range(40 * p["numRounds"] + 40):
            self._adversaries_wind_down()
            view, t = self._state(), self.now + 1
            pending = [r for r, rr in enumerate(view.rounds) if rr["status"] == ACCEPTED]
            if view.task["status"] == TASK_ACTIVE:  # on to the current phase's end, or failRound soon
                rr = view.rounds[view.task["currentRound"]]
                phase = self._phase(view, t)
                ends = {JOIN: "startsAt", COMMIT: "commitEnd", REVEAL: "revealEnd", VALIDATE: "validateEnd"}
                too_few = phase == VALIDATE and rr["reveals"] < p["minContributors"]
                target = rr[ends[phase]] if phase in ends and not too_few else t + 2 * MARGIN
            elif pending:  # on to the first accepted round's finalization, or finalizeRound soon
                rr = view.rounds[pending[0]]
                unresolved = rr["challenges"] and rr["outcome"] == NO_OUTCOME
                opens = rr["acceptedAt"] + cd * (2 if unresolved else 1)
                target = opens if opens > t else t + 2 * MARGIN
            else:
                break
            self._jump(max(target, t + 1), pause=True)
        else:
            raise AssertionError("the task never settled")
        view = self._state()
        for r, rr in enumerate(view.rounds):
            if rr["status"] == FINALIZED:
                result = self._accepted(r)
                for i, leaf in enumerate(result.reward_allocations):
                    if i not in self.books[r].claimed:
                        self._claim(leaf.account, r, i, result, "claim", OK)
        for r, who in self._forfeitables(self._state(), self.now + 1):
            self._tx(
                self._honest_caller(),
                "forfeitUnrevealed",
                "forfeitUnrevealed by honest",
                OK,
                self.task_id,
                r,
                who,
            )
        ends = [rr["finalizedAt"] + cd + 1 for rr in self._state().rounds if rr["status"] == FINALIZED]
        if ends:
            self._jump(max(ends))
        view = self._state()
        for who in self.contributor_pool:
            if view.contributors[who][0]:
                self._tx(who, "leave", "leave", OK, self.task_id)
        for v in self.validator_pool:
            if view.validators[v][2]:
                self._tx(v, "withdrawBond", "withdrawBond", OK, self.task_id)
        for r in sorted(self.books):
            for who in sorted(self.books[r].bond_out):
                assert self._bond_back(self._state(), r, who), f"{who}'s challenge bond of round {r} is stuck"
                self._tx(who, "withdrawChallengeBond", "withdrawChallengeBond", OK, self.task_id, r)
        for who in self.everyone:
            if self.credits[who]:
                self._tx(who, "withdrawCredit", "withdrawCredit", OK)
        if self._state().task["escrow"]:
            self._tx(self.owner, "withdrawRefund", "withdrawRefund", OK, self.task_id)

    def _adversaries_wind_down(self) -> None:
        """While the task runs out, the adversaries keep a simple policy: two Sybils (re)join and every Sybil
        commits at once (over an unopened commitment, too), the first of them reveals junk and the third
        leaves over its unopened commitment; the cartel proposes its fraud whenever a round takes proposals;
        the hostile owner tries to cancel after reveals and challenges every honest round."""
        view, t = self._fresh()
        cur, phase = view.task["currentRound"], self._phase(view, t)
        if phase in (JOIN, COMMIT):
            for s in self.sybil_pool[:2]:
                view, t = self._fresh()
                if view.task["status"] == TASK_ACTIVE and not view.contributors[s][0]:
                    self._join(s, "sybil joins", ANY)
        if phase == COMMIT:
            for s in self.sybil_pool:
                view, t = self._fresh()
                joined, last = view.contributors[s][:2]
                if self._phase(view, t) != COMMIT or not joined or s in self.books[cur].commits:
                    continue
                if last and self._forfeitable(view, last - 1, s, t):
                    refused = ("UnopenedCommitment", "RoundFull")
                    self._commit(s, cur, "junk", "sybil commits while unopened", refused)
                else:
                    self._commit(s, cur, "junk", "sybil commits", ANY)
        elif phase == REVEAL:
            view, t = self._fresh()
            s, book = self.sybil_pool[0], self.books[cur]
            if self._phase(view, t) == REVEAL and s in book.commits and s not in book.revealed:
                self._reveal(s, cur, "sybil reveals junk", OK)
        elif phase == VALIDATE and self.cartel:
            self._cartel_propose(cur, self.cartel)
        s = self.sybil_pool[2]
        view, t = self._fresh()
        joined, last = view.contributors[s][:2]
        if joined and last and self._forfeitable(view, last - 1, s, t):
            self._tx(s, "leave", "sybil leaves", OK, self.task_id)  # forfeits its own stake for the bounty
        if not self.hostile_owner:
            return
        view, t = self._fresh()
        task = view.task
        cur = task["currentRound"]
        if task["status"] == TASK_ACTIVE and view.rounds[cur]["reveals"] and cur not in self.cancel_tried:
            self.cancel_tried.add(cur)
            self._tx(self.owner, "cancelTask", "owner cancels", ("RoundHasReveals",), self.task_id)
        for r in range(self.p["numRounds"]):
            view, t = self._fresh()
            challenged = self.owner in self.books[r].challengers
            if r in self._challengeable(view, t) and not self._fraudulent(r) and not challenged:
                self._challenge(self.owner, r, "owner challenges an honest round", OK)

    def _fresh(self) -> tuple[View, int]:
        """After the honest duties due now: the state, and the time the next transaction lands at."""
        self._due()
        return self._state(), self.now + 1

    def _check_books(self) -> None:
        m = self.market
        items = [("balance", m.address), (m.getTask, self.task_id), (m.totalCredits,)]
        values = self._batch(items + [(m.credits, a) for a in self.everyone])
        balance, task, total_credits = values[0], dict(zip(TASK_FIELDS, values[1], strict=True)), values[2]
        credits = dict(zip(self.everyone, values[3:], strict=True))
        left = {k: task[k] for k in ("escrow", "reserved", "unclaimed", "stakes", "bonds", "challengeBonds")}
        assert not any(left.values()) and total_credits == 0, (
            f"wei left once everything was collected: {left}"
        )
        assert balance == task["burned"], "the market holds more than the burned wei"
        nets = {a: self.received[a] + credits[a] - self.sent[a] for a in self.everyone}
        assert sum(nets.values()) == -balance
        view = self._state()
        bought = sum(rr["rewardTotal"] for rr in view.rounds if rr["status"] == FINALIZED)
        for a in self.honest:
            floor = -bought if a == self.owner else 0
            assert nets[a] >= floor, (
                f"honest {self._role(a)} {a} ended at {nets[a]} wei (gas excluded), below {floor}"
            )
        summary = {"config": self._config_tag(), "bought": bought, "burned": balance}
        for coalition in ("cartel", "sybils", "owner"):
            members = [a for a in self.everyone if self.coalition.get(a) == coalition]
            if members:
                net = sum(nets[a] for a in members)
                summary[coalition] = net
                assert net <= self.inflow[coalition], (
                    f"the {coalition} coalition ended at {net} wei, more than the {self.inflow[coalition]} "
                    "it got from other adversaries"
                )
        adversaries = [a for a in self.everyone if a not in self.honest]
        assert sum(nets[a] for a in adversaries) <= 0, "the adversaries together profited"
        summary["honest"] = {self._role(a): nets[a] for a in sorted(self.honest, key=self.everyone.index)}
        self.summaries.append(summary)
        self.stats["examples wound down"] += 1
        for name, count in self.events.items():
            self.counts[name] += count

    def _role(self, account: str) -> str:
        if account == self.owner:
            return "owner"
        if account == self.arbiter:
            return "arbiter"
        if account in self.validator_pool:
            return f"validator{self.validator_pool.index(account)}"
        return f"contributor{self.contributor_pool.index(account)}"

    def _config_tag(self) -> str:
        cfg = self.cfg
        return (
            f"rounds={cfg['numRounds']} quorum={cfg['quorum']} cartel={len(self.cartel)} "
            f"owner={'hostile' if self.hostile_owner else 'honest'}"
        )


def _fresh_sybils() -> list:
    extra = [accounts.add(_hex(keccak(text=label))) for label in SYBIL_KEYS]
    for account in extra:
        response = web3.provider.make_request("anvil_setBalance", [str(account), hex(1000 * 10**18)])
        assert "error" not in response, response
    return extra


def _report(title: str, started: float) -> Counter:
    stats, counts = AdversaryMachine.stats, AdversaryMachine.counts
    print(
        f"\n{title}: {stats['examples']} examples ({stats['examples wound down']} wound down), "
        f"{stats['steps']} steps, {stats['transactions']} transactions, {stats['duties']} honest duties, "
        f"{stats['time jumps']} time jumps, {time.monotonic() - started:.0f} s"
    )
    for label, count in sorted(counts.items()):
        print(f"  {count:6d}  {label}")
    print("  net wei per example (gas excluded): adversarial coalitions and honest parties")
    for summary in AdversaryMachine.summaries:
        print(f"    {summary}")
    return counts


@contextlib.contextmanager
def _machine(market):
    """The machine configured for this module's market, its counters cleared, gas at GAS_PRICE, and a
    snapshot every example starts from."""
    AdversaryMachine.configure(market, _fresh_sybils())
    for counter in (AdversaryMachine.counts, AdversaryMachine.stats, AdversaryMachine.summaries):
        counter.clear()
    previous = network.gas_price()
    network.gas_price(GAS_PRICE)
    chain.snapshot()
    try:
        yield AdversaryMachine
    finally:
        network.gas_price(previous)


def test_no_honest_party_ends_below_what_it_put_in(market):
    settings = hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        derandomize=not os.environ.get("COTRAIN_ADVERSARY_RANDOM"),
        database=None,
        verbosity=Verbosity.normal,
        suppress_health_check=list(HealthCheck),
    )
    started = time.monotonic()
    with _machine(market) as machine:
        run_state_machine_as_test(machine, settings=settings)
    counts = _report(f"hypothesis, max_examples {MAX_EXAMPLES} x {STEPS} steps", started)
    missing = [label for label in MUST_HAPPEN if not counts[label]]
    assert not missing, f"never happened in any example: {missing}"


def test_tour_of_the_strategies(market):
    """Every strategy at least once, in fixed configurations: the task runs from its creation through the
    wind-down, where honest parties do their duties and the adversaries follow their policy; the same books
    are checked at the end of each."""
    started = time.monotonic()
    with _machine(market) as machine:
        for index, fields in enumerate(TOUR):
            m = machine()
            cfg = {**draw_config(index), **fields}
            prelude = cfg.pop("prelude", None)
            m.start(cfg)
            if prelude == "cancel":
                m._tx(m.owner, "cancelTask", "owner cancels", OK, m.task_id)
            m.books_balance()
            m.teardown()
    counts = _report("tour", started)
    missing = [label for label in TOUR_MUST_HAPPEN if not counts[label]]
    assert not missing, f"never happened in the tour: {missing}"
