"""One task as every role sees it: its spec, rounds, models and records, read from chain events and storage.

Everything here is derived from public data, so any node (or an auditor years later) rebuilds the same
view. Events are scanned incrementally; files are fetched through :func:`fetch_verified`, so nothing is
parsed before it matched its on-chain digest.
"""

from __future__ import annotations

import logging
from functools import cached_property

import torch
from cotrain.chain.market import Market, MarketEvent, Proposal, RoundStatus
from cotrain.errors import ChainError
from cotrain.learning.state import layout
from cotrain.learning.tensor_files import decode_tensors
from cotrain.protocol.round_outcome import RevealedUpdate
from cotrain.protocol.round_record import RoundRecord
from cotrain.protocol.task_model import initial_state
from cotrain.protocol.task_spec import FileRef, TaskSpec, parse_spec_bytes
from cotrain.roles.currency import task_unit
from cotrain.roles.record_cache import MAX_RECORD_BYTES, RecordCache
from cotrain.storage.base import ContentStore, fetch_verified

_log = logging.getLogger("cotrain")

#: Upper bound for a global model file.
MAX_MODEL_BYTES = 512 * 1024 * 1024


class TaskView:
    """Read-only view of one task on one market, backed by a content store."""

    def __init__(self, market: Market, store: ContentStore, task_id: int) -> None:
        self.market = market
        self.store = store
        self.task_id = task_id
        self._events: list[MarketEvent] = []
        self._scanned_to = market.deploy_block - 1
        self._scanned_hash: str | None = None  # the hash block _scanned_to had, kept where reorgs matter
        self._models: dict[bytes, dict[str, torch.Tensor]] = {}
        self.records = RecordCache(store)
        self._finalized: dict[int, Proposal] = {}  # accepted proposals of finalized rounds

    # ---------------------------------------------------------------- events

    def refresh(self) -> None:
        """Read the task's events final since the last refresh (under the client's ``confirmations``
        blocks: a log a reorganisation may still remove is left for a later refresh).

        With confirmations, a reorganisation deeper than them (the last block read changed its hash) is
        noticed: the task's events are read again from the start, so none is missed or kept twice.
        """
        client = self.market.client
        head = client.final_block()
        if self._scanned_hash is not None and client.block_hash(self._scanned_to) != self._scanned_hash:
            _log.warning(
                "block %d of chain %d changed after %d confirmations (a deeper reorganisation): reading "
                "task %d's events again",
                self._scanned_to,
                client.chain_id,
                client.confirmations,
                self.task_id,
            )
            self._events, self._scanned_to, self._scanned_hash = [], self.market.deploy_block - 1, None
            self._finalized.clear()
        if head <= self._scanned_to:
            return
        self._events += self.market.events(
            task_id=self.task_id, from_block=self._scanned_to + 1, to_block=head
        )
        self._scanned_to = head
        if client.confirmations:
            self._scanned_hash = client.block_hash(head)

    def events(self, name: str, round_: int | None = None) -> list[MarketEvent]:
        """The task's events called ``name`` (of ``round_`` when given), oldest first."""
        return [
            e for e in self._events if e.name == name and (round_ is None or e.args.get("round") == round_)
        ]

    # ---------------------------------------------------------------- spec and models

    def created_event(self) -> MarketEvent:
        """The event that created the task."""
        created = self.events("TaskCreated")
        if not created:
            self.refresh()
            created = self.events("TaskCreated")
        if not created:
            raise ChainError(f"task {self.task_id} does not exist on market {self.market.address}")
        return created[0]

    @cached_property
    def spec(self) -> TaskSpec:
        """The task spec, checked against the digest the market holds."""
        created = self.created_event()
        params = self.market.get_task(self.task_id).params
        data = fetch_verified(
            self.store, created.args["specCid"], params.spec_digest, max_size=MAX_RECORD_BYTES
        )
        return parse_spec_bytes(data)

    @cached_property
    def unit(self) -> str:
        """What the task's amounts are counted in: ``wei``, or ``units of token 0x...`` on a token task."""
        return task_unit(self.market, self.task_id)

    @cached_property
    def model_layout(self) -> dict:
        return layout(initial_state(self.spec))

    def accepted_proposal(self, round_: int) -> Proposal | None:
        """The proposal a quorum accepted for ``round_`` (also after finalization), else None.

        A finalized round's is remembered (finalization is final); an accepted one's is read again each time,
        since a challenge can still void it.
        """
        if round_ in self._finalized:
            return self._finalized[round_]
        r = self.market.get_round(self.task_id, round_)
        if r.status not in (RoundStatus.ACCEPTED, RoundStatus.FINALIZED):
            return None
        proposal = self._proposal(round_, r.accepted_hash)
        if r.status == RoundStatus.FINALIZED:
            self._finalized[round_] = proposal
        return proposal

    def _proposal(self, round_: int, proposal_hash: bytes) -> Proposal:
        for event in self.events("RoundProposed", round_):
            if event.args["proposalHash"] == proposal_hash:
                return event.args["proposal"]
        self.refresh()
        for event in self.events("RoundProposed", round_):
            if event.args["proposalHash"] == proposal_hash:
                return event.args["proposal"]
        raise ChainError(f"round {round_} of task {self.task_id} is accepted but no proposal event matches")

    def base_model(self, round_: int) -> FileRef:
        """The model ``round_`` starts from: the last accepted model before it, else the initial model."""
        for earlier in range(round_ - 1, -1, -1):
            proposal = self.accepted_proposal(earlier)
            if proposal is not None:
                return FileRef(cid=proposal.model_cid, digest=proposal.model_digest)
        if self.spec.initial_model is None:
            raise ChainError(f"task {self.task_id}'s spec names no initial model")
        return self.spec.initial_model

    def load_model(self, ref: FileRef) -> dict[str, torch.Tensor]:
        """The weights in the model file ``ref``, verified and decoded (cached by digest)."""
        if ref.digest not in self._models:
            data = fetch_verified(self.store, ref.cid, ref.digest, max_size=MAX_MODEL_BYTES)
            tensors, _ = decode_tensors(data, expected=self.model_layout, max_bytes=MAX_MODEL_BYTES)
            self._models[ref.digest] = tensors
        return self._models[ref.digest]

    # ---------------------------------------------------------------- rounds

    def revealed(self, round_: int) -> list[RevealedUpdate]:
        """The updates revealed in ``round_``, as the chain recorded them, with their commits' order."""
        committed = [e.args["contributor"].lower() for e in self.events("UpdateCommitted", round_)]
        return [
            RevealedUpdate(
                contributor=e.args["contributor"],
                cid=e.args["cid"],
                digest=e.args["updateDigest"],
                samples=e.args["numSamples"],
                commit_order=committed.index(e.args["contributor"].lower()),
            )
            for e in self.events("UpdateRevealed", round_)
        ]

    def accepted_record(self, round_: int) -> RoundRecord:
        """The accepted round record of ``round_``; raises ChainError when the round has none."""
        record = self.record(round_)
        if record is None:
            raise ChainError(f"round {round_} of task {self.task_id} has no accepted result")
        return record

    def record(self, round_: int) -> RoundRecord | None:
        """The accepted round record of ``round_``, verified against the accepted proposal, else None.

        Records are cached by digest (:class:`RecordCache`): a step reads the chain's accepted proposal each
        time, and its record is fetched and parsed only when that proposal names a record not read yet.
        """
        proposal = self.accepted_proposal(round_)
        if proposal is None:
            return None
        return self.records.load(FileRef(cid=proposal.record_cid, digest=proposal.record_digest))
