"""Judging one round on a node: the consensus core, plus the new model's advisory held-out metrics.

:func:`~cotrain.protocol.round_judge.judge` (torch-free, exact) makes the record and the model file; this
module wraps it for the roles and the experiments, which hold models as torch state dicts, and adds the new
model's held-out accuracy and loss. Those come from torch kernels, whose last bits depend on the CPU, thread
count and batch size, so they are advisory: returned beside the record
(:attr:`RoundOutcome.advisory_metrics`), never hashed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from cotrain.learning.data import ArrayDataset
from cotrain.learning.evaluation import Metrics, evaluate
from cotrain.protocol.round_judge import RevealedUpdate, file_ref, judge, model_file
from cotrain.protocol.round_record import RoundRecord
from cotrain.protocol.task_model import task_model
from cotrain.protocol.task_spec import FileRef, TaskSpec

__all__ = ["RevealedUpdate", "RoundOutcome", "judge_round", "model_file"]


@dataclass(frozen=True)
class RoundOutcome:
    """Everything a validator stores and proposes for a round, and the new model's advisory metrics.

    ``advisory_metrics`` is the new model's accuracy and loss on the held-out set as this machine's torch
    computes them: for logs and reports only. It is neither in the record nor in the proposal, so two honest
    machines whose kernels round differently still propose the same result.
    """

    record: RoundRecord
    record_file: bytes
    model_file: bytes
    state: dict[str, torch.Tensor]
    advisory_metrics: Metrics

    @property
    def record_ref(self) -> FileRef:
        return file_ref(self.record_file)


def judge_round(
    spec: TaskSpec,
    task_id: int,
    round_: int,
    round_budget: int,
    base: FileRef,
    base_state: dict[str, torch.Tensor],
    updates: Sequence[RevealedUpdate],
    fetch: Callable[[RevealedUpdate], bytes],
    held_out: ArrayDataset,
) -> RoundOutcome:
    """:func:`~cotrain.protocol.round_judge.judge` on a torch base state, and the advisory metrics.

    Parameters
    ----------
    fetch
        Returns an update's file after checking it against its CID and digest; raises
        :class:`~cotrain.errors.IntegrityError` (or ``UpdateRejected``) when it cannot.
    held_out
        The task's held-out set; the new model is evaluated on it for the outcome's advisory metrics only
        (accuracy, loss, and the spec's ``data.validation.metrics``).
    """
    base_arrays = {name: tensor.detach().cpu().numpy() for name, tensor in base_state.items()}
    judged = judge(spec, task_id, round_, round_budget, base, base_arrays, updates, fetch)
    state = {name: torch.from_numpy(array) for name, array in judged.arrays.items()}
    metrics = evaluate(task_model(spec), state, held_out, metrics=spec.data.validation.metrics or ())
    return RoundOutcome(judged.record, judged.record_file, judged.model_file, state, metrics)
