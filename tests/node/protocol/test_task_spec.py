"""Tests for cotrain.protocol.task_spec: validation messages, canonical bytes, example specs, TaskParams."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import eth_abi
import pytest
import yaml
from cotrain.errors import ConfigError, IntegrityError
from cotrain.protocol.task_spec import (
    TASK_PARAMS_FIELDS,
    ZERO_ADDRESS,
    load_spec,
    parse_spec_bytes,
    spec_bytes,
    spec_digest,
    task_params,
    validate_spec,
    with_held_out_digest,
    with_initial_model,
)
from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

REPO_ROOT = Path(__file__).resolve().parents[3]
SPECS = REPO_ROOT / "node" / "cotrain" / "protocol" / "specs"
ABI_JSON = REPO_ROOT / "build" / "contracts" / "TrainingMarket.json"
INTERFACE_SOL = REPO_ROOT / "contracts" / "interfaces" / "ITrainingMarket.sol"

VALIDATOR = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def _digits() -> dict[str, Any]:
    return yaml.safe_load((SPECS / "digits.yaml").read_text())


def _reorder(value: Any) -> Any:
    """The same data with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: _reorder(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reorder(item) for item in value]
    return value


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            data = data[part]
        data[last] = value

    return mutate


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for part in parents:
            data = data[part]
        del data[last]

    return mutate


