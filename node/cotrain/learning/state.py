"""Model states as plain dicts of detached float32 CPU tensors in sorted key order.

Every state and delta that crosses a module boundary in the learning layer has this form, so two nodes holding
the same numbers also hold the same dict, iterate it in the same order and serialize it to the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cotrain.errors import ConfigError, IntegrityError

Layout = dict[str, tuple[tuple[int, ...], torch.dtype]]


def float32_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Return a copy of ``state`` as detached, contiguous float32 CPU tensors in sorted key order.

    Parameters
    ----------
    state : Mapping[str, torch.Tensor]
        A ``state_dict`` or any mapping of names to floating-point tensors.

    Raises
    ------
    ConfigError
        If a value is not a floating-point tensor (an integer buffer cannot be averaged meaningfully).
    """
    result: dict[str, torch.Tensor] = {}
    for key in sorted(state):
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise ConfigError(
                f"state entry {key!r} is not a floating-point tensor; only models whose whole state is "
                "floating point can be trained and averaged"
            )
        result[key] = tensor.detach().to(device="cpu", dtype=torch.float32, copy=True).contiguous()
    return result


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return a float32 copy of ``model``'s ``state_dict`` in sorted key order (see :func:`float32_state`)."""
    return float32_state(model.state_dict())


def layout(state: Mapping[str, torch.Tensor]) -> Layout:
    """Return ``{name: (shape, dtype)}`` for ``state``, the form ``decode_tensors(expected=...)`` takes."""
    return {key: (tuple(state[key].shape), state[key].dtype) for key in sorted(state)}


def check_same_layout(
    reference: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor], *, what: str
) -> None:
    """Check that ``other`` has exactly the keys, shapes and dtypes of ``reference``.

    Parameters
    ----------
    reference, other : Mapping[str, torch.Tensor]
        The two states to compare.
    what : str
        How to name ``other`` in the error message, for instance ``"delta 3"``.

    Raises
    ------
    IntegrityError
        Naming the first missing or unexpected key, or the first tensor whose shape or dtype differs.
    """
    missing = sorted(set(reference) - set(other))
    unexpected = sorted(set(other) - set(reference))
    if missing or unexpected:
        raise IntegrityError(f"{what} has the wrong keys: missing {missing}, unexpected {unexpected}")
    for key in sorted(reference):
        want, got = reference[key], other[key]
        if tuple(got.shape) != tuple(want.shape):
            raise IntegrityError(
                f"{what}[{key!r}] has shape {tuple(got.shape)}, expected {tuple(want.shape)}"
            )
        if got.dtype != want.dtype:
            raise IntegrityError(f"{what}[{key!r}] has dtype {got.dtype}, expected {want.dtype}")


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy ``state`` into ``model``'s parameters after checking that it fits exactly.

    Raises
    ------
    IntegrityError
        If ``state`` lacks a key of the model, has an extra one, or a shape or dtype differs.
    """
    check_same_layout(model.state_dict(), state, what="state")
    model.load_state_dict(dict(state), strict=True)
