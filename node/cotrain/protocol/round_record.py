"""The round record: what every validator writes for a round and every auditor re-derives.

A record lists the round's inputs (base model, rule and parameters, each revealed update), the verdict on
each update with its reason, score, weight, reward and slash, the new model, and the reward and slash Merkle
roots, which are computed from the per-update amounts rather than stated. It holds nothing that depends on the
machine: the held-out metrics, which come from torch kernels, are advisory and reported beside it
(:class:`cotrain.protocol.round_outcome.RoundOutcome`), never inside it.

Its canonical bytes (:func:`record_bytes`) are what validators store and hash, so two validators that reach
the same results write identical files. The JSON holds no floats: scores and weights are decimal
strings with :data:`FLOAT_PLACES` places, float parameters are written as their shortest repr, and integers
that may pass 2**53 (wei, task id, sample counts) are decimal strings. Byte strings are ``0x`` lower-case
hex, addresses lower-case hex, and updates sorted by contributor. :func:`parse_record` accepts exactly
those bytes and nothing else.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from enum import Enum
from functools import cached_property
from typing import Annotated, Any, Final, Literal

from eth_utils import is_checksum_address, is_checksum_formatted_address, is_hex_address
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    ValidationError,
    computed_field,
    field_validator,
    model_serializer,
    model_validator,
)

from cotrain.errors import IntegrityError
from cotrain.protocol.epsilon import parse_declared
from cotrain.protocol.merkle import Allocation
from cotrain.protocol.rewards import EMPTY_ROOT, AllocationProof, RewardTree
from cotrain.protocol.task_spec import (
    MAX_CID_BYTES,
    UINT64_MAX,
    UINT256_MAX,
    AggregationSpec,
    Digest,
    FileRef,
    JsonParams,
    RuleName,
    Uint32,
    Wei,
    canonical_json,
    format_errors,
)

# Version 2 dropped the held-out metrics (version 1 hashed them, so honest machines could disagree); version
# 3 is the exact integer arithmetic (fixed-point updates, scores and shares in millionths, number_format);
# version 4 scores marginal value (leave-one-out references, novelty, one voice per group: redundant).
RECORD_VERSION: Final = 4
FLOAT_PLACES = 6
Verdict = Literal["accepted", "rejected"]
COMPUTED_FIELDS: tuple[str, ...] = ("reward_total", "rewards_root", "slash_root")

_JSON_SAFE_INT = 2**53 - 1
_FIXED = re.compile(rf"-?(0|[1-9][0-9]*)\.[0-9]{{{FLOAT_PLACES}}}")
_DIGITS = re.compile(r"[0-9]+")


def _epsilon(value: str) -> str:
    if parse_declared(value) is None:
        raise ValueError(
            f"{value!r} is not an epsilon: write a plain decimal without exponent or trailing zeros, e.g. 2.5"
        )
    return value


#: A non-negative decimal as text, exactly as a contributor declared it (e.g. ``"2.5"``, never ``"2.50"``).
Epsilon = Annotated[str, AfterValidator(_epsilon)]


class Reason(str, Enum):
    """Why an update got its verdict. ``ok`` goes with ``accepted``, every other code with ``rejected``."""

    OK = "ok"
    UNAVAILABLE = "unavailable"  # storage did not return the file in time
    DIGEST_MISMATCH = "digest_mismatch"  # the file does not hash to the revealed digest
    TOO_LARGE = "too_large"  # the file exceeds limits.max_update_bytes
    MALFORMED = "malformed"  # not a safetensors file with the expected tensors and dtypes
    WRONG_BINDING = "wrong_binding"  # metadata names another task, round or contributor
    SAMPLES_MISMATCH = "samples_mismatch"  # metadata sample count differs from the revealed one
    SHAPE_MISMATCH = "shape_mismatch"  # tensor shapes differ from the task's model
    NON_FINITE = "non_finite"  # NaN or infinite values
    OUT_OF_RANGE = "out_of_range"  # a value does not fit the spec's fixed-point format
    DUPLICATE = "duplicate"  # the same (or nearly) as an update committed earlier in the round
    OUTLIER = "outlier"  # its norm is far above the round's median norm
    FREE_RIDER = "free_rider"  # no or negligible change: its norm is far below the round's median norm
    REDUNDANT = "redundant"  # as close to an earlier commit as honest updates never are: one voice
    LOW_SCORE = "low_score"  # its marginal value is below the spec's minimum score
    UNDECRYPTABLE = "undecryptable"  # a sealed file that does not open to the task's readers as one plaintext
    OVER_BUDGET = "over_budget"  # declares no epsilon, or more than the spec's privacy.dp.max_epsilon


def format_fixed(value: float) -> str:
    """Return ``value`` as a decimal string with :data:`FLOAT_PLACES` places, e.g. ``0.1 -> "0.100000"``.

    Rounding is of the exact binary value, half to even, as Python's ``format`` does on every platform;
    negative zero becomes ``"0.000000"``.

    Raises
    ------
    ValueError
        If ``value`` is not a finite int or float.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{value} is too large to record") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number; a record holds finite numbers only")
    text = f"{number:.{FLOAT_PLACES}f}"
    return text[1:] if text.startswith("-") and Decimal(text) == 0 else text