# (mutation, text the message must contain: the field's dotted path first, then what was wrong)
BAD_FIELDS = {
    "blank name": (_set("name", "   "), ["name:", "blank"]),
    "unknown top-level field": (_set("epochs", 3), ["epochs: unknown field", "allowed fields:", "rounds"]),
    "wrong version": (_set("version", 4), ["version:", "3"]),
    "float-era version": (_set("version", 1), ["spec version 1", "float64", "spec version 3"]),
    "cosine-era version": (_set("version", 2), ["spec version 2", "near-copies", "spec version 3"]),
    "unknown model": (
        _set("model.name", "resnet"),
        ["model.name:", "'logistic', 'mlp', 'cnn' or 'layers'", "'resnet'"],
    ),
    "unknown model field": (_set("model.layer", 4), ["model.layer: unknown field", "name, params, layers"]),
    "non-finite model param": (_set("model.params", {"dropout": float("nan")}), ["model.params:", "finite"]),
    "object model param": (_set("model.params", {"when": object()}), ["model.params:", "when"]),
    "unknown data set": (_set("data.builtin", "mnist"), ["data.builtin:", "'digits' or 'breast_cancer'"]),
    "empty input shape": (_set("data.input_shape", []), ["data.input_shape:", "at least 1"]),
    "zero dimension": (
        _set("data.input_shape", [1, 0, 8]),
        ["data.input_shape[1]:", "greater than or equal"],
    ),
    "one class": (_set("data.num_classes", 1), ["data.num_classes:", "greater than or equal to 2"]),
    "shape unlike the data set": (_set("data.input_shape", [1, 8, 7]), ["data.input_shape", "64", "digits"]),
    "classes unlike the data set": (_set("data.num_classes", 3), ["data.num_classes (3) must be 10"]),
    "test fraction of one": (_set("data.validation.test_fraction", 1.0), ["data.validation.test_fraction:"]),
    "missing split seed": (_drop("data.validation.split_seed"), ["data.validation.split_seed: required"]),
    "class weights for too few classes": (
        _set("training.class_weights", [1.0, 2.0]),
        ["training.class_weights: 2 weights, but data.num_classes is 10"],
    ),
    "zero class weight": (
        _set("training.class_weights", [0.0] * 10),
        ["training.class_weights[0]:", "greater than 0"],
    ),
    "unknown metric": (_set("data.validation.metrics", ["f1"]), ["data.validation.metrics[0]:", "'f1'"]),
    "metric twice": (
        _set("data.validation.metrics", ["perplexity", "perplexity"]),
        ["data.validation.metrics:", "'perplexity' is listed twice"],
    ),
    "ranking metric on ten classes": (
        _set("data.validation.metrics", ["auroc"]),
        ["data.validation.metrics: auroc", "needs data.num_classes 2, not 10"],
    ),
    "top-k of every class": (
        _set("data.validation.metrics", ["top_k_accuracy:10"]),
        ["data.validation.metrics: top_k_accuracy:10", "below data.num_classes"],
    ),
    "unknown optimizer": (_set("training.optimizer", "rmsprop"), ["training.optimizer:", "'sgd' or 'adam'"]),
    "zero learning rate": (_set("training.lr", 0), ["training.lr:", "greater than 0"]),
    "text learning rate": (_set("training.lr", "fast"), ["training.lr:", "valid number", "'fast'"]),
    "infinite learning rate": (_set("training.lr", float("inf")), ["training.lr:"]),
    "zero epochs": (
        _set("training.local_epochs", 0),
        ["training.local_epochs:", "greater than or equal to 1"],
    ),
    "boolean batch size": (_set("training.batch_size", True), ["training.batch_size:", "valid integer"]),
    "string seed": (_set("training.seed", "7"), ["training.seed:", "valid integer"]),
    "negative proximal mu": (
        _set("training.proximal_mu", -0.01),
        ["training.proximal_mu:", "greater than or equal to 0", "-0.01"],
    ),
    "infinite proximal mu": (_set("training.proximal_mu", float("inf")), ["training.proximal_mu:", "finite"]),
    "text proximal mu": (_set("training.proximal_mu", "strong"), ["training.proximal_mu:", "'strong'"]),
    "rule parameter out of range": (
        _set("aggregation", {"rule": "trimmed_mean", "params": {"trim_fraction": 0.5}}),
        ["aggregation:", "invalid params for rule 'trimmed_mean'", "trim_fraction", "less than 0.5"],
    ),
    "unknown rule parameter": (
        _set("aggregation", {"rule": "krum", "params": {"f": 2}}),
        ["aggregation:", "'krum'", "f: unknown field; allowed fields: byzantine_fraction"],
    ),
    "clip above the outlier bound": (
        _set("aggregation.screening", {"clip_norm_ratio": 4, "max_norm_ratio": 3}),
        ["aggregation.screening:", "clip_norm_ratio (4.0) must be at most max_norm_ratio (3.0)"],
    ),
    "free-rider bound of one": (
        _set("aggregation.screening", {"min_norm_ratio": 1}),
        ["aggregation.screening.min_norm_ratio:", "less than 1"],
    ),
    "unknown rule": (_set("aggregation.rule", "mean"), ["aggregation.rule:", "'fedavg'", "'mean'"]),
    # The held-out-loss screening read torch kernels, whose last bits depend on the machine: it left the
    # protocol, and a spec that still sets it is refused rather than silently judged without it.
    "loss screening": (
        _set("aggregation.screening", {"max_loss_increase": 0.5}),
        ["aggregation.screening.max_loss_increase: unknown field", "allowed fields:", "min_score"],
    ),
    "loss screening off": (
        _set("aggregation.screening", {"max_loss_increase": None}),
        ["aggregation.screening.max_loss_increase: unknown field"],
    ),
    "unknown number format": (
        _set("aggregation.number_format", "q16.16"),
        ["aggregation.number_format:", "'q32.24'", "'q16.16'"],
    ),
    "float number format": (
        _set("aggregation.number_format", "float32"),
        ["aggregation.number_format:", "'q32.24'", "'float32'"],
    ),
    "zero rounds": (_set("rounds", 0), ["rounds:", "greater than or equal to 1"]),
    "too many rounds": (_set("rounds", 1001), ["rounds:", "less than or equal to 1000"]),
    "zero commit phase": (_set("phases.commit", 0), ["phases.commit:", "greater than or equal to 1"]),
    "negative join phase": (_set("phases.join", -5), ["phases.join:"]),
    "phase beyond uint32": (_set("phases.challenge", 2**32), ["phases.challenge:", "4294967295"]),
    "missing reveal phase": (_drop("phases.reveal"), ["phases.reveal: required field is missing"]),
    "min above max": (_set("contributors.min", 5), ["contributors.min (5)", "contributors.max (4)"]),
    "negative stake": (
        _set("contributors.stake_wei", -1),
        ["contributors.stake_wei:", "greater than or equal"],
    ),
    "malformed stake": (_set("contributors.stake_wei", "1e17"), ["contributors.stake_wei:", "'1e17'"]),
    "float stake": (_set("contributors.stake_wei", 1e17), ["contributors.stake_wei:", "valid integer"]),
    "quorum above validators": (
        _set("validators.quorum", 4),
        ["validators.quorum (4)", "validators.addresses (3)"],
    ),
    "zero quorum": (_set("validators.quorum", 0), ["validators.quorum:"]),
    "no validators": (_set("validators.addresses", []), ["validators.addresses:", "at least 1"]),
    "33 validators": (
        _set("validators.addresses", [to_checksum_address(f"0x{i:040x}") for i in range(1, 34)]),
        ["validators.addresses:", "at most 32"],
    ),
    "lower-case validator": (
        _set("validators.addresses", [VALIDATOR.lower()]),
        ["validators.addresses[0]:", "not EIP-55 checksummed", f"write it as {VALIDATOR}"],
    ),
    "wrong checksum": (
        _set("validators.addresses", [VALIDATOR.replace("C44C", "c44C")]),
        ["validators.addresses[0]:", "invalid EIP-55 checksum"],
    ),
    "not an address": (_set("validators.addresses", ["alice"]), ["validators.addresses[0]:", "'alice'"]),
    "repeated validator": (
        _set("validators.addresses", [VALIDATOR, VALIDATOR]),
        ["validators.addresses:", "twice"],
    ),
    "slash above bond": (
        _set("validators.slash_wei", 2 * 10**18),
        ["validators.slash_wei (2000000000000000000)", "validators.bond_wei"],
    ),
    "zero-address arbiter": (_set("arbiter", ZERO_ADDRESS), ["arbiter:", "zero address"]),
    "null arbiter": (
        _set("arbiter", None),
        ["\n  - arbiter: must name an account", "neither the task owner"],
    ),
    "missing arbiter": (_drop("arbiter"), ["\n  - arbiter: must name an account that is neither"]),
    "validator arbiter": (
        _set("arbiter", VALIDATOR),
        [
            f"\n  - arbiter {VALIDATOR} is also in validators.addresses",
            "neither the task owner nor a validator",
        ],
    ),
    "quorum of half": (
        _set("validators.quorum", 1),
        ["\n  - validators.quorum (1) must be more than half the 3 validators.addresses (at least 2)"],
    ),
    "quorum of half an even count": (
        lambda data: data["validators"].update(
            addresses=[VALIDATOR, "0x90F79bf6EB2c4f870365E785982E1f101E93b906"], quorum=1
        ),
        ["\n  - validators.quorum (1) must be more than half the 2 validators.addresses (at least 2)"],
    ),
    "zero stake": (_set("contributors.stake_wei", 0), ["\n  - contributors.stake_wei must be above zero"]),
    "zero bond": (
        _set("validators.bond_wei", 0),
        ["\n  - validators.bond_wei must be above zero", "validators.slash_wei (250000000000000000)"],
    ),
    "zero challenge bond": (_set("challenge_bond_wei", 0), ["\n  - challenge_bond_wei must be above zero"]),
    "challenge shorter than validation": (
        _set("phases.challenge", 299),
        ["\n  - phases.challenge (299) must be at least phases.validation (300)", "deadline to agree"],
    ),
    "unknown arbiter type": (_set("arbiter", 42), ["arbiter:", "valid string"]),
    "empty budget": (_set("budget_wei", 0), ["budget_wei (0) must be at least rounds (5)"]),
    "budget below rounds": (_set("budget_wei", 4), ["budget_wei (4) must be at least rounds (5)"]),
    "budget above uint256": (_set("budget_wei", 2**256), ["budget_wei:", "less than or equal"]),
    "zero update limit": (_set("limits.max_update_bytes", 0), ["limits.max_update_bytes:"]),
    "unknown limit": (
        _set("limits.max_update_mb", 1),
        ["limits.max_update_mb: unknown field", "max_update_bytes"],
    ),
    "slash above stake": (
        _set("rewards.slash_rejected_wei", 10**18),
        ["rewards.slash_rejected_wei (1000000000000000000)", "contributors.stake_wei (100000000000000000)"],
    ),
    "bad initial model digest": (
        _set("initial_model", {"cid": "bafkreimodel", "digest": "0x12"}),
        ["initial_model.digest:", "32-byte hex digest"],
    ),
    "bad initial model CID": (
        _set("initial_model", {"cid": "has space", "digest": "0x" + "ab" * 32}),
        ["initial_model.cid:", "printable ASCII"],
    ),
    "own data without a held-out digest": (
        _set("data.builtin", None),
        ["\n  - data.validation.held_out_digest: required when data.builtin is null", "--held-out FILE"],
    ),
    "bad held-out digest": (
        _set("data.validation.held_out_digest", "0x12"),
        ["data.validation.held_out_digest:", "32-byte hex digest"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FIELDS))
def test_bad_field_is_named_in_the_error(case: str) -> None:
    # Prepare
    mutate, expected = BAD_FIELDS[case]
    data = _digits()
    mutate(data)

    # Execute
    with pytest.raises(ConfigError) as info:
        validate_spec(data, source="digits.yaml")

    # Assert
    message = str(info.value)
    assert message.startswith("digits.yaml: invalid task spec")
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"


def test_config_error_is_a_value_error_without_pydantic_noise() -> None:
    data = _digits()
    data["rounds"] = 0

    with pytest.raises(ValueError) as info:
        validate_spec(data)

    assert "errors.pydantic.dev" not in str(info.value)
    assert info.value.__cause__ is None


def test_every_problem_is_reported() -> None:
    data = _digits()
    data["model"]["name"] = "resnet"
    data["training"]["optimizer"] = "rmsprop"
    data["phases"]["join"] = 0

    with pytest.raises(ConfigError) as info:
        validate_spec(data)

    bullets = [line for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert [line.split(":")[0] for line in bullets] == [
        "  - model.name",
        "  - training.optimizer",
        "  - phases.join",
    ]


def test_cross_field_problems_are_reported_one_per_line() -> None:
    data = _digits()
    data["contributors"]["min"] = 9
    data["validators"]["quorum"] = 4

    with pytest.raises(ConfigError) as info:
        validate_spec(data)

    bullets = [line for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert len(bullets) == 2
    assert bullets[0].startswith("  - contributors.min (9)")
    assert bullets[1].startswith("  - validators.quorum (4)")


def test_a_spec_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        validate_spec(["name", "x"])


@pytest.mark.parametrize("name", ["digits.yaml", "breast_cancer.yaml"])
def test_example_specs_load_and_round_trip(name: str) -> None:
    spec = load_spec(SPECS / name)

    assert parse_spec_bytes(spec_bytes(spec)) == spec
    assert spec.aggregation.rule == "fedavg"
    assert spec.data.builtin == name.removesuffix(".yaml")
    assert all(duration <= 600 for duration in spec.phases.model_dump().values())


def test_digits_example_is_a_five_round_four_contributor_cnn() -> None:
    spec = load_spec(SPECS / "digits.yaml")

    assert (spec.model.name, spec.rounds, spec.contributors.max) == ("cnn", 5, 4)
    assert spec.data.input_shape == [1, 8, 8]
    assert spec.budget_wei == 5 * 10**18


def test_breast_cancer_example_is_a_small_model() -> None:
    spec = load_spec(SPECS / "breast_cancer.yaml")

    assert spec.model.name in ("logistic", "mlp")
    assert (spec.data.input_shape, spec.data.num_classes) == ([30], 2)
    assert spec.arbiter == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"  # anvil account 1
    assert spec.arbiter not in spec.validators.addresses


@pytest.mark.parametrize(
    ("rule", "params"),
    [
        ("fedavg", {}),
        ("median", {}),
        ("trimmed_mean", {"trim_fraction": 0.2}),
        ("krum", {"byzantine_fraction": 0.3}),
        ("multi_krum", {"byzantine_fraction": 0.3}),
        ("centered_clip", {"radius_ratio": 1.0, "iterations": 3}),
    ],
)
def test_rule_defaults_are_written_into_the_canonical_spec(rule: str, params: dict[str, Any]) -> None:
    data = _digits()
    data["aggregation"] = {"rule": rule}

    spec = validate_spec(data)
    written = json.loads(spec_bytes(spec))["aggregation"]

    assert written["params"] == params
    assert written["number_format"] == "q32.24"
    assert written["screening"] == {
        "enabled": True,
        "duplicate_distance": 0.1,
        "min_norm_ratio": 0.25,
        "max_norm_ratio": 10.0,
        "clip_norm_ratio": 2.0,
        "redundancy_distance": 0.5,
        "max_samples_ratio": 2.0,
        "min_score": 0.0,
    }
    # Spelling the defaults out gives the same task.
    data["aggregation"] = written
    assert spec_digest(validate_spec(data)) == spec_digest(spec)


def test_rule_parameters_given_as_integers_are_read_as_numbers() -> None:
    data = _digits()
    data["aggregation"] = {"rule": "centered_clip", "params": {"radius_ratio": 2, "iterations": 5}}

    assert validate_spec(data).aggregation.params == {"radius_ratio": 2.0, "iterations": 5}


def test_canonical_bytes_ignore_key_order() -> None:
    data = _digits()

    assert list(_reorder(data)) != list(data)
    assert spec_bytes(validate_spec(_reorder(data))) == spec_bytes(validate_spec(data))


def test_yaml_and_json_files_give_the_same_bytes(tmp_path: Path) -> None:
    # Prepare
    json_path = tmp_path / "digits.json"
    json_path.write_text(json.dumps(_reorder(_digits()), indent=2))

    # Execute
    from_yaml = load_spec(SPECS / "digits.yaml")
    from_json = load_spec(json_path)

    # Assert
    assert spec_bytes(from_json) == spec_bytes(from_yaml)
    assert spec_digest(from_json) == spec_digest(from_yaml)


def test_canonical_bytes_format() -> None:
    spec = load_spec(SPECS / "digits.yaml")

    data = spec_bytes(spec)

    decoded = json.loads(data)
    assert data == json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert decoded["budget_wei"] == "5000000000000000000"
    assert decoded["validators"]["bond_wei"] == "1000000000000000000"
    assert decoded["initial_model"] is None
    assert spec_digest(spec) == hashlib.sha256(data).digest()


def test_wei_may_be_written_as_int_or_decimal_string() -> None:
    as_int = _digits()
    as_text = _digits()
    as_text["budget_wei"] = str(as_text["budget_wei"])

    assert spec_bytes(validate_spec(as_text)) == spec_bytes(validate_spec(as_int))


def test_yaml_exponent_without_dot_is_read_as_a_number(tmp_path: Path) -> None:
    # PyYAML reads `1e-3` as a string; the spec accepts it as the number its author meant.
    text = (SPECS / "digits.yaml").read_text().replace("lr: 0.001", "lr: 1e-3")
    path = tmp_path / "digits.yaml"
    path.write_text(text)

    assert load_spec(path) == load_spec(SPECS / "digits.yaml")


def test_non_ascii_name_is_utf8_in_canonical_bytes() -> None:
    data = _digits()
    data["name"] = "chiffres-é"

    spec = validate_spec(data)

    assert '"name":"chiffres-é"'.encode() in spec_bytes(spec)
    assert parse_spec_bytes(spec_bytes(spec)) == spec


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False))
def test_canonical_bytes_ignore_any_key_order(rng: Any) -> None:
    def shuffle(value: Any) -> Any:
        if isinstance(value, dict):
            keys = list(value)
            rng.shuffle(keys)
            return {key: shuffle(value[key]) for key in keys}
        if isinstance(value, list):
            return [shuffle(item) for item in value]
        return value

    data = _digits()

    assert spec_bytes(validate_spec(shuffle(data))) == spec_bytes(validate_spec(data))


@pytest.mark.parametrize(
    ("suffix", "text", "expected"),
    [
        (".toml", "name = 'x'", "unknown spec format '.toml'"),
        (".yaml", "name: a\nname: b\n", "duplicate key 'name'"),
        (".json", '{"name": "a", "name": "b"}', "duplicate key 'name'"),
        (".json", '{"rounds": NaN}', "NaN is not valid JSON"),
        (".yaml", "name: [unclosed\n", "cannot parse the task spec"),
        (".yaml", "- just\n- a list\n", "must be a mapping"),
        (".yaml", "? [a, b]\n: 1\n", "must be a plain value"),
    ],
)
def test_load_spec_file_errors(tmp_path: Path, suffix: str, text: str, expected: str) -> None:
    path = tmp_path / f"spec{suffix}"
    path.write_text(text)

    with pytest.raises(ConfigError, match=re.escape(expected)) as info:
        load_spec(path)

    assert str(path) in str(info.value)


def test_load_spec_reports_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the task spec"):
        load_spec(tmp_path / "absent.yaml")
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_spec(latin1)


def test_parse_spec_bytes_rejects_non_canonical_bytes() -> None:
    spec = load_spec(SPECS / "digits.yaml")
    pretty = json.dumps(json.loads(spec_bytes(spec)), indent=1, sort_keys=True).encode()

    with pytest.raises(IntegrityError, match="not in canonical form"):
        parse_spec_bytes(pretty)


def test_parse_spec_bytes_rejects_omitted_defaults() -> None:
    decoded = json.loads(spec_bytes(load_spec(SPECS / "digits.yaml")))
    del decoded["initial_model"]
    data = json.dumps(decoded, sort_keys=True, separators=(",", ":")).encode()

    with pytest.raises(IntegrityError, match="not in canonical form"):
        parse_spec_bytes(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xfe", "not UTF-8 JSON"),
        (b"name: x", "not UTF-8 JSON"),
        (b'{"a":1,"a":1}', "duplicate key"),
        (b'{"name":"x"}', "rounds: required field is missing"),
    ],
)
def test_parse_spec_bytes_rejects_malformed_files(data: bytes, expected: str) -> None:
    with pytest.raises(IntegrityError, match=re.escape(expected)):
        parse_spec_bytes(data)


