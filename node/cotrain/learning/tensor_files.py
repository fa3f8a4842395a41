"""The files that carry weights across the network: safetensors, never pickle.

A safetensors file is an 8-byte little-endian header length ``N``, ``N`` bytes of JSON header (tensor names to
dtype, shape and byte offsets, plus an optional ``__metadata__`` map of strings), then the raw tensor bytes.
This module writes one canonical form of it, so equal tensors and metadata always give equal bytes (and equal
digests): keys sorted, compact JSON, tensors laid out in key order, the header padded with spaces to a
multiple of 8 bytes. The safetensors library reads these files; its own writer is not used because it orders
metadata differently in every process.

Decoding never trusts the file: size, header and every declared tensor are checked against what the caller
expects before any tensor is built, and each failure names a :class:`RejectReason`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn, Union

import numpy as np

from cotrain.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    import torch

# torch is imported only where tensors are built, so the consensus core (which reads and writes these files as
# numpy arrays) runs without it.
Expected = Mapping[str, tuple[tuple[int, ...], "torch.dtype"]]
#: The names and shapes a file must hold, all float32.
Shapes = Mapping[str, tuple[int, ...]]
#: What the encoders take: float32 numpy arrays or float32 torch tensors.
Tensors = Mapping[str, Union[np.ndarray, "torch.Tensor"]]

FORMAT_KEY = "cotrain.format"
UPDATE_FORMAT = "cotrain.update/1"
MODEL_FORMAT = "cotrain.model/1"
# The safetensors library refuses headers above this size; a file it would refuse is malformed here too.
MAX_HEADER_BYTES = 100_000_000
_METADATA = "__metadata__"
_F32 = "F32"


class RejectReason(str, Enum):
    """Why an update file was rejected; the value is what round records store."""

    OVERSIZE = "oversize"
    MALFORMED = "malformed"
    WRONG_KEYS = "wrong_keys"
    WRONG_SHAPE = "wrong_shape"
    WRONG_DTYPE = "wrong_dtype"
    NON_FINITE = "non_finite"
    DIGEST_MISMATCH = "digest_mismatch"
    MISSING = "missing"


class UpdateRejected(IntegrityError):
    """A file failed a check; ``reason`` says which and the message says what was found."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"rejected ({reason.value}): {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, self.detail))


def _reject(reason: RejectReason, detail: str) -> NoReturn:
    raise UpdateRejected(reason, detail)


