"""Tests for cotrain.learning.rules' registry: what the spec, the pipeline and the experiment read from it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from cotrain.errors import ConfigError
from cotrain.experiments.robustness import SPECS, registered_pipelines
from cotrain.learning.rules import Aggregate, Rule, get_rule, register, rule_names, unregister
from cotrain.learning.rules.params import Ratio, RuleParams
from cotrain.protocol.round_record import Reason
from cotrain.protocol.screening import RoundPipeline
from cotrain.protocol.task_spec import AggregationSpec, validate_spec

BUILTIN = {"centered_clip", "fedavg", "krum", "median", "multi_krum", "trimmed_mean"}


def _digits(aggregation: dict[str, Any]) -> dict[str, Any]:
    data = yaml.safe_load((SPECS / "digits.yaml").read_text())
    data["aggregation"] = aggregation
    return data


class FirstParams(RuleParams):
    """A throwaway rule's one parameter."""

    scale: Ratio = 1.0


def _first(vectors: Sequence[np.ndarray], samples: Sequence[int], params: FirstParams) -> Aggregate:
    shares = [1.0] + [0.0] * (len(vectors) - 1)
    return Aggregate(vectors[0] * params.scale, shares)


@pytest.fixture
def first_rule() -> Iterator[Rule]:
    rule = register(Rule("first_scaled", FirstParams, _first))
    yield rule
    unregister("first_scaled")


def test_the_package_registers_one_rule_per_module() -> None:
    assert set(rule_names()) == BUILTIN
    assert list(rule_names()) == sorted(BUILTIN)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_registered_rule_is_reachable_from_a_spec(name: str) -> None:
    spec = validate_spec(_digits({"rule": name}))

    assert spec.aggregation.rule == name
    assert spec.aggregation.params == get_rule(name).params().model_dump()


def test_an_unknown_rule_is_refused_naming_the_registered_ones() -> None:
    with pytest.raises(ConfigError) as refused:
        validate_spec(_digits({"rule": "mean"}))

    known = ", ".join(f"'{name}'" for name in sorted(BUILTIN))
    assert str(refused.value) == (
        "task spec: invalid task spec\n"
        f"  - aggregation.rule: unknown aggregation rule 'mean'; use one of {known}"
    )


def test_bad_parameters_are_refused_in_the_spec_error_format() -> None:
    with pytest.raises(ConfigError) as refused:
        validate_spec(_digits({"rule": "centered_clip", "params": {"iterations": 0, "radius": 1}}))

    assert str(refused.value) == (
        "task spec: invalid task spec\n"
        "  - aggregation: invalid params for rule 'centered_clip': iterations: Input should be greater than "
        "or equal to 1, got 0; radius: unknown field; allowed fields: radius_ratio, iterations"
    )


def test_a_new_rule_is_one_registration_away_from_the_spec_the_pipeline_and_the_grid(
    first_rule: Rule,
) -> None:
    # Prepare
    spec = validate_spec(_digits({"rule": "first_scaled", "params": {"scale": "0.5"}}))
    pipeline = RoundPipeline(spec.aggregation.model_copy(update={"screening": _off()}), {"w": torch.zeros(2)})
    pipeline.add("0xB2", {"w": torch.tensor([4.0, 8.0])}, 10, 1)
    pipeline.add("0xA1", {"w": torch.tensor([2.0, -6.0])}, 30, 0)

    # Execute
    result = pipeline.finish()

    # Assert: the first update in address order, halved.
    assert spec.aggregation.params == {"scale": 0.5}
    assert result.delta is not None and result.delta["w"].tolist() == [1.0, -3.0]
    assert {who: (j.reason, j.weight) for who, j in result.judgements.items()} == {
        "0xa1": (Reason.OK, 1.0),
        "0xb2": (Reason.OK, 0.0),
    }
    assert "first_scaled + screening" in [p.name for p in registered_pipelines()]
    with pytest.raises(ConfigError, match=r"'first_scaled': scale: Input should be greater than 0"):
        validate_spec(_digits({"rule": "first_scaled", "params": {"scale": 0}}))


def test_an_unregistered_rule_is_refused_again(first_rule: Rule) -> None:
    unregister(first_rule.name)

    with pytest.raises(ConfigError, match="unknown aggregation rule 'first_scaled'"):
        validate_spec(_digits({"rule": "first_scaled"}))


def test_a_name_cannot_be_registered_twice() -> None:
    with pytest.raises(ValueError, match="'median' is already registered"):
        register(Rule("median", RuleParams, get_rule("fedavg").aggregate))

    assert get_rule("median").name == "median"


def _off() -> Any:
    return AggregationSpec.model_validate({"rule": "fedavg", "screening": {"enabled": False}}).screening
