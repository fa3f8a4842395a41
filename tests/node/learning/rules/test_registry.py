"""Tests for cotrain.learning.rules' registry: what the spec, the pipeline and the experiment read from it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
import yaml
from cotrain.consensus.exact import MICRO, exact_ratio, round_ratio_times
from cotrain.errors import ConfigError
from cotrain.experiments.robustness import SPECS, registered_pipelines
from cotrain.learning.rules import Aggregate, Rule, get_rule, register, rule_names, unregister
from cotrain.learning.rules.params import Ratio, RuleParams
from cotrain.learning.rules.registry import shares_of
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
    ratio = exact_ratio(params.scale)
    scaled = np.array([round_ratio_times(ratio, int(x)) for x in vectors[0]], dtype=np.int64)
    return Aggregate(scaled, [MICRO] + [0] * (len(vectors) - 1))


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
    pipeline = RoundPipeline(spec.aggregation.model_copy(update={"screening": _off()}))
    pipeline.add("0xB2", np.array([4, 8], dtype=np.int64), 10, 1)
    pipeline.add("0xA1", np.array([2, -6], dtype=np.int64), 30, 0)

    # Execute
    result = pipeline.finish()

    # Assert: the first update in address order, halved; it gets the whole share, both score 1.
    assert spec.aggregation.params == {"scale": 0.5}
    assert result.aggregate is not None and result.aggregate.tolist() == [1, -3]
    assert {who: (j.reason, j.score, j.share, j.reward_weight) for who, j in result.judgements.items()} == {
        "0xa1": (Reason.OK, MICRO, MICRO, 30 * MICRO),
        "0xb2": (Reason.OK, MICRO, 0, 10 * MICRO),
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


@pytest.mark.parametrize(
    ("weights", "shares"),
    [
        ([1, 3], [250_000, 750_000]),
        ([1, 1, 1], [333_333, 333_333, 333_333]),  # 333333.33 each: the shares need not sum to 10**6
        ([1, 2], [333_333, 666_667]),
        # 10**6 * w / 2,000,000: 0.5 -> 0 and 1.5 -> 2 (ties to even), 999998 exactly.
        ([1, 3, 1_999_996], [0, 2, 999_998]),
        ([0, 5], [0, 1_000_000]),
        ([2**64 - 1, 2**64 - 1], [500_000, 500_000]),
    ],
)
def test_shares_are_millionths_rounded_half_to_even(weights: list[int], shares: list[int]) -> None:
    assert shares_of(weights) == shares


def _off() -> Any:
    return AggregationSpec.model_validate({"rule": "fedavg", "screening": {"enabled": False}}).screening