def format_micro(value: int) -> str:
    """Return a count of millionths as the record's decimal string, e.g. ``-707107 -> "-0.707107"``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer number of millionths, got {value!r}")
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(value), 10**FLOAT_PLACES)
    return f"{sign}{whole}.{fraction:0{FLOAT_PLACES}d}"


def parse_micro(text: str) -> int:
    """The count of millionths a record's decimal string holds, e.g. ``"-0.707107" -> -707107``."""
    if not _FIXED.fullmatch(text):
        raise ValueError(f"{text!r} is not a decimal string with exactly {FLOAT_PLACES} places")
    sign = -1 if text.startswith("-") else 1
    whole, fraction = text.lstrip("-").split(".")
    return sign * (int(whole) * 10**FLOAT_PLACES + int(fraction))


def _fixed(value: Any) -> Any:
    if isinstance(value, str):
        if not _FIXED.fullmatch(value) or (value.startswith("-") and Decimal(value) == 0):
            raise ValueError(f"{value!r} is not a decimal string with exactly {FLOAT_PLACES} places")
        return value
    return format_fixed(value)


def _non_negative(value: str) -> str:
    if value.startswith("-"):
        raise ValueError(f"must not be negative, got {value}")
    return value


def _int_from_decimal(value: Any) -> Any:
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return value


def _lower_address(value: str) -> str:
    if not (value.startswith("0x") and is_hex_address(value)):
        raise ValueError(f"{value!r} is not a 0x-prefixed 20-byte hex address")
    if is_checksum_formatted_address(value) and not is_checksum_address(value):
        raise ValueError(f"{value} has an invalid EIP-55 checksum; fix the typo or pass it in lower case")
    return value.lower()


def _json_exact(value: Any) -> Any:
    """Floats to their shortest repr and integers beyond 2**53 to decimal strings, recursively."""
    if isinstance(value, Mapping):
        return {key: _json_exact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_exact(item) for item in value]
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _JSON_SAFE_INT:
        return str(value)
    return value


def _from_spec(value: Any) -> Any:
    return value.model_dump() if isinstance(value, AggregationSpec) else value


Fixed = Annotated[str, BeforeValidator(_fixed)]
NonNegativeFixed = Annotated[str, BeforeValidator(_fixed), AfterValidator(_non_negative)]
LowerAddress = Annotated[str, AfterValidator(_lower_address)]
TaskId = Annotated[
    int,
    BeforeValidator(_int_from_decimal),
    Field(ge=1, le=UINT256_MAX),
    PlainSerializer(str, return_type=str, when_used="json"),
]
Samples = Annotated[
    int,
    BeforeValidator(_int_from_decimal),
    Field(ge=1, le=UINT64_MAX),
    PlainSerializer(str, return_type=str, when_used="json"),
]


def _revealed_cid(value: str) -> str:
    if not 0 < len(value.encode("utf-8")) <= MAX_CID_BYTES:
        raise ValueError(f"a revealed CID is 1 to {MAX_CID_BYTES} bytes, got {value!r}")
    return value


