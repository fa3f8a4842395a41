"""The contributor: joins a task, trains on its private data each round, commits and reveals its update,
and claims its rewards. Restart-safe: the chain says what was done; the journal keeps the salt and the
stored update between commit and reveal, so an update is never trained or submitted twice for a round.
A journal entry is used only for the round, task and base model it was trained for, and only while it
matches the commitment on chain; a node whose journal contradicts the chain stops with one line.

A commitment left unopened after its reveal phase (the node was down) costs the whole stake: anyone may
forfeit it, and the account cannot commit again until it is. The node says so in one line, forfeits it itself
when it finds it first (the bounty then comes back to the account) and joins again with a new stake; leaving
with an unopened commitment forfeits the stake too, and the node says that as well."""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
from cotrain.chain.client import ContractRevert
from cotrain.chain.market import (
    FORFEITED,
    REVEALED,
    Contributor,
    Market,
    Phase,
    RoundStatus,
    Task,
    TaskStatus,
)
from cotrain.consensus.fixed_point import NUMBER_FORMATS, overflow_count
from cotrain.errors import ConfigError, NodeStateError
from cotrain.learning.attacks import Attack
from cotrain.learning.data import ArrayDataset
from cotrain.learning.device import CPU
from cotrain.learning.tensor_files import encode_update
from cotrain.privacy.dp import PrivacyLedger
from cotrain.privacy.sealed import parse_reader_public, seal
from cotrain.protocol.commitment import new_salt, update_commitment
from cotrain.protocol.epsilon import EPSILON_KEY, declare, within_budget
from cotrain.protocol.round_judge import flatten_arrays
from cotrain.protocol.task_model import round_mechanism, train_private_round, train_round
from cotrain.protocol.update_binding import update_metadata
from cotrain.roles.account_status import FORFEITED_VERDICT, describe, round_result, task_standing
from cotrain.roles.journal import Journal
from cotrain.roles.task_view import TaskView
from cotrain.roles.timings import Timings
from cotrain.roles.transactions import send_tolerantly
from cotrain.storage.base import ContentStore

log = logging.getLogger(__name__)
EMPTY = bytes(32)
LEDGER_KEY = "privacy-ledger"  # the journal entry of the privacy this account spent in the task
WAITING_NOTE_S = 15.0  # how often a node waiting on a phase says so


