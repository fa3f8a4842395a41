"""Golden determinism: a round's record and model do not depend on torch's thread count or evaluation batch.

One real round of the digits MLP on the bundled data, judged by judge_round with the default screening:
four contributors train on disjoint shards of the built-in training split, a fifth reveals a sign-flipped
update (rejected: low_score) and a sixth a scaled one (rejected: outlier). The round is judged again under
torch thread counts 1, 2 and 4 and under held-out evaluation batches of 1, 7, 64 and 1024 examples (the
batch is a setting of learning.evaluation.evaluate that judge_round leaves at its default, so the test
injects it). The record and model digests must be the same every time; the held-out metrics, which come
from torch kernels and are advisory (beside the record, not in it), may differ in the last bits.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import Metrics, evaluate
from cotrain.learning.partition import partition_iid
from cotrain.learning.tensor_files import encode_update
from cotrain.learning.training import train_local
from cotrain.protocol import round_outcome
from cotrain.protocol.round_outcome import RevealedUpdate, RoundOutcome, judge_round, model_file
from cotrain.protocol.round_record import Reason
from cotrain.protocol.task_model import builtin_split, initial_state, task_model
from cotrain.protocol.task_spec import FileRef, TaskSpec, load_spec, validate_spec, with_initial_model
from cotrain.protocol.update_binding import update_metadata
from cotrain.storage.unixfs import compute_cid
from eth_utils import keccak, to_checksum_address

SPECS = Path(__file__).resolve().parents[3] / "node" / "cotrain" / "protocol" / "specs"
TASK_ID = 3
ROUND = 0
HONEST = 4
THREADS = (1, 2, 4)
EVAL_BATCHES = (1, 7, 64, 1024)


def _account(n: int) -> str:
    return to_checksum_address(keccak(f"determinism-{n}".encode())[-20:])


@dataclass(frozen=True)
class Round:
    """A round's public inputs: everything judge_round reads."""

    spec: TaskSpec
    base: FileRef
    base_state: dict[str, torch.Tensor]
    updates: list[RevealedUpdate]
    files: dict[str, bytes]
    held_out: ArrayDataset

    def judge(self) -> RoundOutcome:
        return judge_round(
            self.spec,
            TASK_ID,
            ROUND,
            10**18,
            self.base,
            self.base_state,
            self.updates,
            lambda update: self.files[update.cid],
            self.held_out,
        )


@dataclass(frozen=True)
class Judged:
    record_digest: bytes
    model_digest: bytes
    metrics: Metrics


def _judged(outcome: RoundOutcome) -> Judged:
    return Judged(
        hashlib.sha256(outcome.record_file).digest(),
        hashlib.sha256(outcome.model_file).digest(),
        outcome.advisory_metrics,
    )


@pytest.fixture(scope="module")
def round_() -> Round:
    data = load_spec(SPECS / "digits.yaml").model_dump(mode="json", exclude={"initial_model"})
    data["model"] = {"name": "mlp", "params": {"hidden": [64, 32]}}
    data["data"]["input_shape"] = [64]
    spec = validate_spec(data)
    base_state = initial_state(spec)
    base_file = model_file(TASK_ID, ROUND - 1, base_state)
    base = FileRef(cid=compute_cid(base_file), digest=hashlib.sha256(base_file).digest())
    spec = with_initial_model(spec, base.cid, base.digest)
    train, held_out = builtin_split(spec)
    files: dict[str, bytes] = {}
    updates = []

    def reveal(contributor: str, delta: dict[str, torch.Tensor], samples: int) -> None:
        meta = update_metadata(TASK_ID, ROUND, contributor, base.digest, samples)
        file = encode_update(delta, meta)
        files[compute_cid(file)] = file
        updates.append(RevealedUpdate(contributor, compute_cid(file), hashlib.sha256(file).digest(), samples))

    deltas = []
    for n, part in enumerate(partition_iid(len(train), HONEST, 0)):
        result = train_local(
            task_model(spec),
            base_state,
            train.subset(part),
            epochs=1,
            batch_size=spec.training.batch_size,
            lr=spec.training.lr,
            optimizer=spec.training.optimizer,
            seed=spec.training.seed,
        )
        deltas.append(result.delta)
        reveal(_account(n), result.delta, result.samples)
    reveal(_account(HONEST), {k: -v for k, v in deltas[0].items()}, 100)  # sign-flipped
    reveal(_account(HONEST + 1), {k: 100 * v for k, v in deltas[1].items()}, 100)  # scaled
    return Round(spec, base, base_state, updates, files, held_out)


@pytest.fixture
def threads() -> Iterator[None]:
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def reference(round_: Round) -> Judged:
    outcome = round_.judge()
    reasons = sorted(u.reason for u in outcome.record.updates)
    assert reasons == sorted([Reason.OK] * HONEST + [Reason.LOW_SCORE, Reason.OUTLIER]), reasons
    return _judged(outcome)


def test_torch_thread_count_does_not_change_the_record_or_the_model(
    round_: Round, reference: Judged, threads: None
) -> None:
    losses = set()
    for count in THREADS:
        # Execute
        torch.set_num_threads(count)
        judged = _judged(round_.judge())

        # Assert
        assert judged.record_digest == reference.record_digest, f"{count} threads"
        assert judged.model_digest == reference.model_digest, f"{count} threads"
        assert judged.metrics.loss == pytest.approx(reference.metrics.loss, rel=1e-5)
        losses.add(judged.metrics.loss)
    print(f"advisory losses under torch threads {THREADS}: {sorted(losses)}")


def test_evaluation_batch_size_does_not_change_the_record_or_the_model(
    round_: Round, reference: Judged, monkeypatch: pytest.MonkeyPatch
) -> None:
    losses = set()
    for batch in EVAL_BATCHES:
        # Prepare: fault injection of a setting judge_round does not expose
        monkeypatch.setattr(round_outcome, "evaluate", functools.partial(evaluate, batch_size=batch))

        # Execute
        judged = _judged(round_.judge())

        # Assert
        assert judged.record_digest == reference.record_digest, f"evaluation batch {batch}"
        assert judged.model_digest == reference.model_digest, f"evaluation batch {batch}"
        # The advisory metrics: the same examples, summed in other orders, so the loss agrees to rounding.
        assert judged.metrics.accuracy == reference.metrics.accuracy
        assert judged.metrics.loss == pytest.approx(reference.metrics.loss, rel=1e-5)
        losses.add(judged.metrics.loss)
    print(f"advisory losses under evaluation batches {EVAL_BATCHES}: {sorted(losses)}")


def test_held_out_metrics_of_another_machine_do_not_reach_the_record(
    round_: Round, reference: Judged, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: kernels far less exact than any real machine's (one example flips, the loss moves by 0.1%).
    def other_machine(*args: object, **kwargs: object) -> Metrics:
        measured = evaluate(*args, **kwargs)  # type: ignore[arg-type]
        return Metrics(measured.accuracy - 1 / measured.samples, measured.loss * 1.001, measured.samples)

    monkeypatch.setattr(round_outcome, "evaluate", other_machine)

    # Execute
    judged = _judged(round_.judge())

    # Assert
    assert judged.metrics != reference.metrics
    assert (judged.record_digest, judged.model_digest) == (reference.record_digest, reference.model_digest)
