"""The validator: bonds, and once a round's reveals are in, judges the round (fetch, check, aggregate,
evaluate, reward), stores the record and the new model, and proposes their digests and Merkle roots. It also
does the housekeeping anyone may do: forfeiting the stakes of commitments left unopened after a reveal phase
(for a bounty), failing dead rounds, finalizing, applying slashes, withdrawing its bond and credits.

Restart-safe without a journal: a proposal is a pure function of public data, and the chain says whether this
validator already proposed."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from cotrain.chain.market import FORFEITED, REVEALED, Market, Phase, Proposal, RoundStatus, Task, TaskStatus
from cotrain.errors import IntegrityError, StorageError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.tensor_files import RejectReason, UpdateRejected
from cotrain.privacy.sealed import sealed_limit
from cotrain.protocol.round_outcome import RevealedUpdate, RoundOutcome, judge_round
from cotrain.roles.currency import withdraw_credits
from cotrain.roles.disagreement import explain_against, proposals_by_result
from cotrain.roles.sealed_updates import Opener, check_reader
from cotrain.roles.task_view import TaskView
from cotrain.roles.timings import Timings
from cotrain.roles.transactions import send_tolerantly
from cotrain.storage.base import ContentStore, ContentTooLargeError, fetch_verified, within
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from web3.types import TxReceipt

log = logging.getLogger(__name__)
EMPTY = bytes(32)
FINALIZE_STAGGER_S = 5


def verified_fetch(
    store: ContentStore, max_bytes: int, opener: Opener | None = None, *, deadline: float | None = None
):
    """A ``fetch`` for :func:`judge_round` that turns storage failures into reject reasons; with ``opener``
    (sealed tasks) the file is checked by its CID alone and opened by ``opener``.

    With ``deadline`` (a :func:`time.monotonic` time) no fetch outlasts it: a file the store cannot deliver
    by then, e.g. because its author's node went offline and no peer holds it, is ``missing`` (the round
    record's ``unavailable``), never a validator that hangs past the validation phase.
    """

    def fetch(update: RevealedUpdate) -> bytes:
        limit = max_bytes if opener is None else sealed_limit(max_bytes)
        digest = update.digest if opener is None else None
        source = store
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UpdateRejected(
                    RejectReason.MISSING, f"{update.cid}: the validation deadline passed before its fetch"
                )
            source = within(store, left)
        try:
            data = fetch_verified(source, update.cid, digest, max_size=limit)
        except ContentTooLargeError as error:
            raise UpdateRejected(RejectReason.OVERSIZE, str(error)) from None
        except IntegrityError as error:
            raise UpdateRejected(RejectReason.DIGEST_MISMATCH, str(error)) from None
        except StorageError as error:
            raise UpdateRejected(RejectReason.MISSING, str(error)) from None
        return data if opener is None else opener(update, data)

    return fetch


def judge(
    view: TaskView,
    round_: int,
    held_out: ArrayDataset,
    reader_key: X25519PrivateKey | None = None,
    *,
    fetch_deadline: float | None = None,
) -> RoundOutcome:
    """Judge ``round_`` of the viewed task from public data (validators and auditors share this); a sealed
    task needs one of its readers' keys. A validator passes ``fetch_deadline`` (see :func:`verified_fetch`);
    an auditor, replaying the round later, waits for files as long as its store does.

    Raises
    ------
    ConfigError
        If the task is sealed and ``reader_key`` is None or not one of its readers'.
    """
    spec = view.spec
    base = view.base_model(round_)
    opener = None
    if spec.privacy is not None and spec.privacy.readers is not None:
        check_reader(spec, reader_key, view.task_id)
        assert reader_key is not None
        opener = Opener(spec, view.task_id, round_, base, reader_key)
    return judge_round(
        spec,
        view.task_id,
        round_,
        view.market.get_task(view.task_id).round_budget,
        base,
        view.load_model(base),
        view.revealed(round_),
        verified_fetch(view.store, spec.limits.max_update_bytes, opener, deadline=fetch_deadline),
        held_out,
    )


class ValidatorNode:
    """Acts for one validator account on one task; call :meth:`step` repeatedly."""

    def __init__(
        self,
        market: Market,
        store: ContentStore,
        task_id: int,
        held_out: ArrayDataset,
        *,
        timings: Timings | None = None,
        reader_key: X25519PrivateKey | None = None,
    ) -> None:
        self.market = market
        self.store = store
        self.task_id = task_id
        self.held_out = held_out
        self.address = market.client.signing_address()
        self.view = TaskView(market, store, task_id)
        check_reader(self.view.spec, reader_key, task_id)
        self.reader_key = reader_key
        self.timings = timings or Timings()
        self.outcomes: dict[int, RoundOutcome] = {}
        self.settled: set[int] = set()  # rounds with nothing left to do
        self.forfeits_done: set[int] = set()  # rounds whose unopened commitments were all forfeited
        self._disagreements_reported: set[int] = set()
        self._stagger: int | None = None

    def step(self) -> bool:
        """Do what is due now; return True once the task is over and nothing is left to settle."""
        self.view.refresh()
        task = self.market.get_task(self.task_id)
        me = self.market.validator_info(self.task_id, self.address)
        if task.status == TaskStatus.ACTIVE and me.bond < task.params.validator_bond:
            missing = task.params.validator_bond - me.bond
            if me.bond:
                log.info(
                    "topping the slashed bond of %d %s up by %d on task %d",
                    me.bond,
                    self.view.unit,
                    missing,
                    self.task_id,
                )
            else:
                log.info("bonding %d %s on task %d", missing, self.view.unit, self.task_id)
            self._send(task.current_round, lambda: self.market.bond_validator(self.task_id))
            return False
        last = min(task.current_round, task.params.num_rounds - 1)
        for round_ in range(last + 1):
            if round_ not in self.forfeits_done:
                self._forfeit_unopened(round_, task)
            if round_ not in self.settled:
                self._settle(round_, task.params.challenge_duration)
        if task.status == TaskStatus.ACTIVE:
            self._validate(task.current_round)
            return False
        if task.pending_rounds == 0:
            if me.bond:
                log.info("task %d is over: withdrawing the bond", self.task_id)
                self._send(task.current_round, lambda: self.market.withdraw_bond(self.task_id))
            self._send(task.current_round, self._withdraw_credits)
            return True
        return False

    def _forfeit_unopened(self, round_: int, task: Task) -> None:
        """Once ``round_``'s reveal phase is over, take the stake of every contributor that committed in it
        and did not reveal (UpdateCommitted less UpdateRevealed); this validator is credited the bounty.
        Another node forfeiting first is a race, not an error."""
        r = self.market.get_round(self.task_id, round_)
        now = self.market.client.latest_timestamp()
        if now < r.reveal_end:
            return
        if task.closed_at and task.closed_at < r.reveal_end:
            self.forfeits_done.add(round_)  # the task stopped during the round: nobody forfeits
            return
        if now < r.reveal_end + self._finalize_delay():
            return  # the first listed validator goes first; the others only if it has not
        self.view.refresh()  # every commit and reveal of the round is mined by now
        revealed = {e.args["contributor"] for e in self.view.events("UpdateRevealed", round_)}
        unopened = [
            e.args["contributor"]
            for e in self.view.events("UpdateCommitted", round_)
            if e.args["contributor"] not in revealed
        ]
        for account in unopened:
            if self.market.commitment_of(self.task_id, round_, account) in (REVEALED, FORFEITED, EMPTY):
                continue  # forfeited already (or this view lags the chain)
            receipts: list[TxReceipt] = []
            forfeit = functools.partial(self._forfeit, receipts, round_, account)
            if not send_tolerantly(forfeit, self.timings, round_):
                continue
            for event in self.market.receipt_events(receipts[0]):
                if event.name == "CommitmentForfeited":
                    log.warning(
                        "round %d: %s committed and never revealed: forfeited its stake of %d %s, a bounty "
                        "of %d %s to this validator",
                        round_,
                        account,
                        event.args["amount"],
                        self.view.unit,
                        event.args["bounty"],
                        self.view.unit,
                    )
        self.forfeits_done.add(round_)

    def _withdraw_credits(self) -> None:
        """Withdraw this account's credits in the task's currency (forfeit bounties), saying how much."""
        amount = withdraw_credits(self.market, self.task_id)
        if amount:
            log.info("withdrew %d %s of credits (forfeit bounties)", amount, self.view.unit)

    def _forfeit(self, receipts: list[TxReceipt], round_: int, account: str) -> None:
        receipts.append(self.market.forfeit_unrevealed(self.task_id, round_, account))

    def _validate(self, round_: int) -> None:
        phase = self.market.phase(self.task_id)
        if phase == Phase.EXPIRED:
            log.info("round %d expired without a result: failing it", round_)
            self._send(round_, lambda: self.market.fail_round(self.task_id))
        elif phase == Phase.VALIDATE:
            self._propose(round_)

    def _propose(self, round_: int) -> None:
        if self.market.proposal_of(self.task_id, round_, self.address) != EMPTY:
            return
        r = self.market.get_round(self.task_id, round_)
        if r.reveals < self.view.spec.contributors.min:
            return  # too few reveals: the round fails at its deadline
        if len(self.view.revealed(round_)) != r.reveals:
            self.view.refresh()  # a block arrived after this step's scan
            if len(self.view.revealed(round_)) != r.reveals:
                return
        left = r.validate_end - self.market.client.latest_timestamp()
        outcome = self._outcome(round_, fetch_deadline=time.monotonic() + left)
        record = outcome.record
        with self.timings.measure(round_, "storage"):
            for data in (outcome.model_file, outcome.record_file):
                self.store.add(data)
        proposal = Proposal(
            model_digest=record.new_model.digest,
            record_digest=outcome.record_ref.digest,
            rewards_root=record.rewards_root,
            slash_root=record.slash_root,
            reward_total=record.reward_total,
            model_cid=record.new_model.cid,
            record_cid=outcome.record_ref.cid,
        )
        accepted = sum(u.verdict == "accepted" for u in record.updates)
        extra = "".join(f", {name} {value:.4f}" for name, value in outcome.advisory_metrics.extra.items())
        log.info(
            "round %d: %d accepted, %d rejected, accuracy %.4f%s (advisory, this machine); proposing",
            round_,
            accepted,
            len(record.updates) - accepted,
            outcome.advisory_metrics.accuracy,
            extra,
        )
        self._send(round_, lambda: self.market.propose(self.task_id, round_, proposal))

    def _outcome(self, round_: int, *, fetch_deadline: float | None = None) -> RoundOutcome:
        """This validator's judgement of ``round_`` (judged once per process); a judgement for a proposal
        fetches nothing past ``fetch_deadline``, one for a report afterwards waits as long as the store."""
        if round_ not in self.outcomes:
            with self.timings.measure(round_, "validation"):
                self.outcomes[round_] = judge(
                    self.view, round_, self.held_out, self.reader_key, fetch_deadline=fetch_deadline
                )
        return self.outcomes[round_]

    def _report_disagreement(self, round_: int, accepted_hash: bytes | None) -> None:
        """Say, once, which fields of this validator's record differ from the accepted result, or, for a
        round that failed, from each other result proposed."""
        if round_ in self._disagreements_reported:
            return
        mine = self.market.proposal_of(self.task_id, round_, self.address)
        if accepted_hash is not None and mine == EMPTY:
            return  # it may still agree late; compare once it proposed
        self._disagreements_reported.add(round_)
        results = proposals_by_result(self.view, round_)
        if accepted_hash is not None:
            if mine == accepted_hash:
                return
            record = self._outcome(round_).record
            accepted = results[accepted_hash][0]
            log.error(
                "round %d: the quorum accepted another result than this validator's, which loses part of "
                "its bond; fields that differ: %s",
                round_,
                explain_against(self.view, record, accepted),
            )
            return
        if len(results) < 2:
            return
        votes = ", ".join(f"{len(voters)} for {h.hex()[:10]}" for h, (_, voters) in results.items())
        log.error(
            "round %d failed: validators proposed %d different results (%s)", round_, len(results), votes
        )
        if mine == EMPTY:
            return
        record = self._outcome(round_).record
        for result_hash, (proposal, voters) in results.items():
            if result_hash != mine:
                log.error(
                    "round %d: fields where %s differ from this validator: %s",
                    round_,
                    ", ".join(voters),
                    explain_against(self.view, record, proposal),
                )

    def _settle(self, round_: int, challenge_duration: int) -> None:
        """Late agreement, finalization and slashes for an earlier round."""
        r = self.market.get_round(self.task_id, round_)
        if r.status in (RoundStatus.ACCEPTED, RoundStatus.FINALIZED):
            self._report_disagreement(round_, r.accepted_hash)
        elif r.status == RoundStatus.FAILED:
            self._report_disagreement(round_, None)
        if r.status == RoundStatus.ACCEPTED:
            now = self.market.client.latest_timestamp()
            mine = self.market.proposal_of(self.task_id, round_, self.address)
            if mine == EMPTY and now < r.validate_end:
                self._propose(round_)  # agreeing late still spares the bond
            elif now >= r.accepted_at + challenge_duration + self._finalize_delay():
                log.info("round %d: challenge window over, finalizing", round_)
                self._send(round_, lambda: self.market.finalize_round(self.task_id, round_))
        elif r.status == RoundStatus.FINALIZED:
            now = self.market.client.latest_timestamp()
            if r.slash_root != EMPTY and now <= r.finalized_at + challenge_duration:
                self._apply_slashes(round_)
            self.settled.add(round_)
        elif r.status in (RoundStatus.FAILED, RoundStatus.VOIDED):
            self.settled.add(round_)

    def _finalize_delay(self) -> int:
        """Seconds this validator waits after a challenge window before finalizing: the first listed
        validator goes at once, the others only if it has not (anyone may finalize; one is enough)."""
        if self._stagger is None:
            listed = [a.lower() for a in self.market.validators_of(self.task_id)]
            self._stagger = FINALIZE_STAGGER_S * listed.index(self.address.lower())
        return self._stagger

    def _apply_slashes(self, round_: int) -> None:
        record = self.view.accepted_record(round_)
        for allocation in record.slash_allocations:
            proof = record.slash_proof(allocation.account)
            if self.market.is_slashed(self.task_id, round_, proof.index):
                continue
            log.info("round %d: slashing %s by %d %s", round_, proof.account, proof.amount, self.view.unit)
            slash = functools.partial(
                self.market.slash_contributor,
                self.task_id,
                round_,
                proof.index,
                proof.account,
                proof.amount,
                proof.proof,
            )
            self._send(round_, slash)

    def _send(self, round_: int, transaction: Callable[[], object]) -> None:
        send_tolerantly(transaction, self.timings, round_)
