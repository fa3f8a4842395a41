"""The base of every rule's parameters model, and the number parsing it shares with the task spec."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def float_from_text(value: Any) -> Any:
    """Read a string holding a number as that float; leave anything else for the field to judge."""
    # PyYAML reads `1e-3` (no dot) as a string; accept it rather than confuse the spec's author.
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


class RuleParams(BaseModel):
    """Parameters of a rule: strict, frozen, unknown fields refused; a rule with none uses this as is."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


#: A share of the updates, below one half (of those dropped at each end, or assumed Byzantine).
MinorityShare = Annotated[float, BeforeValidator(float_from_text), Field(ge=0, lt=0.5)]
#: A positive finite multiple.
Ratio = Annotated[float, BeforeValidator(float_from_text), Field(gt=0, allow_inf_nan=False)]