# What the market accepted at reveal time (any 1-128 byte string): the record must hold every revealed
# update, including one whose "CID" is not a CID at all (it is then rejected, not dropped).
RevealedCid = Annotated[str, AfterValidator(_revealed_cid)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class RecordAggregation(_Strict):
    """The rule, parameters and screening thresholds the round was judged with (from the task spec).

    Float parameters are held as their repr strings so that the record carries no floats.
    """

    rule: RuleName
    number_format: Literal["q32.24"]
    params: Annotated[JsonParams, AfterValidator(_json_exact)] = Field(default_factory=dict)
    screening: Annotated[JsonParams, AfterValidator(_json_exact)] = Field(default_factory=dict)


class UpdateEntry(_Strict):
    """One revealed update and what the validator made of it.

    ``score``, ``weight`` accept floats and are held as fixed-precision strings (see :func:`format_fixed`).
    A rejected update has weight and reward zero; an accepted one has reason ``ok`` and no slash.
    """

    contributor: LowerAddress
    cid: RevealedCid
    digest: Digest
    samples: Samples
    verdict: Verdict
    reason: Annotated[Reason, Field(strict=False)]
    score: Fixed
    weight: NonNegativeFixed
    reward: Wei
    slash: Wei
    # The epsilon the update's file declares its contributor has spent in the task, this round included;
    # only in tasks with privacy.dp, and left out of the canonical JSON otherwise.
    epsilon: Epsilon | None = None

    @model_serializer(mode="wrap")
    def _omit_epsilon(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("epsilon") is None:
            data.pop("epsilon", None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> UpdateEntry:
        who = self.contributor
        if self.verdict == "accepted":
            if self.reason != Reason.OK:
                raise ValueError(
                    f"update of {who} is accepted, so its reason must be 'ok', not {self.reason.value!r}"
                )
            if self.slash:
                raise ValueError(f"update of {who} is accepted, so it cannot be slashed ({self.slash} wei)")
        else:
            if self.reason == Reason.OK:
                raise ValueError(f"update of {who} is rejected, so its reason must say why (not 'ok')")
            if Decimal(self.weight) != 0 or self.reward:
                raise ValueError(f"update of {who} is rejected, so its weight and reward must be zero")
        return self


class RoundRecord(_Strict):
    """A validator's account of one round. ``updates`` are kept sorted by contributor address.

    ``reward_total``, ``rewards_root`` and ``slash_root`` are computed from the updates' ``reward`` and
    ``slash`` (leaves in update order, zero amounts left out); they are what the validator proposes.
    """

    version: Literal[4] = RECORD_VERSION
    task_id: TaskId
    round: Uint32
    base_model: FileRef
    aggregation: Annotated[RecordAggregation, BeforeValidator(_from_spec)]
    updates: Annotated[list[UpdateEntry], Field(min_length=1)]
    new_model: FileRef

    @field_validator("updates")
    @classmethod
    def _sorted_unique(cls, updates: list[UpdateEntry]) -> list[UpdateEntry]:
        ordered = sorted(updates, key=lambda update: update.contributor)
        for before, after in itertools.pairwise(ordered):
            if before.contributor == after.contributor:
                raise ValueError(f"{after.contributor} has two updates; a contributor reveals once per round")
        if sum(update.reward for update in ordered) > UINT256_MAX:
            raise ValueError("the rewards add up to more than 2**256 - 1 wei")
        return ordered

    @property
    def reward_allocations(self) -> list[Allocation]:
        """The rewards tree's leaves, in index order."""
        return [Allocation(u.contributor, u.reward) for u in self.updates if u.reward > 0]

    @property
    def slash_allocations(self) -> list[Allocation]:
        """The slash tree's leaves, in index order."""
        return [Allocation(u.contributor, u.slash) for u in self.updates if u.slash > 0]

    @cached_property
    def reward_tree(self) -> RewardTree | None:
        """The tree over :attr:`reward_allocations`, built once per record; None when nobody is paid."""
        allocations = self.reward_allocations
        return RewardTree(allocations) if allocations else None

    @cached_property
    def slash_tree(self) -> RewardTree | None:
        """The tree over :attr:`slash_allocations`, built once per record; None when nobody is slashed."""
        allocations = self.slash_allocations
        return RewardTree(allocations) if allocations else None

    def reward_proof(self, account: str) -> AllocationProof:
        """``account``'s reward leaf and proof for the market's ``claim``.

        Raises
        ------
        ValueError
            If the record pays ``account`` nothing.
        """
        return _prove(self.reward_tree, account)

    def slash_proof(self, account: str) -> AllocationProof:
        """``account``'s slash leaf and proof for the market's ``slashContributor``.

        Raises
        ------
        ValueError
            If the record slashes ``account`` nothing.
        """
        return _prove(self.slash_tree, account)

    @computed_field(return_type=Wei)  # type: ignore[prop-decorator]
    @cached_property
    def reward_total(self) -> int:
        """Sum of the rewards (the proposal's ``rewardTotal``)."""
        return sum(u.reward for u in self.updates)

    @computed_field(return_type=Digest)  # type: ignore[prop-decorator]
    @cached_property
    def rewards_root(self) -> bytes:
        """Merkle root of :attr:`reward_allocations`; 32 zero bytes when nobody is paid."""
        return EMPTY_ROOT if self.reward_tree is None else self.reward_tree.root

    @computed_field(return_type=Digest)  # type: ignore[prop-decorator]
    @cached_property
    def slash_root(self) -> bytes:
        """Merkle root of :attr:`slash_allocations`; 32 zero bytes when nobody is slashed."""
        return EMPTY_ROOT if self.slash_tree is None else self.slash_tree.root


def _prove(tree: RewardTree | None, account: str) -> AllocationProof:
    if tree is None:
        raise ValueError(f"{account} has no allocation in this tree")
    return tree.proof(account)


def record_bytes(record: RoundRecord) -> bytes:
    """Return the record's canonical JSON: sorted keys, no whitespace, UTF-8, no floats."""
    return canonical_json(record.model_dump(mode="json"))


def record_digest(record: RoundRecord) -> bytes:
    """Return sha256 of :func:`record_bytes` (the proposal's ``recordDigest``)."""
    return hashlib.sha256(record_bytes(record)).digest()


def parse_record(data: bytes) -> RoundRecord:
    """Parse a stored round record; only its canonical encoding (:func:`record_bytes`) is accepted.

    Check ``data`` against the on-chain ``recordDigest`` before calling this.

    Parameters
    ----------
    data : bytes
        The file's bytes.

    Raises
    ------
    IntegrityError
        If ``data`` is not UTF-8 JSON, breaks the schema (unknown or missing fields, wrong types, floats,
        inconsistent verdicts), states roots or totals that its updates do not give, or differs in any byte
        from the canonical encoding of what it says.
    """
    try:
        decoded = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IntegrityError(f"round record is not UTF-8 JSON ({exc}); it was not parsed further") from exc
    if not isinstance(decoded, dict):
        raise IntegrityError(f"round record must be a JSON object, got {type(decoded).__name__}")
    missing = [name for name in COMPUTED_FIELDS if name not in decoded]
    if missing:
        raise IntegrityError(f"round record lacks {', '.join(missing)}")
    if decoded.get("version") != RECORD_VERSION:
        raise IntegrityError(
            f"round record has version {decoded.get('version')!r}, this node reads version {RECORD_VERSION} "
            "only (earlier versions judged by other rules); judge the round again with this node"
        )
    stated = {name: decoded.pop(name) for name in COMPUTED_FIELDS}
    try:
        record = RoundRecord.model_validate(decoded)
    except ValidationError as exc:
        raise IntegrityError(f"round record breaks the schema\n{format_errors(exc, RoundRecord)}") from None
    derived = record.model_dump(mode="json", include=set(COMPUTED_FIELDS))
    for name in COMPUTED_FIELDS:
        if stated[name] != derived[name]:
            raise IntegrityError(
                f"round record states {name} {stated[name]!r} but its updates give {derived[name]!r}"
            )
    if record_bytes(record) != data:
        raise IntegrityError(
            "round record is not in canonical form (key order, whitespace, number formats, update order or "
            "duplicate keys); validators must store exactly record_bytes(record)"
        )
    return record
