"""Float FedAvg on state dicts: the float32 baseline that the benchmarks compare fixed-point aggregation with.

**Not the consensus arithmetic.** Validators aggregate fixed-point integer vectors with the rule modules of
:mod:`cotrain.learning.rules` in the exact arithmetic of :mod:`cotrain.consensus.exact` (PROTOCOL.md section
11). This module is what ``bench/accuracy.py`` and ``bench/fixed_point.py`` (and the tests' small federated
runs) use: for each entry, with deltas ``d_1 .. d_n`` (float32) and weights ``w_1 .. w_n``::

    W   = ((w_1 + w_2) + ...) + w_n                      in float64, in the given order
    acc = ((w_1 * d_1 + w_2 * d_2) + ...) + w_n * d_n   in float64, element by element, in the given order
    avg = float32(acc / W)                               one IEEE division, rounded to nearest even

Each step is a single correctly rounded IEEE-754 operation on independent elements (numpy ufuncs, never fused
or reordered), so the result does not depend on thread count, vector width or machine. It is the float64
weighted mean of :mod:`cotrain.learning.robust` (``StreamingMean``) on the deltas flattened in sorted key
order.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data", AISTATS 2017.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from cotrain.errors import IntegrityError
from cotrain.learning.robust import flatten, float64_weights, unflatten, weighted_mean
from cotrain.learning.state import check_same_layout


def _check_float32(delta: Mapping[str, torch.Tensor], what: str) -> None:
    for key in sorted(delta):
        tensor = delta[key]
        if (
            not isinstance(tensor, torch.Tensor)
            or tensor.dtype != torch.float32
            or tensor.device.type != "cpu"
        ):
            raise IntegrityError(f"{what}[{key!r}] must be a float32 CPU tensor")


def fedavg(
    deltas: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[int | float]
) -> dict[str, torch.Tensor]:
    """Average ``deltas`` weighted by ``weights`` (typically sample counts), as the module docstring defines.

    Parameters
    ----------
    deltas : Sequence[Mapping[str, torch.Tensor]]
        One or more updates with identical keys and shapes, all float32 CPU tensors.
    weights : Sequence[int | float]
        One finite, non-negative weight per delta, with a positive sum.

    Returns
    -------
    dict[str, torch.Tensor]
        The weighted mean, float32, in sorted key order. The inputs are not modified.

    Raises
    ------
    IntegrityError
        If there are no deltas, the counts differ, a weight is invalid or all are zero, or a delta's keys,
        shapes or dtypes differ from the first one's.
    """
    if not deltas:
        raise IntegrityError("there are no deltas to average")
    scales = float64_weights(weights, len(deltas), what="deltas")
    reference = deltas[0]
    for i, delta in enumerate(deltas):
        _check_float32(delta, f"delta {i}")
        check_same_layout(reference, delta, what=f"delta {i}")
    # The one weighted mean (robust.StreamingMean) on each delta flattened in sorted key order: the
    # arithmetic is per element, so flattening changes no bit.
    return unflatten(weighted_mean([flatten(delta) for delta in deltas], scales), reference)


def apply_delta(
    state: Mapping[str, torch.Tensor], delta: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Return ``state + delta``, entry by entry, as float32 in sorted key order.

    Parameters
    ----------
    state : Mapping[str, torch.Tensor]
        The current global weights, float32 CPU tensors.
    delta : Mapping[str, torch.Tensor]
        An update with exactly the same keys and shapes, float32 CPU tensors.

    Raises
    ------
    IntegrityError
        If keys, shapes or dtypes differ, or a tensor is not float32 on the CPU.
    """
    _check_float32(state, "state")
    _check_float32(delta, "delta")
    check_same_layout(state, delta, what="delta")
    return {
        key: torch.from_numpy(
            np.add(state[key].detach().numpy(), delta[key].detach().numpy(), dtype=np.float32)
        )
        for key in sorted(state)
    }