def _float32_array(name: str, tensor: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(tensor, np.ndarray):
        if tensor.dtype != np.float32:
            raise ConfigError(f"tensor {name!r} must be a float32 array")
        return np.ascontiguousarray(tensor).astype("<f4", copy=False)
    if getattr(tensor, "dtype", None) is None or str(tensor.dtype) != "torch.float32":
        raise ConfigError(f"tensor {name!r} must be a float32 tensor")
    return tensor.detach().cpu().contiguous().numpy().astype("<f4", copy=False)


def _encode(tensors: Tensors, metadata: Mapping[str, str], file_format: str) -> bytes:
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ConfigError("metadata must map strings to strings")
    if FORMAT_KEY in metadata:
        raise ConfigError(f"metadata key {FORMAT_KEY!r} is reserved; the encoder sets it")
    header: dict[str, Any] = {_METADATA: dict(sorted({**metadata, FORMAT_KEY: file_format}.items()))}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        tensor = tensors[name]
        if not isinstance(name, str) or not name or name == _METADATA:
            raise ConfigError(f"tensor name {name!r} is not allowed")
        array = _float32_array(name, tensor)
        if not np.isfinite(array).all():
            raise IntegrityError(
                f"tensor {name!r} holds NaN or infinite values; no node would accept the file"
            )
        raw = array.tobytes()
        header[name] = {
            "dtype": _F32,
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def encode_update(delta: Tensors, metadata: Mapping[str, str]) -> bytes:
    """Serialize an update (a delta) to canonical safetensors bytes.

    Parameters
    ----------
    delta : Mapping[str, numpy.ndarray | torch.Tensor]
        Finite float32 arrays or tensors.
    metadata : Mapping[str, str]
        Strings stored in the header, e.g. the task, round and contributor the update is bound to. The key
        ``"cotrain.format"`` is reserved and set to ``"cotrain.update/1"``.

    Returns
    -------
    bytes
        The same for the same tensors and metadata, whatever the insertion order, process or machine.

    Raises
    ------
    ConfigError
        For a non-float32 tensor, a bad name or non-string metadata.
    IntegrityError
        For a tensor holding NaN or infinity.
    """
    return _encode(delta, metadata, UPDATE_FORMAT)


def encode_model(state: Tensors, metadata: Mapping[str, str]) -> bytes:
    """Serialize model weights to canonical safetensors bytes, like :func:`encode_update` but with
    ``"cotrain.format"`` set to ``"cotrain.model/1"``."""
    return _encode(state, metadata, MODEL_FORMAT)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            _reject(RejectReason.MALFORMED, f"the header names {key!r} twice")
        result[key] = value
    return result


def _no_constants(name: str) -> NoReturn:
    _reject(RejectReason.MALFORMED, f"the header holds the non-JSON constant {name}")


def _is_count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _parse_header(
    data: bytes,
) -> tuple[int, dict[str, str], dict[str, tuple[str, tuple[int, ...], int, int]]]:
    if len(data) < 8:
        _reject(RejectReason.MALFORMED, f"{len(data)} bytes is too short for a safetensors file")
    length = int.from_bytes(data[:8], "little")
    if length < 2 or length > len(data) - 8 or length > MAX_HEADER_BYTES:
        _reject(RejectReason.MALFORMED, f"header length {length} does not fit a file of {len(data)} bytes")
    try:
        text = data[8 : 8 + length].decode("utf-8")
    except UnicodeDecodeError:
        _reject(RejectReason.MALFORMED, "the header is not UTF-8")
    if not text.startswith("{"):
        _reject(RejectReason.MALFORMED, "the header is not a JSON object")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except UpdateRejected:
        raise
    except (ValueError, RecursionError):
        _reject(RejectReason.MALFORMED, "the header is not valid JSON")
    if not isinstance(header, dict):
        _reject(RejectReason.MALFORMED, "the header is not a JSON object")
    metadata = header.pop(_METADATA, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        _reject(RejectReason.MALFORMED, "__metadata__ is not a map of strings to strings")
    entries: dict[str, tuple[str, tuple[int, ...], int, int]] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            _reject(
                RejectReason.MALFORMED, f"entry {name!r} does not declare exactly dtype, shape, data_offsets"
            )
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if (
            not isinstance(dtype, str)
            or not isinstance(shape, list)
            or not all(_is_count(d) for d in shape)
            or not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(_is_count(o) for o in offsets)
            or offsets[0] > offsets[1]
        ):
            _reject(RejectReason.MALFORMED, f"entry {name!r} has an invalid dtype, shape or data_offsets")
        entries[name] = (dtype, tuple(shape), offsets[0], offsets[1])
    # The declared byte ranges must tile the data section exactly: no gaps, overlaps or trailing bytes.
    position = 0
    for _, _, begin, end in sorted(entries.values(), key=lambda entry: (entry[2], entry[3])):
        if begin != position:
            _reject(RejectReason.MALFORMED, "tensor byte ranges overlap or leave gaps")
        position = end
    if position != len(data) - 8 - length:
        _reject(
            RejectReason.MALFORMED, f"tensors cover {position} bytes, the file holds {len(data) - 8 - length}"
        )
    return 8 + length, metadata, entries


def _names(keys: set[str]) -> str:
    shown = sorted(keys)[:5]
    return ", ".join(map(repr, shown)) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "") or "none"


def decode_tensors(
    data: bytes, *, expected: Expected | None, max_bytes: int
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """:func:`decode_arrays`, with the tensors as torch tensors and ``expected`` naming dtypes too.

    Parameters
    ----------
    expected : Mapping[str, tuple[tuple[int, ...], torch.dtype]] or None
        The exact names and shapes the file must hold (see ``cotrain.learning.state.layout``), all float32;
        ``None`` accepts any set of float32 tensors.

    Raises
    ------
    UpdateRejected
        As :func:`decode_arrays` does.
    ConfigError
        If ``expected`` names a dtype other than float32 or ``max_bytes`` is not a positive integer.
    """
    import torch

    if expected is not None and any(dtype != torch.float32 for _, dtype in expected.values()):
        raise ConfigError("only float32 tensors can be expected")
    shapes = None if expected is None else {name: tuple(shape) for name, (shape, _) in expected.items()}
    arrays, metadata = decode_arrays(data, expected=shapes, max_bytes=max_bytes)
    return {name: torch.from_numpy(array) for name, array in arrays.items()}, metadata


def decode_arrays(
    data: bytes, *, expected: Shapes | None, max_bytes: int
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Check a safetensors file completely, then build its tensors as numpy arrays.

    The checks run in this order, and the first failure raises :class:`UpdateRejected` with its reason:
    ``OVERSIZE`` (more than ``max_bytes``); ``MALFORMED`` (too short, header length out of range, header not a
    JSON object of well-formed entries, byte ranges that do not tile the data exactly, a size that disagrees
    with the shape; a pickle, such as ``torch.save`` output, fails here without being unpickled);
    ``WRONG_DTYPE`` (any tensor not float32); ``WRONG_KEYS`` and ``WRONG_SHAPE`` (against ``expected``);
    ``NON_FINITE`` (a NaN or infinity anywhere).

    Parameters
    ----------
    data : bytes
        The whole file, already checked against its digest.
    expected : Mapping[str, tuple[int, ...]] or None
        The exact names and shapes the file must hold, all float32; ``None`` accepts any set of float32
        tensors.
    max_bytes : int
        The largest file accepted.

    Returns
    -------
    tuple[dict[str, numpy.ndarray], dict[str, str]]
        The tensors (float32 arrays, sorted by name, owning their memory) and the header metadata.

    Raises
    ------
    UpdateRejected
        As above.
    ConfigError
        If ``max_bytes`` is not a positive integer.
    """
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ConfigError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if len(data) > max_bytes:
        _reject(RejectReason.OVERSIZE, f"{len(data)} bytes exceeds the limit of {max_bytes}")
    data = bytes(data)
    data_start, metadata, entries = _parse_header(data)
    for name in sorted(entries):
        if entries[name][0] != _F32:
            _reject(RejectReason.WRONG_DTYPE, f"tensor {name!r} is {entries[name][0]}, only F32 is accepted")
    for name in sorted(entries):
        _, shape, begin, end = entries[name]
        if end - begin != 4 * math.prod(shape):
            _reject(
                RejectReason.MALFORMED,
                f"tensor {name!r} spans {end - begin} bytes, its shape {shape} needs {4 * math.prod(shape)}",
            )
    if expected is not None:
        missing, unexpected = set(expected) - set(entries), set(entries) - set(expected)
        if missing or unexpected:
            _reject(RejectReason.WRONG_KEYS, f"missing {_names(missing)}; unexpected {_names(unexpected)}")
        for name in sorted(entries):
            if entries[name][1] != tuple(expected[name]):
                _reject(
                    RejectReason.WRONG_SHAPE,
                    f"tensor {name!r} has shape {entries[name][1]}, expected {tuple(expected[name])}",
                )
    arrays: dict[str, np.ndarray] = {}
    for name in sorted(entries):
        _, shape, begin, end = entries[name]
        array = np.frombuffer(data, dtype="<f4", count=(end - begin) // 4, offset=data_start + begin)
        if not np.isfinite(array).all():
            _reject(RejectReason.NON_FINITE, f"tensor {name!r} holds NaN or infinite values")
        arrays[name] = array.reshape(shape)
    return {name: array.astype(np.float32, copy=True) for name, array in arrays.items()}, dict(metadata)
