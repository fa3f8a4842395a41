"""The aggregation rules a task spec may name, by name: one module of this package per rule.

A rule is its parameters model (what the spec's ``aggregation.params`` may hold, with defaults that the
canonical spec writes out) and its ``aggregate`` function on fixed-point integer vectors (exact arithmetic
from :mod:`cotrain.consensus.exact`). The spec's validation,
the validator's screening pipeline and the experiment harness all read this registry, so a new rule is one
module that defines ``RULE`` (the package registers every such module when it is imported).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cotrain.consensus.exact import MICRO, IntVector, round_half_even_div
from cotrain.learning.rules.params import RuleParams


class Aggregate(NamedTuple):
    """A rule's result: the aggregate vector and each input's share of it in millionths, in input order."""

    vector: IntVector
    shares: list[int]


def shares_of(weights: Sequence[int]) -> list[int]:
    """Each weight's share of their sum in millionths: ``round_half_even_div(10**6 w_i, sum(w))``."""
    total = sum(weights)
    return [round_half_even_div(MICRO * weight, total) for weight in weights]


@dataclass(frozen=True)
class Rule:
    """One aggregation rule.

    ``aggregate(vectors, samples, params)`` takes the accepted updates as int64 fixed-point vectors of one
    length, in the pipeline's (address) order, their revealed sample counts and the validated parameters;
    it must be a pure function of these in exact integer arithmetic. ``streams`` says the aggregate is the
    sample-weighted mean, which the pipeline may then compute one update at a time. ``in_grid`` says
    whether the robustness experiment compares the rule (``<name> + screening``).
    """

    name: str
    params: type[RuleParams]
    aggregate: Callable[[Sequence[IntVector], Sequence[int], Any], Aggregate]
    streams: bool = False
    in_grid: bool = True

    def run(self, vectors: Sequence[IntVector], samples: Sequence[int], params: object) -> Aggregate:
        """Validate ``params`` (a mapping or this rule's model) and aggregate ``vectors``."""
        model = params if isinstance(params, self.params) else self.params.model_validate(params)
        return self.aggregate(vectors, samples, model)


_RULES: dict[str, Rule] = {}


def register(rule: Rule) -> Rule:
    """Add ``rule`` to the registry and return it.

    Raises
    ------
    ValueError
        If another rule already has its name.
    """
    if rule.name in _RULES and _RULES[rule.name] is not rule:
        raise ValueError(f"an aggregation rule called {rule.name!r} is already registered")
    _RULES[rule.name] = rule
    return rule


def unregister(name: str) -> None:
    """Remove the rule called ``name`` (tests use this to undo a :func:`register`)."""
    _RULES.pop(name, None)


def get_rule(name: str) -> Rule:
    """The rule called ``name``.

    Raises
    ------
    KeyError
        If no rule has that name; :func:`rule_names` lists those that do.
    """
    return _RULES[name]


def rule_names() -> tuple[str, ...]:
    """The registered rules' names, in registration order."""
    return tuple(_RULES)