class ContributorNode:
    """Acts for one account on one task; call :meth:`step` repeatedly (it does what is due and returns).

    ``attack`` makes the node a simulated attacker (for demos and experiments): it poisons its data and/or
    submits the attack's crafted delta instead of the one it trained. Only attacks that need nothing but the
    node's own work can run live. ``device`` is where it trains (see
    :func:`~cotrain.learning.device.resolve_device`); its update files are CPU float32 whatever it is.
    """

    def __init__(
        self,
        market: Market,
        store: ContentStore,
        task_id: int,
        journal: Journal,
        *,
        data: ArrayDataset | None = None,
        progress: Callable[[int, int], None] | None = None,
        timings: Timings | None = None,
        attack: Attack | None = None,
        device: torch.device = CPU,
    ) -> None:
        if attack is not None and not attack.live:
            raise ConfigError(
                f"attack {attack.name!r} needs the other contributors' updates, which a live node does not "
                "collect; run it with `cotrain experiment robustness`"
            )
        self.attack = attack
        self.device = device
        self.market = market
        self.store = store
        self.task_id = task_id
        self.data = data
        self.journal = journal
        self.progress = progress
        self.timings = timings or Timings()
        self.address = market.client.signing_address()
        self.view = TaskView(market, store, task_id)
        self._waiting_noted: tuple[int, float] | None = None  # (round, when) of the last "waiting" line
        self._reported: set[int] = set()  # rounds whose outcome the log already tells
        self._forfeits_noted: set[int] = set()  # rounds whose forfeited stake the log already tells
        self._over_budget_noted: set[int] = set()  # rounds the privacy budget kept this node out of
        self._settled_rounds: set[int] = set()  # rounds claimed or owing nothing (also in the journal)

    def step(self) -> bool:
        """Do what the task's state calls for now; return True once there is nothing left to do."""
        self.view.refresh()
        task = self.market.get_task(self.task_id)
        me = self.market.contributor_info(self.task_id, self.address)
        self.claim_rewards(task.current_round)
        self._note_forfeits()
        self._report_outcomes(task.current_round)
        if task.status != TaskStatus.ACTIVE:
            return self._all_claimed(task.current_round) and self._leave(me)
        if not me.joined:
            again = " again" if self._forfeits_noted else ""
            log.info(
                "joining task %d%s with a stake of %d %s",
                self.task_id,
                again,
                task.params.contributor_stake,
                self.view.unit,
            )
            self.market.join(self.task_id)
            return False
        round_ = task.current_round
        phase = self.market.phase(self.task_id)
        commitment = self.market.commitment_of(self.task_id, round_, self.address)
        if phase == Phase.COMMIT and commitment == EMPTY:
            unopened = self._unopened(me, task)
            if unopened is not None:
                self._forfeit_own(round_, unopened)
                return False
            self._commit(round_)
        elif phase == Phase.REVEAL and commitment not in (EMPTY, REVEALED):
            self._reveal(round_, commitment)
        elif phase == Phase.JOIN:
            self._note_waiting(round_, task.active_contributors, task.params.min_contributors)
        return False

    def _report_outcomes(self, current_round: int) -> None:
        """Log, once per round, what each settled round meant for this account: verdict, reward, slash."""
        for round_ in range(min(current_round, self.view.spec.rounds - 1) + 1):
            if round_ in self._reported:
                continue
            status = self.market.get_round(self.task_id, round_).status
            if status == RoundStatus.OPEN:
                continue
            self._reported.add(round_)
            result = round_result(self.view, round_, self.address)
            if result.verdict == FORFEITED_VERDICT and round_ in self._forfeits_noted:
                continue  # said when it was forfeited
            if result.verdict == "accepted":
                log.info("%s", describe(result, self.view.unit))
            elif result.verdict != "-" or status in (RoundStatus.FAILED, RoundStatus.VOIDED):
                log.warning("%s", describe(result, self.view.unit))

    def _note_forfeits(self) -> None:
        """Say, once per round, that this account's stake was forfeited for a commitment it never opened."""
        for event in self.view.events("CommitmentForfeited"):
            round_ = event.args["round"]
            if event.args["contributor"] != self.address or round_ in self._forfeits_noted:
                continue
            self._forfeits_noted.add(round_)
            log.warning(
                "round %d: this account committed and never revealed, so its whole stake of %d %s was "
                "forfeited (%s was credited a bounty of %d %s)",
                round_,
                event.args["amount"],
                self.view.unit,
                "this account" if event.args["caller"] == self.address else event.args["caller"],
                event.args["bounty"],
                self.view.unit,
            )

    def _unopened(self, me: Contributor, task: Task) -> int | None:
        """The round of this account's last commitment if it was never revealed and its reveal phase is over
        (the stake is then forfeit), else None."""
        if me.last_round == 0:
            return None
        round_ = me.last_round - 1
        if self.market.commitment_of(self.task_id, round_, self.address) in (EMPTY, REVEALED, FORFEITED):
            return None
        reveal_end = self.market.get_round(self.task_id, round_).reveal_end
        if self.market.client.latest_timestamp() < reveal_end:
            return None
        if task.closed_at and task.closed_at < reveal_end:
            return None  # the task stopped before the reveal phase ended: nothing is forfeit
        return round_

    def _forfeit_own(self, round_: int, unopened: int) -> None:
        """This account cannot commit in ``round_`` while its commitment of ``unopened`` is unopened: forfeit
        it (the bounty comes back to this account rather than to whoever forfeits it first)."""
        log.warning(
            "round %d: cannot commit: this account's commitment of round %d was never revealed and its "
            "reveal phase is over, so its whole stake is forfeit; forfeiting it now (the bounty comes back "
            "to this account), then joining again with a new stake",
            round_,
            unopened,
        )
        self._send(round_, lambda: self.market.forfeit_unrevealed(self.task_id, unopened, self.address))

    def _note_waiting(self, round_: int, joined: int, minimum: int) -> None:
        """Say, now and then, that the node waits for the join phase to end, and for how long."""
        now = time.monotonic()
        last = self._waiting_noted
        if last is not None and last[0] == round_ and now - last[1] < WAITING_NOTE_S:
            return
        self._waiting_noted = (round_, now)
        starts = self.market.get_round(self.task_id, round_).starts_at
        left = max(0, starts - self.market.client.latest_timestamp())
        log.info(
            "round %d: waiting for the join phase to end in about %d s (%d contributors joined, at least %d "
            "needed)",
            round_,
            left,
            joined,
            minimum,
        )

    # ---------------------------------------------------------------- one round

    def _commit(self, round_: int) -> None:
        entry = self._journaled(round_)
        if entry is None:
            declared = self._privacy_check(round_)
            if declared is False:
                return
            entry = self._prepare(round_, declared)
        commitment = update_commitment(
            self.address, self.task_id, round_, bytes.fromhex(entry["digest"]), bytes.fromhex(entry["salt"])
        )
        log.info("round %d: committing update %s", round_, entry["cid"])
        try:
            self._send(round_, lambda: self.market.commit(self.task_id, round_, commitment))
        except ContractRevert as revert:
            if revert.name != "UnopenedCommitment":
                raise
            log.warning(
                "round %d: the market refused the commitment: this account's commitment of round %d was "
                "never revealed, so its stake is forfeit; it is forfeited at the next step, then the account "
                "joins again",
                round_,
                revert.arguments.get("round"),
            )

    def _privacy_check(self, round_: int) -> str | Literal[False] | None:
        """For a task with ``privacy.dp``: the epsilon this account will have spent once it sends this
        round's update (as its file declares it), or False, said once per round, when that would pass the
        task's ``max_epsilon``. None for a task without DP."""
        spec = self.view.spec
        dp = spec.privacy.dp if spec.privacy is not None else None
        if dp is None:
            return None
        if self.data is None:
            raise ConfigError("this contributor has no training data")
        ledger = self._ledger()
        declared = declare(ledger.spent_with(round_, round_mechanism(spec, len(self.data)), dp.delta))
        if within_budget(declared, dp.max_epsilon):
            return declared
        if round_ not in self._over_budget_noted:
            self._over_budget_noted.add(round_)
            log.warning(
                "round %d: not contributing: this round would take the privacy this account spent in task %d "
                "to epsilon %s at delta %g, past the task's max_epsilon %g (spent so far: %s)",
                round_,
                self.task_id,
                declared,
                dp.delta,
                dp.max_epsilon,
                declare(ledger.spent(dp.delta)),
            )
        return False

    def _ledger(self) -> PrivacyLedger:
        stored = self.journal.get(LEDGER_KEY)
        return PrivacyLedger() if stored is None else PrivacyLedger.from_json(stored)

    def _prepare(self, round_: int, declared: str | None) -> dict:
        """Train on the round's base model, store the update and journal it before anything is sent; under
        ``privacy.dp`` the round enters the privacy ledger before the update is stored."""
        if self.data is None:
            raise ConfigError("this contributor has no training data")
        spec = self.view.spec
        base = self.view.base_model(round_)
        with self.timings.measure(round_, "storage"):
            base_state = self.view.load_model(base)
        data = self.data
        if self.attack is not None and self.attack.poison is not None:
            data = self.attack.poison(data)
        with self.timings.measure(round_, "training"):
            if declared is None:
                result = train_round(
                    spec, base_state, data, round_, progress=self.progress, device=self.device
                )
            else:
                result = train_private_round(
                    spec, base_state, data, round_, progress=self.progress, device=self.device
                )
                ledger = self._ledger()
                if round_ not in ledger.rounds:  # a round retrained after a crash spends it once
                    ledger.record(round_, result.mechanism)
                    self.journal.put(LEDGER_KEY, ledger.to_json())
        delta = result.delta
        if self.attack is not None:
            rng = np.random.default_rng([spec.training.seed, round_, int(self.address, 16)])
            delta = self.attack.craft(delta, [], rng, 0, 0)
            log.warning(
                "round %d: submitting a %s attack instead of the trained update", round_, self.attack.name
            )
        else:
            check_update_fits(delta, spec.aggregation.number_format)
        samples = result.samples * (self.attack.claims if self.attack is not None else 1)
        metadata = update_metadata(self.task_id, round_, self.address, base.digest, samples)
        update = encode_update(delta, metadata if declared is None else {**metadata, EPSILON_KEY: declared})
        stored = update
        if spec.privacy is not None and spec.privacy.readers is not None:
            readers = [parse_reader_public(reader.key) for reader in spec.privacy.readers]
            stored = seal(update, readers, metadata)
        with self.timings.measure(round_, "storage"):
            cid = self.store.add(stored)
        entry = {
            "task": self.task_id,
            "round": round_,
            "base": base.digest.hex(),
            "cid": cid,
            "digest": hashlib.sha256(update).hexdigest(),
            "salt": new_salt().hex(),
            "samples": samples,
            "loss": result.loss,
        }
        self.journal.put(f"round-{round_}", entry)
        log.info("round %d: trained on %d samples (loss %.4f)", round_, result.samples, result.loss)
        return entry

    def _journaled(self, round_: int) -> dict | None:
        """The journal's update for ``round_`` if it was trained for this task, round and base model."""
        entry = self.journal.get(f"round-{round_}")
        if entry is None:
            return None
        base = self.view.base_model(round_).digest.hex()
        if (entry.get("task"), entry.get("round"), entry.get("base")) != (self.task_id, round_, base):
            log.warning(
                "round %d: the journal holds an update trained for another task or base model; training anew",
                round_,
            )
            return None
        return entry

    def _reveal(self, round_: int, commitment: bytes) -> None:
        entry = self._journaled(round_)
        if entry is None:
            raise NodeStateError(
                f"round {round_}: {self.address} committed, but this node's journal "
                f"({self.journal.root}) has no update for that commitment, so it cannot be revealed; was it "
                "committed by another process or from another state folder?"
            )
        expected = update_commitment(
            self.address, self.task_id, round_, bytes.fromhex(entry["digest"]), bytes.fromhex(entry["salt"])
        )
        if expected != commitment:
            raise NodeStateError(
                f"round {round_}: the update in this node's journal ({self.journal.root}) does not match "
                f"{self.address}'s commitment on chain, so it cannot be revealed; was the commitment sent by "
                "another process for this account?"
            )
        log.info("round %d: revealing %s", round_, entry["cid"])
        self._send(
            round_,
            lambda: self.market.reveal(
                self.task_id,
                round_,
                entry["cid"],
                bytes.fromhex(entry["digest"]),
                entry["samples"],
                bytes.fromhex(entry["salt"]),
            ),
        )

    # ---------------------------------------------------------------- rewards

    def claim_rewards(self, current_round: int) -> int:
        """Claim what finalized rounds up to ``current_round`` owe this account; return the amount claimed (in
        the task's currency)."""
        claimed = 0
        for round_ in range(current_round + 1):
            if self._settled(round_):
                continue
            r = self.market.get_round(self.task_id, round_) if round_ < self.view.spec.rounds else None
            if r is None or r.status in (RoundStatus.FAILED, RoundStatus.VOIDED):
                self._settle(round_, 0)
                continue
            if r.status != RoundStatus.FINALIZED:
                continue
            record = self.view.accepted_record(round_)
            tree = record.reward_tree
            if tree is None or self.address not in tree:
                self._settle(round_, 0)
                continue
            proof = tree.proof(self.address)
            if not self.market.is_claimed(self.task_id, round_, proof.index):
                log.info("round %d: claiming %d %s", round_, proof.amount, self.view.unit)
                claim = functools.partial(
                    self.market.claim,
                    self.task_id,
                    round_,
                    proof.index,
                    proof.account,
                    proof.amount,
                    proof.proof,
                )
                self._send(round_, claim)
                if not self.market.is_claimed(self.task_id, round_, proof.index):
                    continue  # refused: try again at the next step
                claimed += proof.amount
            self._settle(round_, proof.amount)
        return claimed

    def _settled(self, round_: int) -> bool:
        """Whether ``round_`` owes this account nothing more (claimed, or nothing to claim)."""
        if round_ in self._settled_rounds:
            return True
        if self.journal.get(f"claimed-{round_}") is None:
            return False
        self._settled_rounds.add(round_)
        return True

    def _settle(self, round_: int, amount: int) -> None:
        self.journal.put(f"claimed-{round_}", {"amount": amount})
        self._settled_rounds.add(round_)

    def _leave(self, me: Contributor) -> bool:
        """Take the stake back once the task is over; True when done (False: still locked, retry later). A
        last commitment left unopened forfeits the stake instead, which the log says."""
        if not me.joined:
            return True
        try:
            receipt = self.market.leave(self.task_id)
        except ContractRevert as revert:
            if revert.name == "NotJoined":
                # A slash applied since this step read the chain took the last of the stake: nothing is left
                # to take back, and the round outcomes already said why.
                log.info("task %d is over; the stake was slashed away: nothing to leave", self.task_id)
                return True
            if revert.name != "StakeLocked":
                raise
            return False
        events = self.market.receipt_events(receipt)
        forfeited = [e for e in events if e.name == "CommitmentForfeited"]
        if forfeited:
            self._forfeits_noted.add(forfeited[0].args["round"])
            log.warning(
                "task %d is over, but this account's commitment of round %d was never revealed: leaving "
                "forfeited its whole stake of %d %s; %d come back as the forfeit bounty (credits, which "
                "`cotrain claim` withdraws)",
                self.task_id,
                forfeited[0].args["round"],
                forfeited[0].args["amount"],
                self.view.unit,
                forfeited[0].args["bounty"],
            )
            return True
        refund = sum(e.args["refund"] for e in events if e.name == "ContributorLeft")
        standing = task_standing(self.view, self.address)
        accepted = sum(r.verdict == "accepted" for r in standing.rounds)
        log.info(
            "task %d is over: %d of %d rounds accepted, %d %s rewarded (%d claimed), %d slashed; left with "
            "the stake of %d",
            self.task_id,
            accepted,
            len(standing.rounds),
            standing.rewarded_wei,
            standing.unit,
            standing.claimed_wei,
            standing.slashed_wei,
            refund,
        )
        return True

    def _all_claimed(self, current_round: int) -> bool:
        last = min(current_round, self.view.spec.rounds - 1)
        return all(self._settled(r) for r in range(last + 1))

    def _send(self, round_: int, transaction: Callable[[], object]) -> None:
        send_tolerantly(transaction, self.timings, round_)


def check_update_fits(delta: dict, number_format: str) -> None:
    """Refuse to send an update the validators would reject ``out_of_range`` (and slash the stake for)."""
    width_bits, scale_bits = NUMBER_FORMATS[number_format]
    values = flatten_arrays({name: tensor.numpy() for name, tensor in delta.items()})
    count = overflow_count(values, scale_bits, width_bits)
    if count:
        limit = 2 ** (width_bits - 1 - scale_bits)
        raise ConfigError(
            f"the trained update has {count} value(s) of magnitude {limit} or more, which the task's "
            f"{number_format} format cannot hold; validators would reject it (out_of_range) and slash the "
            "stake, so it was not sent: the task's learning rate is too high for its data"
        )