def test_parse_spec_bytes_rejects_an_invalid_spec_as_an_integrity_error() -> None:
    decoded = json.loads(spec_bytes(load_spec(SPECS / "digits.yaml")))
    decoded["validators"]["quorum"] = 9
    data = json.dumps(decoded, sort_keys=True, separators=(",", ":")).encode()

    with pytest.raises(IntegrityError, match=re.escape("validators.quorum (9)")):
        parse_spec_bytes(data)


def test_with_initial_model_names_the_file_and_changes_the_digest() -> None:
    spec = load_spec(SPECS / "digits.yaml")
    model_digest = hashlib.sha256(b"initial weights").digest()

    posted = with_initial_model(spec, "bafkreiinitial", model_digest)

    assert posted.initial_model is not None
    assert (posted.initial_model.cid, posted.initial_model.digest) == ("bafkreiinitial", model_digest)
    assert spec_digest(posted) != spec_digest(spec)
    assert json.loads(spec_bytes(posted))["initial_model"]["digest"] == "0x" + model_digest.hex()
    assert parse_spec_bytes(spec_bytes(posted)) == posted
    with pytest.raises(ConfigError, match=re.escape("initial_model.digest")):
        with_initial_model(spec, "bafkreiinitial", b"short")


# sha256 of the shipped specs' canonical bytes in the float era (before aggregation.number_format, with
# aggregation.screening.max_loss_increase, before data.validation.held_out_digest existed, and before spec
# version 3's screening.redundancy_distance and screening.max_samples_ratio), and now.
SHIPPED_SPEC_DIGESTS = {
    "digits.yaml": (
        "cdc3b4b8ab7cab87192cb2f0478342e58ba712ac38124cc96cace0c429a092f4",
        "1d057c239f758006a7a4e108220da7eb27561cefc2a5d86e5b5a864c3fdd6d4d",
    ),
    "breast_cancer.yaml": (
        "1787b21acad052bd4012c7472bcff6bff31a6d27d5a8cbe52b5dd29a568ea733",
        "097bfa46c3eab3ae8b40820d0139dde8c73a8469ea48d41648aa445bfa4b801e",
    ),
}
# What the market's terms for strangers changed in them since (issue 12): a challenge phase at least as long
# as the validation phase, and an arbiter that is neither the owner nor a validator.
INCENTIVE_CHANGES = {
    "digits.yaml": {"challenge": 60, "arbiter": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"},
    "breast_cancer.yaml": {"challenge": 60, "arbiter": None},
}


def _plain_canonical(decoded: Any) -> bytes:
    return json.dumps(decoded, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("name", sorted(SHIPPED_SPEC_DIGESTS))
def test_the_shipped_specs_differ_from_the_float_era_only_by_version_number_format_and_terms(
    name: str,
) -> None:
    float_era, now = SHIPPED_SPEC_DIGESTS[name]
    spec = load_spec(SPECS / name)

    data = spec_bytes(spec)

    assert spec_digest(spec).hex() == hashlib.sha256(data).hexdigest() == now
    # An unset held-out digest is left out, as before it existed.
    assert spec.data.validation.held_out_digest is None
    assert b"held_out_digest" not in data
    # Put back what changed, and the float-era bytes (and digest) result: nothing else moved.
    decoded = json.loads(data)
    assert decoded["aggregation"].pop("number_format") == "q32.24"
    assert decoded.pop("version") == 3
    decoded["version"] = 1
    screening = decoded["aggregation"]["screening"]
    # Version 3's screening fields, at their defaults.
    assert (screening.pop("redundancy_distance"), screening.pop("max_samples_ratio")) == (0.5, 2.0)
    assert "max_loss_increase" not in screening
    screening["max_loss_increase"] = None
    decoded["phases"]["challenge"] = INCENTIVE_CHANGES[name]["challenge"]
    decoded["arbiter"] = INCENTIVE_CHANGES[name]["arbiter"]
    assert hashlib.sha256(_plain_canonical(decoded)).hexdigest() == float_era


def test_the_number_format_defaults_to_q32_24_and_is_written_out() -> None:
    implicit = _digits()
    explicit = _digits()
    explicit["aggregation"]["number_format"] = "q32.24"

    spec = validate_spec(implicit)

    assert spec.aggregation.number_format == "q32.24"
    assert b'"number_format":"q32.24"' in spec_bytes(spec)
    assert spec_bytes(validate_spec(explicit)) == spec_bytes(spec)


def test_parse_spec_bytes_refuses_a_float_era_spec() -> None:
    decoded = json.loads(spec_bytes(load_spec(SPECS / "digits.yaml")))
    del decoded["aggregation"]["number_format"]
    without_format = _plain_canonical(decoded)
    decoded["aggregation"]["screening"]["max_loss_increase"] = None
    float_era = _plain_canonical(decoded)

    with pytest.raises(IntegrityError, match="not in canonical form"):
        parse_spec_bytes(without_format)
    with pytest.raises(
        IntegrityError, match=re.escape("aggregation.screening.max_loss_increase: unknown field")
    ):
        parse_spec_bytes(float_era)


def test_with_held_out_digest_pins_the_set_in_the_canonical_bytes() -> None:
    spec = load_spec(SPECS / "digits.yaml")
    digest = hashlib.sha256(b"held-out examples").digest()

    pinned = with_held_out_digest(spec, digest)
    own_data = _digits()
    own_data["data"].update(builtin=None)
    own_data["data"]["validation"]["held_out_digest"] = "0x" + digest.hex()

    assert pinned.data.validation.held_out_digest == digest
    assert json.loads(spec_bytes(pinned))["data"]["validation"]["held_out_digest"] == "0x" + digest.hex()
    assert parse_spec_bytes(spec_bytes(pinned)) == pinned
    assert spec_digest(pinned) != spec_digest(spec)
    assert validate_spec(own_data).data.validation.held_out_digest == digest
    del own_data["data"]["validation"]["held_out_digest"]
    # An owner's spec may lack the pin only on its way to with_held_out_digest (`task post --held-out`).
    unpinned = validate_spec(own_data, pinning_held_out=True)
    assert unpinned.data.validation.held_out_digest is None
    assert with_held_out_digest(unpinned, digest).data.validation.held_out_digest == digest
    with pytest.raises(ConfigError, match=re.escape("required when data.builtin is null")):
        validate_spec(own_data)
    with pytest.raises(ConfigError, match=re.escape("data.validation.held_out_digest")):
        with_held_out_digest(spec, b"short")


def test_parse_spec_bytes_rejects_an_unset_held_out_digest_written_as_null() -> None:
    decoded = json.loads(spec_bytes(load_spec(SPECS / "digits.yaml")))
    decoded["data"]["validation"]["held_out_digest"] = None
    data = json.dumps(decoded, sort_keys=True, separators=(",", ":")).encode()

    with pytest.raises(IntegrityError, match="not in canonical form"):
        parse_spec_bytes(data)


def test_proximal_mu_is_in_the_canonical_bytes_only_when_set() -> None:
    # Prepare
    unset, null, given, text = _digits(), _digits(), _digits(), _digits()
    null["training"]["proximal_mu"] = None
    given["training"]["proximal_mu"] = 0.01
    text["training"]["proximal_mu"] = "1e-2"

    # Execute
    plain, proximal = validate_spec(unset), validate_spec(given)

    # Assert
    assert plain.training.proximal_mu is None
    assert b"proximal_mu" not in spec_bytes(plain)
    assert spec_bytes(validate_spec(null)) == spec_bytes(plain)
    assert proximal.training.proximal_mu == 0.01
    assert b'"proximal_mu":0.01' in spec_bytes(proximal)
    assert spec_bytes(validate_spec(text)) == spec_bytes(proximal)
    assert parse_spec_bytes(spec_bytes(proximal)) == proximal
    assert spec_digest(proximal) != spec_digest(plain)
    # Only the field differs: the rest of the canonical bytes is the unset spec's.
    decoded = json.loads(spec_bytes(proximal))
    assert decoded["training"].pop("proximal_mu") == 0.01
    assert _plain_canonical(decoded) == spec_bytes(plain)


def test_class_weights_are_in_the_canonical_bytes_only_when_set() -> None:
    given = _digits()
    given["training"]["class_weights"] = [1, 2, 1, 1, 1, 1, 1, 1, 1, 0.5]

    plain, weighted = validate_spec(_digits()), validate_spec(given)

    assert b"class_weights" not in spec_bytes(plain)
    assert b'"class_weights":[1.0,2.0,1.0,1.0,1.0,1.0,1.0,1.0,1.0,0.5]' in spec_bytes(weighted)
    assert parse_spec_bytes(spec_bytes(weighted)) == weighted
    decoded = json.loads(spec_bytes(weighted))
    del decoded["training"]["class_weights"]
    assert _plain_canonical(decoded) == spec_bytes(plain)


def test_metrics_are_in_the_canonical_bytes_only_when_set() -> None:
    given = _digits()
    given["data"]["validation"]["metrics"] = ["top_k_accuracy:3", "perplexity"]

    plain, measured = validate_spec(_digits()), validate_spec(given)

    assert b"metrics" not in spec_bytes(plain)
    assert b'"metrics":["top_k_accuracy:3","perplexity"]' in spec_bytes(measured)
    assert parse_spec_bytes(spec_bytes(measured)) == measured
    decoded = json.loads(spec_bytes(measured))
    assert decoded["data"]["validation"].pop("metrics") == ["top_k_accuracy:3", "perplexity"]
    assert _plain_canonical(decoded) == spec_bytes(plain)


def test_parse_spec_bytes_rejects_an_unset_proximal_mu_written_as_null() -> None:
    decoded = json.loads(spec_bytes(load_spec(SPECS / "digits.yaml")))
    decoded["training"]["proximal_mu"] = None

    with pytest.raises(IntegrityError, match="not in canonical form"):
        parse_spec_bytes(_plain_canonical(decoded))


def test_spec_is_immutable() -> None:
    spec = load_spec(SPECS / "digits.yaml")

    with pytest.raises(ValueError):
        spec.rounds = 9  # type: ignore[misc]


def test_task_params_values() -> None:
    spec = load_spec(SPECS / "digits.yaml")
    digest = spec_digest(spec)

    params = task_params(spec, digest)

    assert params == {
        "specDigest": digest,
        "numRounds": 5,
        "minContributors": 2,
        "maxContributors": 4,
        "joinDuration": 120,
        "commitDuration": 300,
        "revealDuration": 120,
        "validationDuration": 300,
        "challengeDuration": 300,
        "quorum": 2,
        "contributorStake": 10**17,
        "validatorBond": 10**18,
        "validatorSlash": 25 * 10**16,
        "challengeBond": 5 * 10**17,
        "arbiter": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    }
    assert tuple(params) == TASK_PARAMS_FIELDS


@pytest.mark.parametrize("arbiter", [None, "absent"], ids=["null", "missing"])
def test_a_spec_without_an_arbiter_is_refused_in_one_line(arbiter: str | None) -> None:
    data = _digits()
    if arbiter is None:
        data["arbiter"] = None
    else:
        del data["arbiter"]

    with pytest.raises(ConfigError) as info:
        validate_spec(data, source="digits.yaml")

    assert str(info.value) == (
        "digits.yaml: invalid task spec\n  - arbiter: must name an account that is neither the task owner "
        "nor a validator (it rules on challenges)"
    )


def test_task_params_refuses_a_digest_of_other_bytes() -> None:
    spec = load_spec(SPECS / "digits.yaml")

    with pytest.raises(ConfigError, match="is not this spec's"):
        task_params(spec, hashlib.sha256(b"another spec").digest())


def _abi_task_params() -> list[dict[str, Any]]:
    if not ABI_JSON.is_file():
        pytest.skip(f"{ABI_JSON} is absent; run `brownie compile` to check against the compiled ABI")
    abi = json.loads(ABI_JSON.read_text())["abi"]
    create_task = next(item for item in abi if item.get("name") == "createTask")
    params = next(arg for arg in create_task["inputs"] if arg["internalType"].endswith("TaskParams"))
    return params["components"]


def test_task_params_order_matches_the_compiled_abi() -> None:
    spec = load_spec(SPECS / "digits.yaml")
    components = _abi_task_params()

    assert list(task_params(spec, spec_digest(spec))) == [c["name"] for c in components]


def test_task_params_encode_as_the_abi_struct() -> None:
    spec = load_spec(SPECS / "digits.yaml")
    components = _abi_task_params()
    struct = "(" + ",".join(c["type"] for c in components) + ")"

    encoded = eth_abi.encode([struct], [tuple(task_params(spec, spec_digest(spec)).values())])

    assert eth_abi.decode([struct], encoded)[0][1] == spec.rounds


def test_task_params_order_matches_the_interface_source() -> None:
    if not INTERFACE_SOL.is_file():
        pytest.skip(f"{INTERFACE_SOL} is absent")
    source = INTERFACE_SOL.read_text()
    body = re.search(r"struct TaskParams \{(.*?)\}", source, re.DOTALL)
    assert body is not None, "struct TaskParams not found in the interface"
    names = re.findall(r"^\s*\w+\s+(\w+);", body.group(1), re.MULTILINE)

    assert list(TASK_PARAMS_FIELDS) == names


def test_example_specs_fit_the_contracts_limits() -> None:
    for path in sorted(SPECS.glob("*.yaml")):
        spec = load_spec(path)
        params = task_params(spec, spec_digest(spec))
        assert len(spec.validators.addresses) < 2 * params["quorum"], path
        assert params["quorum"] <= len(spec.validators.addresses), path
        assert params["validatorSlash"] <= params["validatorBond"], path
        assert min(params["contributorStake"], params["validatorBond"], params["challengeBond"]) > 0, path
        assert params["challengeDuration"] >= params["validationDuration"], path
        assert params["arbiter"] not in (ZERO_ADDRESS, *spec.validators.addresses), path
        assert spec.budget_wei // spec.rounds > 0, path
