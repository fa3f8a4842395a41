"""The declarative task spec: what a task trains, how, for how long, and on what money terms.

A spec is data, never code. The owner writes it as YAML or JSON (:func:`load_spec`); the network stores its
canonical JSON (:func:`spec_bytes`), whose sha256 (:func:`spec_digest`) is the task's on-chain
``specDigest``; nodes read it back with :func:`parse_spec_bytes`, which accepts only the canonical bytes, so
the digest of what they parsed is the digest on chain. :func:`task_params` turns a spec into the contract's
``TaskParams``.

Wei amounts are decimal strings in the canonical JSON, because JSON readers in other languages lose integers
above 2**53; in YAML or JSON input they may also be plain integers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

import yaml
from eth_utils import is_checksum_address, is_hex_address, to_checksum_address
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from cotrain.errors import ConfigError, IntegrityError
from cotrain.learning.data_contract import ColumnContract
from cotrain.learning.layers import (
    DEFAULT_MAX_PARAMETERS,
    MAX_LAYERS,
    MAX_PARAMETERS,
    Layer,
    parameter_count,
    plan_model,
)
from cotrain.learning.metrics import BINARY_METRICS, parse_metric
from cotrain.learning.rules import get_rule, rule_names
from cotrain.learning.rules.params import float_from_text

#: The presets, and "layers" for a model given as its list of layers.
ModelName = Literal["logistic", "mlp", "cnn", "layers"]
BuiltinDataset = Literal["digits", "breast_cancer"]
Optimizer = Literal["sgd", "adam"]

MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
BUILTIN_DATASETS: tuple[str, ...] = get_args(BuiltinDataset)
OPTIMIZERS: tuple[str, ...] = get_args(Optimizer)

# (features, classes) of the built-in data sets, so a spec cannot promise a shape the data does not have.
BUILTIN_SHAPES: dict[str, tuple[int, int]] = {"digits": (64, 10), "breast_cancer": (30, 2)}

# TaskParams components in ABI order, as in contracts/interfaces/ITrainingMarket.sol.
TASK_PARAMS_FIELDS: tuple[str, ...] = (
    "specDigest",
    "numRounds",
    "minContributors",
    "maxContributors",
    "joinDuration",
    "commitDuration",
    "revealDuration",
    "validationDuration",
    "challengeDuration",
    "quorum",
    "contributorStake",
    "validatorBond",
    "validatorSlash",
    "challengeBond",
    "arbiter",
)

# Limits the contract enforces in createTask and _checkCid.
MAX_ROUNDS = 1000
MAX_VALIDATORS = 32
MAX_CID_BYTES = 128
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
UINT256_MAX = 2**256 - 1
ZERO_ADDRESS = "0x" + "00" * 20

_DIGITS = re.compile(r"[0-9]+")
_CID = re.compile(r"[\x21-\x7e]+")
_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_READER_KEY = _HEX32
_PINNING_HELD_OUT = "pinning_held_out"  # the validation context's key for validate_spec's argument


def _int_from_decimal(value: Any) -> Any:
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank; give the task a short descriptive name")
    return value


def _checksummed(value: str) -> str:
    if not (value.startswith("0x") and is_hex_address(value)):
        raise ValueError(f"{value!r} is not a 0x-prefixed 20-byte hex address")
    if value.lower() == ZERO_ADDRESS:
        raise ValueError("the zero address cannot take part in a task")
    if not is_checksum_address(value):
        if value[2:] in (value[2:].lower(), value[2:].upper()):
            raise ValueError(f"{value} is not EIP-55 checksummed; write it as {to_checksum_address(value)}")
        raise ValueError(f"{value} has an invalid EIP-55 checksum, which usually means a typo; check it")
    return value


ARBITER_REQUIRED = (
    "must name an account that is neither the task owner nor a validator (it rules on challenges)"
)


def _arbiter_named(value: Any) -> Any:
    if value is None:
        raise ValueError(ARBITER_REQUIRED)
    return value


def _digest_from_hex(value: Any) -> Any:
    if isinstance(value, str):
        if not _HEX32.fullmatch(value):
            raise ValueError(f"{value!r} is not a 0x-prefixed 32-byte hex digest")
        return bytes.fromhex(value[2:])
    return value


def _check_digest(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError(f"a sha256 digest is 32 bytes, got {len(value)}")
    return value


def _check_cid(value: str) -> str:
    if not _CID.fullmatch(value) or len(value) > MAX_CID_BYTES:
        raise ValueError(
            f"a CID is 1 to {MAX_CID_BYTES} printable ASCII characters without spaces, got {value!r}"
        )
    return value


def _registered_rule(value: str) -> str:
    if value not in rule_names():
        known = ", ".join(repr(name) for name in rule_names())
        raise ValueError(f"unknown aggregation rule {value!r}; use one of {known}")
    return value


def _check_json_data(value: Any, path: str = "") -> Any:
    """Reject anything the canonical JSON cannot carry exactly: non-string keys, NaN, infinities, objects."""
    at = f" at {path}" if path else ""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"key {key!r}{at} must be a string")
            _check_json_data(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json_data(item, f"{path}[{i}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r}{at} is not a finite number")
    elif value is not None and not isinstance(value, str | int | bool):
        raise ValueError(
            f"{value!r}{at} is a {type(value).__name__}; use strings, numbers, lists or mappings"
        )
    return value


Address = Annotated[str, AfterValidator(_checksummed)]
Wei = Annotated[
    int,
    BeforeValidator(_int_from_decimal),
    Field(ge=0, le=UINT256_MAX),
    PlainSerializer(str, return_type=str, when_used="json"),
]
Uint32 = Annotated[int, Field(ge=0, le=UINT32_MAX)]
PositiveUint32 = Annotated[int, Field(ge=1, le=UINT32_MAX)]
PositiveInt = Annotated[int, Field(ge=1)]
Digest = Annotated[
    bytes,
    BeforeValidator(_digest_from_hex),
    AfterValidator(_check_digest),
    PlainSerializer(lambda value: "0x" + value.hex(), return_type=str, when_used="json"),
]
Cid = Annotated[str, AfterValidator(_check_cid)]
#: The name of a rule in :mod:`cotrain.learning.rules`' registry.
RuleName = Annotated[str, AfterValidator(_registered_rule)]
JsonParams = Annotated[dict[str, Any], AfterValidator(_check_json_data)]


def _known_metric(value: str) -> str:
    try:
        parse_metric(value)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return value


def _distinct(values: list[str]) -> list[str]:
    twice = sorted({value for value in values if values.count(value) > 1})
    if twice:
        raise ValueError(f"{twice[0]!r} is listed twice; name each metric once")
    return values


#: Advisory metrics by name (:mod:`cotrain.learning.metrics`), e.g. ``[auroc, recall_at_fpr:0.01]``.
MetricNames = Annotated[
    list[Annotated[str, AfterValidator(_known_metric)]],
    Field(min_length=1, max_length=16),
    AfterValidator(_distinct),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FileRef(_Strict):
    """A file in storage: where it is (``cid``) and what it must hash to (``digest``, sha256)."""

    cid: Cid
    digest: Digest


class ModelSpec(_Strict):
    """The model to train: a preset (``logistic``, ``mlp``, ``cnn``) with its parameters (e.g. hidden sizes),
    or ``name: layers`` with ``layers``, its allowlisted layers in order (:mod:`cotrain.learning.layers`).

    ``layers`` is left out of the canonical JSON when unset, so preset specs keep their digests. Shapes and
    sizes are checked against the data schema by :class:`TaskSpec`.
    """

    name: ModelName
    params: JsonParams = Field(default_factory=dict)
    layers: Annotated[list[Layer], Field(min_length=1, max_length=MAX_LAYERS)] | None = None

    @model_validator(mode="after")
    def _layers_iff_named(self) -> ModelSpec:
        if self.name == "layers":
            if self.layers is None:
                raise ValueError("name 'layers' needs layers: the model's layers in order")
            if self.params:
                raise ValueError(
                    "a model given by its layers takes no params; each layer holds its own fields"
                )
        elif self.layers is not None:
            raise ValueError(
                f"layers belong to name 'layers'; the preset {self.name!r} takes params only (drop layers, "
                "or set name: layers)"
            )
        return self

    @model_serializer(mode="wrap")
    def _omit_preset_layers(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("layers") is None:
            data.pop("layers", None)
        return data


def _omit_unset(data: dict[str, Any], *names: str) -> dict[str, Any]:
    """``data`` without the ``names`` whose value is ``None``: fields added after specs were first posted
    are left out of the canonical JSON when unset, so those specs keep their digest."""
    for name in names:
        if data.get(name) is None:
            data.pop(name, None)
    return data


class ValidationSpec(_Strict):
    """How validators hold out data: a seeded split of the built-in set, identical on every validator, or
    the owner's held-out set pinned by ``held_out_digest``.

    ``split_seed`` and ``test_fraction`` pin the split of a built-in set and are required with one; without
    a built-in set they mean nothing and may be left out. ``held_out_digest`` is the canonical digest of the
    held-out examples (:func:`cotrain.learning.dataset_digest.dataset_digest`), which every validator and
    auditor checks before using their set. A task without a built-in data set must give it; for a built-in
    set it is optional and, when given, must be the split's digest. ``metrics`` names further advisory
    metrics validators and auditors report on the held-out set beside the record (never in it), e.g.
    ``[auroc, recall_at_fpr:0.01, top_k_accuracy:3]``. Each of them is left out of the canonical JSON when
    unset.
    """

    split_seed: Uint32 | None = None
    test_fraction: Annotated[float, BeforeValidator(float_from_text), Field(gt=0, lt=1)] | None = None
    held_out_digest: Digest | None = None
    metrics: MetricNames | None = None

    @model_serializer(mode="wrap")
    def _omit_unpinned(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_unset(handler(self), "split_seed", "test_fraction", "held_out_digest", "metrics")


class DataSpec(_Strict):
    """The data schema every contributor's local data must follow: the model's input shape and classes,
    a built-in data set or, for contributors' own CSV files, a column contract (``columns``,
    :class:`~cotrain.learning.data_contract.ColumnContract`), and the held-out set. ``columns`` is left out
    of the canonical JSON when unset."""

    input_shape: Annotated[list[PositiveInt], Field(min_length=1)]
    num_classes: Annotated[int, Field(ge=2)]
    builtin: BuiltinDataset | None = None
    columns: ColumnContract | None = None
    validation: ValidationSpec = Field(default_factory=ValidationSpec)

    @model_serializer(mode="wrap")
    def _omit_no_contract(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_unset(handler(self), "columns")


class TrainingSpec(_Strict):
    """Local training hyper-parameters, the same for every contributor.

    ``proximal_mu`` turns local training into FedProx (Li et al. 2020, "Federated Optimization in
    Heterogeneous Networks"): each contributor adds ``(mu / 2) * ||w - w_global||**2`` to its loss, which
    keeps updates on skewed shards closer to the round's model. ``class_weights`` (one per class, above 0)
    weighs each class's cross-entropy, so a rare class (fraud among transactions) is not drowned out.
    Validators compute nothing different for either. Each is left out of the canonical JSON when unset, so
    specs written before they existed keep their digest.
    """

    local_epochs: PositiveUint32
    batch_size: PositiveUint32
    lr: Annotated[float, BeforeValidator(float_from_text), Field(gt=0, allow_inf_nan=False)]
    optimizer: Optimizer
    seed: Uint32
    proximal_mu: (
        Annotated[float, BeforeValidator(float_from_text), Field(ge=0, allow_inf_nan=False)] | None
    ) = None
    class_weights: (
        Annotated[
            list[Annotated[float, BeforeValidator(float_from_text), Field(gt=0, allow_inf_nan=False)]],
            Field(min_length=2),
        ]
        | None
    ) = None

    @model_serializer(mode="wrap")
    def _omit_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_unset(handler(self), "proximal_mu", "class_weights")


Fraction = Annotated[float, BeforeValidator(float_from_text), Field(ge=0, lt=1, allow_inf_nan=False)]
AtLeastOne = Annotated[float, BeforeValidator(float_from_text), Field(ge=1, allow_inf_nan=False)]


class ScreeningSpec(_Strict):
    """How validators screen updates before aggregating (see docs/robustness.md).

    Norm bounds are multiples of the median norm of the round's updates; ``redundancy_distance`` is a
    multiple of the round's spread (how far updates lie from what the others say); ``max_samples_ratio`` a
    multiple of the median claimed sample count; ``min_score`` bounds the marginal-value score (PROTOCOL.md
    section 11.4). Every comparison uses the exact decimal value of the number the canonical spec writes.
    """

    enabled: bool = True
    duplicate_distance: Fraction = 0.1
    min_norm_ratio: Fraction = 0.25
    max_norm_ratio: Annotated[float, BeforeValidator(float_from_text), Field(gt=1, allow_inf_nan=False)] = (
        10.0
    )
    clip_norm_ratio: AtLeastOne = 2.0
    redundancy_distance: Fraction = 0.5
    max_samples_ratio: AtLeastOne = 2.0
    min_score: Annotated[float, BeforeValidator(float_from_text), Field(ge=-1, lt=1)] = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> ScreeningSpec:
        if self.clip_norm_ratio > self.max_norm_ratio:
            raise ValueError(
                f"clip_norm_ratio ({self.clip_norm_ratio}) must be at most max_norm_ratio "
                f"({self.max_norm_ratio})"
            )
        return self


class AggregationSpec(_Strict):
    """The aggregation rule, its parameters (defaults written out), the screening before it, and the
    fixed-point format updates are quantized to (``q32.24``: 32-bit integers with 24 fraction bits, the one
    format the protocol defines; see BENCHMARKS.md section 6 for why)."""

    rule: RuleName
    number_format: Literal["q32.24"] = "q32.24"
    params: JsonParams = Field(default_factory=dict)
    screening: ScreeningSpec = Field(default_factory=ScreeningSpec)

    @model_validator(mode="before")
    @classmethod
    def _rule_params(cls, data: Any) -> Any:
        # Fill in the rule's defaults so the canonical spec (and its digest) pins every number.
        if isinstance(data, Mapping) and data.get("rule") in rule_names():
            params = data.get("params") or {}
            if isinstance(params, Mapping):
                model = get_rule(data["rule"]).params
                try:
                    data = {**data, "params": model.model_validate(params).model_dump()}
                except ValidationError as exc:
                    details = format_errors(exc, model).replace("\n", ";").replace("  - ", " ")
                    raise ValueError(f"invalid params for rule {data['rule']!r}:{details}") from None
        return data


class PhasesSpec(_Strict):
    """Phase durations in seconds (each phase may end early once everyone expected acted)."""

    join: PositiveUint32
    commit: PositiveUint32
    reveal: PositiveUint32
    validation: PositiveUint32
    challenge: PositiveUint32


class ContributorsSpec(_Strict):
    """How many contributors a round needs and takes, and the stake each locks."""

    min: PositiveUint32
    max: PositiveUint32
    stake_wei: Wei


class ValidatorsSpec(_Strict):
    """The task's validators, how many identical proposals accept a round, and their bond."""

    addresses: Annotated[list[Address], Field(min_length=1, max_length=MAX_VALIDATORS)]
    quorum: PositiveUint32
    bond_wei: Wei
    slash_wei: Wei

    @field_validator("addresses")
    @classmethod
    def _unique(cls, addresses: list[str]) -> list[str]:
        seen: set[str] = set()
        for address in addresses:
            if address in seen:
                raise ValueError(f"{address} is listed twice; name each validator once")
            seen.add(address)
        return addresses


class LimitsSpec(_Strict):
    """Resource limits: the size of an update file validators accept (checked before parsing it), and the
    model's parameter count (checked when the spec is parsed).

    ``max_parameters`` is left out of the canonical JSON when unset, so specs written before it existed keep
    their digests; unset, a model given by its layers may hold at most ``DEFAULT_MAX_PARAMETERS``.
    """

    max_update_bytes: PositiveInt
    max_parameters: Annotated[int, Field(ge=1, le=MAX_PARAMETERS)] | None = None

    @model_serializer(mode="wrap")
    def _omit_unbounded(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("max_parameters") is None:
            data.pop("max_parameters", None)
        return data


class RewardsSpec(_Strict):
    """Reward and penalty terms beyond the per-round budget split."""

    slash_rejected_wei: Wei


def _reader_key(value: Any) -> Any:
    if isinstance(value, str) and _READER_KEY.fullmatch(value):
        return value.lower()
    raise ValueError(f"{value!r} is not a reader public key: 0x and 64 hex digits (`cotrain reader-key`)")


#: An X25519 public key as ``0x`` and 64 lower-case hex digits.
ReaderKey = Annotated[str, BeforeValidator(_reader_key)]
Positive = Annotated[float, BeforeValidator(float_from_text), Field(gt=0, allow_inf_nan=False)]


class ReaderSpec(_Strict):
    """An account that may read the task's sealed updates, and the encryption key they are sealed to."""

    account: Address
    key: ReaderKey


class DPSpec(_Strict):
    """Differential privacy every contributor applies to its own update (docs/privacy.md).

    ``mechanism`` "user" clips the whole update to L2 norm ``clip_norm`` and adds Gaussian noise of standard
    deviation ``noise_multiplier * clip_norm``; "sample" is DP-SGD (Opacus) with per-example gradients
    clipped to ``clip_norm``. ``max_epsilon`` is what a contributor may spend over the whole task, at
    ``delta``, as Opacus's RDP accountant composes its rounds.
    """

    mechanism: Literal["user", "sample"]
    noise_multiplier: Positive
    clip_norm: Positive
    delta: Annotated[float, BeforeValidator(float_from_text), Field(gt=0, lt=1)]
    max_epsilon: Positive


class PrivacySpec(_Strict):
    """Who may read updates (``readers``: sealed updates; ``None``: public) and the differential privacy
    contributors apply (``dp``). Every validator and the arbiter must be readers, or they cannot judge."""

    readers: Annotated[list[ReaderSpec], Field(min_length=1, max_length=64)] | None = None
    dp: DPSpec | None = None

    @model_validator(mode="after")
    def _something(self) -> PrivacySpec:
        if self.readers is None and self.dp is None:
            raise ValueError("give readers (sealed updates), dp (differential privacy) or both")
        keys = [reader.key for reader in self.readers or []]
        accounts = [reader.account for reader in self.readers or []]
        for name, values in (("key", keys), ("account", accounts)):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"readers: {name} {twice[0]} is listed twice; name each reader once")
        return self

    @property
    def sealed(self) -> bool:
        """Whether updates are sealed to the readers."""
        return self.readers is not None


#: Version 2: the exact integer consensus core (``aggregation.number_format``; no ``max_loss_increase``).
#: Version 3: marginal-value scores (``screening.redundancy_distance``, ``screening.max_samples_ratio``).
SPEC_VERSION: Final = 3


class TaskSpec(_Strict):
    """A whole task spec. Build it with :func:`load_spec` or :func:`parse_spec_bytes`.

    ``initial_model`` names the stored round-0 model; ``None`` means it is built from the model registry
    with ``training.seed``. Use :func:`with_initial_model` to fill it in before posting.
    """

    version: Literal[3] = SPEC_VERSION
    name: Annotated[str, Field(max_length=200), AfterValidator(_not_blank)]
    model: ModelSpec
    initial_model: FileRef | None = None
    data: DataSpec
    training: TrainingSpec
    aggregation: AggregationSpec
    rounds: Annotated[int, Field(ge=1, le=MAX_ROUNDS)]
    phases: PhasesSpec
    contributors: ContributorsSpec
    validators: ValidatorsSpec
    challenge_bond_wei: Wei
    # Required, but missing or null gets its own message (ARBITER_REQUIRED) instead of pydantic's.
    arbiter: Annotated[Address, BeforeValidator(_arbiter_named)] = Field(default=None, validate_default=True)
    budget_wei: Wei
    limits: LimitsSpec
    rewards: RewardsSpec
    # Left out of the canonical JSON when unset, so public tasks keep the digests they had before it existed.
    privacy: PrivacySpec | None = None

    @model_serializer(mode="wrap")
    def _omit_public(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("privacy") is None:
            data.pop("privacy", None)
        return data

    @model_validator(mode="before")
    @classmethod
    def _known_version(cls, data: Any) -> Any:
        old = {
            1: "were judged in float64 arithmetic",
            2: "paid by cosine to the median of all updates, which rewarded near-copies and crafted averages",
        }
        if isinstance(data, Mapping) and data.get("version") in old:
            raise ValueError(
                f"spec version {data['version']} tasks {old[data['version']]}, which this node no longer "
                f"runs; this node reads spec version {SPEC_VERSION} (marginal-value scores, PROTOCOL.md "
                "section 11): post the task again with this version"
            )
        return data

    @model_validator(mode="after")
    def _cross_field(self, info: ValidationInfo) -> TaskSpec:
        problems = []
        if self.contributors.min > self.contributors.max:
            problems.append(
                f"contributors.min ({self.contributors.min}) must be at most contributors.max "
                f"({self.contributors.max})"
            )
        validators = len(self.validators.addresses)
        if self.validators.quorum > validators:
            problems.append(
                f"validators.quorum ({self.validators.quorum}) must be at most the number of "
                f"validators.addresses ({validators})"
            )
        elif 2 * self.validators.quorum <= validators:
            problems.append(
                f"validators.quorum ({self.validators.quorum}) must be more than half the {validators} "
                f"validators.addresses (at least {validators // 2 + 1}), so that two disjoint groups of "
                "validators can never both accept a round"
            )
        if self.arbiter in self.validators.addresses:
            problems.append(
                f"arbiter {self.arbiter} is also in validators.addresses: the arbiter must be neither the "
                "task owner nor a validator"
            )
        for name, amount, why in (
            (
                "contributors.stake_wei",
                self.contributors.stake_wei,
                "an unrevealed update must cost something",
            ),
            ("validators.bond_wei", self.validators.bond_wei, "a wrong result must cost its validators"),
            ("challenge_bond_wei", self.challenge_bond_wei, "a frivolous challenge must cost its challenger"),
        ):
            if amount == 0:
                problems.append(f"{name} must be above zero: {why}")
        if self.phases.challenge < self.phases.validation:
            problems.append(
                f"phases.challenge ({self.phases.challenge}) must be at least phases.validation "
                f"({self.phases.validation}), so no round is finalized (and its silent validators slashed) "
                "before their deadline to agree"
            )
        if self.validators.slash_wei > self.validators.bond_wei:
            problems.append(
                f"validators.slash_wei ({self.validators.slash_wei}) must be at most validators.bond_wei "
                f"({self.validators.bond_wei})"
            )
        if self.rewards.slash_rejected_wei > self.contributors.stake_wei:
            problems.append(
                f"rewards.slash_rejected_wei ({self.rewards.slash_rejected_wei}) must be at most "
                f"contributors.stake_wei ({self.contributors.stake_wei})"
            )
        if self.budget_wei < self.rounds:
            problems.append(
                f"budget_wei ({self.budget_wei}) must be at least rounds ({self.rounds}); "
                "the contract splits it evenly over the rounds"
            )
        builtin = self.data.builtin
        pinning = bool(info.context and info.context.get(_PINNING_HELD_OUT))
        if builtin is None and self.data.validation.held_out_digest is None and not pinning:
            problems.append(
                "data.validation.held_out_digest: required when data.builtin is null (every validator must "
                "use the same held-out set); `cotrain task post --held-out FILE` computes it"
            )
        problems += _data_problems(self.data)
        if builtin is not None:
            features, classes = BUILTIN_SHAPES[builtin]
            if math.prod(self.data.input_shape) != features:
                problems.append(
                    f"data.input_shape {self.data.input_shape} must hold {features} values for "
                    f"data.builtin {builtin!r}"
                )
            if self.data.num_classes != classes:
                problems.append(
                    f"data.num_classes ({self.data.num_classes}) must be {classes} "
                    f"for data.builtin {builtin!r}"
                )
        dp = self.privacy.dp if self.privacy is not None else None
        if dp is not None and dp.mechanism == "sample" and self.training.proximal_mu:
            problems.append(
                "training.proximal_mu: FedProx is not implemented with DP-SGD (privacy.dp.mechanism "
                "'sample'); leave it out, or use mechanism 'user'"
            )
        if dp is not None and dp.mechanism == "sample" and self.training.class_weights is not None:
            problems.append(
                "training.class_weights: a class-weighted loss is not implemented with DP-SGD "
                "(privacy.dp.mechanism 'sample'); leave it out, or use mechanism 'user'"
            )
        weights = self.training.class_weights
        if weights is not None and len(weights) != self.data.num_classes:
            problems.append(
                f"training.class_weights: {len(weights)} weights, but data.num_classes is "
                f"{self.data.num_classes}; give one weight per class, in class order"
            )
        problems += self._model_problems()
        if self.privacy is not None and self.privacy.readers is not None:
            readers = {reader.account for reader in self.privacy.readers}
            for role, account in [("validator", a) for a in self.validators.addresses] + [
                ("arbiter", self.arbiter)
            ]:
                if account not in readers:
                    problems.append(
                        f"privacy.readers: the {role} {account} is not a reader, so it could not open the "
                        "sealed updates it must judge; add it with its key"
                    )
        if problems:
            # One bullet per problem in format_errors' output.
            raise ValueError("\n  - ".join(problems))
        return self

    def _model_problems(self) -> list[str]:
        """The model against the data schema and the limits: shapes, parameter count, update size."""
        model = self.model
        try:
            plans = plan_model(
                model.name, model.params, model.layers, self.data.input_shape, self.data.num_classes
            )
        except ConfigError as exc:
            return [str(exc)]
        count = parameter_count(plans)
        declared = model.layers is not None
        limit = self.limits.max_parameters
        problems = []
        if limit is not None and count > limit:
            problems.append(f"model: {count} parameters, more than limits.max_parameters ({limit})")
        elif limit is None and declared and count > DEFAULT_MAX_PARAMETERS:
            problems.append(
                f"model: {count} parameters, more than the {DEFAULT_MAX_PARAMETERS} a model given by its "
                f"layers may hold unless limits.max_parameters allows more (at most {MAX_PARAMETERS})"
            )
        # Presets are spared this check: specs posted before it existed must still parse.
        if declared and 4 * count > self.limits.max_update_bytes:
            problems.append(
                f"model: {count} float32 parameters make every update at least {4 * count} bytes, more "
                f"than limits.max_update_bytes ({self.limits.max_update_bytes}), so validators would refuse "
                "them all"
            )
        return problems


def _data_problems(data: DataSpec) -> list[str]:
    """What in ``data`` contradicts itself: a split without its parameters, a contract beside a built-in
    set, or a contract whose features or classes are not the model's."""
    problems = []
    if data.builtin is not None:
        for name in ("split_seed", "test_fraction"):
            if getattr(data.validation, name) is None:
                problems.append(
                    f"data.validation.{name}: required when data.builtin is set (it pins the held-out split)"
                )
    for text in data.validation.metrics or []:
        metric = parse_metric(text)
        if metric.name in BINARY_METRICS and data.num_classes != 2:
            problems.append(
                f"data.validation.metrics: {text} ranks a positive class against a negative one, so it needs "
                f"data.num_classes 2, not {data.num_classes}"
            )
        if metric.name == "top_k_accuracy" and int(metric.parameter or 0) >= data.num_classes:
            problems.append(
                f"data.validation.metrics: {text} guesses at least as many classes as there are "
                f"({data.num_classes}); use a k below data.num_classes"
            )
    contract = data.columns
    if contract is None:
        return problems
    if data.builtin is not None:
        problems.append(
            f"data.columns: a column contract describes contributors' own CSV files, but data.builtin "
            f"{data.builtin!r} has its own preprocessing; set data.builtin to null or drop data.columns"
        )
    size = math.prod(data.input_shape)
    if contract.width != size:
        problems.append(
            f"data.columns: the contract's columns make {contract.width} features, but data.input_shape "
            f"{data.input_shape} holds {size} values (a one-hot column makes one per category)"
        )
    if len(contract.label.classes) != data.num_classes:
        problems.append(
            f"data.columns.label.classes: {len(contract.label.classes)} classes, but data.num_classes is "
            f"{data.num_classes}"
        )
    return problems


def validate_spec(data: Any, *, source: str = "task spec", pinning_held_out: bool = False) -> TaskSpec:
    """Validate already-decoded spec data (a mapping, e.g. from YAML or JSON).

    Parameters
    ----------
    data : Any
        The decoded document.
    source : str
        What to call the document in error messages (e.g. its path).
    pinning_held_out : bool
        Accept a spec without built-in data that lacks ``data.validation.held_out_digest``, because the
        caller pins it next (:func:`with_held_out_digest`, which checks the result as usual).

    Raises
    ------
    ConfigError
        Listing every invalid field by its dotted path, with the allowed values.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a task spec must be a mapping of fields, got {type(data).__name__}")
    try:
        return TaskSpec.model_validate(data, context={_PINNING_HELD_OUT: pinning_held_out})
    except ValidationError as exc:
        raise ConfigError(f"{source}: invalid task spec\n{format_errors(exc, TaskSpec)}") from None


def load_spec(path: str | os.PathLike[str], *, pinning_held_out: bool = False) -> TaskSpec:
    """Read and validate a task spec from a ``.yaml``/``.yml`` or ``.json`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The spec file; its suffix picks the parser. Duplicate keys are rejected.
    pinning_held_out : bool
        As in :func:`validate_spec`.

    Returns
    -------
    TaskSpec

    Raises
    ------
    ConfigError
        If the file cannot be read or parsed, or the spec is invalid.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise ConfigError(f"{path}: unknown spec format {suffix!r}; name the file .yaml, .yml or .json")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the task spec ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the task spec is not UTF-8 text ({exc})") from exc
    try:
        data = _load_json(text) if suffix == ".json" else yaml.load(text, Loader=_UniqueKeyLoader)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot parse the task spec: {exc}") from exc
    return validate_spec(data, source=str(path), pinning_held_out=pinning_held_out)


def spec_bytes(spec: TaskSpec) -> bytes:
    """Return the canonical JSON of ``spec``: the file stored on the network and hashed on chain.

    Keys are sorted, there is no whitespace, text is UTF-8, optional fields are written out (``null``
    when unset) except ``data.columns``, ``data.validation``'s fields, ``training.proximal_mu`` and
    ``class_weights``, ``privacy``, ``model.layers`` and ``limits.max_parameters``, which are left out when
    unset, and wei
    amounts and digests are strings (decimal and ``0x``-prefixed lowercase hex).
    """
    return canonical_json(spec.model_dump(mode="json"))


def spec_digest(spec: TaskSpec) -> bytes:
    """Return sha256 of :func:`spec_bytes` (32 bytes), the task's on-chain ``specDigest``."""
    return hashlib.sha256(spec_bytes(spec)).digest()


def parse_spec_bytes(data: bytes) -> TaskSpec:
    """Parse a stored spec file; only its canonical encoding (:func:`spec_bytes`) is accepted.

    Check ``data`` against the on-chain ``specDigest`` before calling this.

    Parameters
    ----------
    data : bytes
        The file's bytes.

    Raises
    ------
    IntegrityError
        If ``data`` is not UTF-8 JSON, is not a valid spec, or is not byte-for-byte canonical.
    """
    try:
        decoded = _load_json(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"task spec file is not UTF-8 JSON ({exc}); it was not parsed further") from exc
    try:
        spec = validate_spec(decoded, source="task spec file")
    except ConfigError as exc:
        raise IntegrityError(str(exc)) from None
    if spec_bytes(spec) != data:
        raise IntegrityError(
            "task spec file is valid but not in canonical form (sorted keys, no whitespace, every field, "
            "wei as strings); the owner must store exactly spec_bytes(spec)"
        )
    return spec


def with_initial_model(spec: TaskSpec, cid: str, digest: bytes) -> TaskSpec:
    """Return a copy of ``spec`` that names the stored initial model.

    Raises
    ------
    ConfigError
        If ``cid`` or ``digest`` is malformed.
    """
    data = spec.model_dump()
    data["initial_model"] = {"cid": cid, "digest": digest}
    return validate_spec(data)


def with_held_out_digest(spec: TaskSpec, digest: bytes) -> TaskSpec:
    """Return a copy of ``spec`` whose ``data.validation.held_out_digest`` is ``digest``.

    Raises
    ------
    ConfigError
        If ``digest`` is malformed.
    """
    data = spec.model_dump()
    data["data"]["validation"]["held_out_digest"] = digest
    return validate_spec(data)


def task_params(spec: TaskSpec, spec_digest: bytes) -> dict[str, Any]:
    """Return the contract's ``TaskParams`` for ``spec``, keys in ABI order (see :data:`TASK_PARAMS_FIELDS`).

    ``tuple(task_params(spec, digest).values())`` is the struct argument of ``createTask``.

    Parameters
    ----------
    spec : TaskSpec
        The validated spec.
    spec_digest : bytes
        sha256 of the stored spec file; it must equal ``spec_digest(spec)``.

    Raises
    ------
    ConfigError
        If ``spec_digest`` is not the digest of this spec's canonical bytes.
    """
    expected = hashlib.sha256(spec_bytes(spec)).digest()
    if spec_digest != expected:
        raise ConfigError(
            f"spec digest 0x{bytes(spec_digest).hex()} is not this spec's; pass spec_digest(spec) "
            f"(0x{expected.hex()}) and store exactly spec_bytes(spec)"
        )
    params: dict[str, Any] = {
        "specDigest": expected,
        "numRounds": spec.rounds,
        "minContributors": spec.contributors.min,
        "maxContributors": spec.contributors.max,
        "joinDuration": spec.phases.join,
        "commitDuration": spec.phases.commit,
        "revealDuration": spec.phases.reveal,
        "validationDuration": spec.phases.validation,
        "challengeDuration": spec.phases.challenge,
        "quorum": spec.validators.quorum,
        "contributorStake": spec.contributors.stake_wei,
        "validatorBond": spec.validators.bond_wei,
        "validatorSlash": spec.validators.slash_wei,
        "challengeBond": spec.challenge_bond_wei,
        "arbiter": spec.arbiter,
    }
    return params


def format_errors(exc: ValidationError, model: type[BaseModel]) -> str:
    """Render a pydantic error as one ``- dotted.field: problem`` line per problem.

    Unknown fields are reported with the fields allowed at that place.
    """
    lines = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = _fields_at(model, loc[:-1])
            message = "unknown field" + (f"; allowed fields: {', '.join(allowed)}" if allowed else "")
        elif kind == "missing":
            message = "required field is missing"
        elif kind == "value_error":
            message = error["msg"].removeprefix("Value error, ")
        else:
            shown = repr(error["input"])
            message = f"{error['msg']}, got {shown if len(shown) <= 80 else shown[:77] + '...'}"
        lines.append(f"  - {where}: {message}" if where else f"  - {message}")
    return "\n".join(lines)


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the model found at ``loc`` inside ``model``, or ``[]`` when there is none."""
    current: Any = model
    for part in loc:
        while get_origin(current) is Annotated:
            current = get_args(current)[0]
        if isinstance(part, int):
            items = get_args(current) if get_origin(current) is list else ()
            current = items[0] if items else None
            continue
        if get_origin(current) in (Union, types.UnionType):
            # A discriminated union (data.columns.features, model.layers): pydantic names a member by tag.
            tagged = [arg for arg in get_args(current) if _is_model(arg) and _has_tag(arg, part)]
            current = tagged[0] if tagged else None
            continue
        if not (_is_model(current) and part in current.model_fields):
            return []
        current = current.model_fields[part].annotation
        if get_origin(current) in (Union, types.UnionType):
            members = [arg for arg in get_args(current) if arg is not type(None)]
            current = members[0] if len(members) == 1 else None
    return list(current.model_fields) if _is_model(current) else []


def _has_tag(model: type[BaseModel], tag: str | int) -> bool:
    """Whether a field of ``model`` is the literal ``tag`` (the discriminator of a union's member)."""
    return any(
        get_origin(field.annotation) is Literal and get_args(field.annotation) == (tag,)
        for field in model.model_fields.values()
    )


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def canonical_json(value: Any) -> bytes:
    """Encode JSON data canonically: sorted keys, no whitespace, UTF-8, NaN and infinities refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys, which PyYAML would otherwise let the last one win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                raise yaml.constructor.ConstructorError(
                    None, None, f"mapping key {key!r} must be a plain value", key_node.start_mark
                )
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
