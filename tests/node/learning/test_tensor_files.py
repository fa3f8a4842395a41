"""Tests for cotrain.learning.tensor_files: canonical encoding and a decoder that trusts nothing."""

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys

import pytest
import safetensors
import safetensors.torch
import torch
from cotrain.errors import ConfigError, IntegrityError
from cotrain.learning.state import layout
from cotrain.learning.tensor_files import (
    FORMAT_KEY,
    MODEL_FORMAT,
    UPDATE_FORMAT,
    RejectReason,
    UpdateRejected,
    decode_tensors,
    encode_model,
    encode_update,
)

LIMIT = 1 << 20
METADATA = {"task": "7", "round": "3", "contributor": "0x1111111111111111111111111111111111111111"}


def _delta() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "1.weight": torch.randn(10, 64, generator=generator),
        "1.bias": torch.randn(10, generator=generator),
    }


EXPECTED = layout(_delta())


def _raw_file(header: dict | bytes, payload: bytes = b"") -> bytes:
    """A safetensors file with an arbitrary header, for crafting bad ones."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + payload


def _reason(data: bytes, expected=EXPECTED, max_bytes: int = LIMIT) -> RejectReason:
    with pytest.raises(UpdateRejected) as info:
        decode_tensors(data, expected=expected, max_bytes=max_bytes)
    return info.value.reason


def test_update_round_trips_with_its_metadata():
    # Prepare
    delta = _delta()

    # Execute
    tensors, metadata = decode_tensors(encode_update(delta, METADATA), expected=EXPECTED, max_bytes=LIMIT)

    # Assert
    assert list(tensors) == ["1.bias", "1.weight"]
    assert all(torch.equal(tensors[k], delta[k]) for k in delta)
    assert metadata == {**METADATA, FORMAT_KEY: UPDATE_FORMAT}


def test_model_files_say_they_are_models():
    _, metadata = decode_tensors(encode_model(_delta(), {}), expected=None, max_bytes=LIMIT)

    assert metadata == {FORMAT_KEY: MODEL_FORMAT}


def test_encoding_is_canonical_whatever_the_insertion_order():
    delta = _delta()
    reordered = {key: delta[key].clone() for key in reversed(list(delta))}
    metadata_reordered = dict(reversed(list(METADATA.items())))

    assert encode_update(delta, METADATA) == encode_update(reordered, metadata_reordered)
    assert encode_update(delta, METADATA) != encode_model(delta, METADATA)


def test_encoding_is_the_same_in_another_process():
    # The safetensors library's own writer fails this: its metadata order changes from process to process.
    script = (
        "import hashlib, torch, sys; from cotrain.learning.tensor_files import encode_update; "
        "g = torch.Generator().manual_seed(0); "
        "d = {'1.weight': torch.randn(10, 64, generator=g), '1.bias': torch.randn(10, generator=g)}; "
        f"m = {dict(reversed(list(METADATA.items())))!r}; "
        "sys.stdout.write(hashlib.sha256(encode_update(d, m)).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    digest = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env
    ).stdout

    assert digest == hashlib.sha256(encode_update(_delta(), METADATA)).hexdigest()


def test_files_are_standard_safetensors_both_ways(tmp_path):
    # Prepare
    delta = _delta()
    ours = encode_update(delta, METADATA)
    path = tmp_path / "update.safetensors"
    path.write_bytes(ours)

    # Execute
    loaded = safetensors.torch.load(ours)
    with safetensors.safe_open(str(path), framework="pt") as handle:
        library_metadata = handle.metadata()
    theirs, _ = decode_tensors(safetensors.torch.save(delta), expected=EXPECTED, max_bytes=LIMIT)

    # Assert
    assert all(torch.equal(loaded[k], delta[k]) for k in delta)
    assert library_metadata == {**METADATA, FORMAT_KEY: UPDATE_FORMAT}
    assert all(torch.equal(theirs[k], delta[k]) for k in delta)


def test_header_is_padded_so_tensor_data_is_aligned():
    data = encode_update({"w": torch.ones(3)}, {"k": "v"})

    assert int.from_bytes(data[:8], "little") % 8 == 0


def test_decoded_tensors_own_their_memory():
    data = encode_update(_delta(), {})

    tensors, _ = decode_tensors(data, expected=EXPECTED, max_bytes=LIMIT)
    tensors["1.bias"] += 1

    assert decode_tensors(data, expected=EXPECTED, max_bytes=LIMIT)[0]["1.bias"][0] != tensors["1.bias"][0]


def test_oversize_is_rejected_before_parsing():
    data = encode_update(_delta(), {})

    assert _reason(data, max_bytes=len(data) - 1) is RejectReason.OVERSIZE
    assert _reason(b"\xff" * 100, max_bytes=99) is RejectReason.OVERSIZE


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x02\x00\x00", id="shorter-than-length-field"),
        pytest.param(encode_update(_delta(), {})[:-4], id="truncated-data"),
        pytest.param(encode_update(_delta(), {})[:60], id="truncated-header"),
        pytest.param(encode_update(_delta(), {}) + b"\x00" * 4, id="trailing-bytes"),
        pytest.param((10**9).to_bytes(8, "little") + b"{}", id="header-length-beyond-file"),
        pytest.param((1).to_bytes(8, "little") + b"{", id="header-length-too-small"),
        pytest.param(_raw_file(b"{not json}"), id="header-not-json"),
        pytest.param(_raw_file(b"[1, 2]"), id="header-not-an-object"),
        pytest.param(_raw_file(b'{"a": \xff}'), id="header-not-utf8"),
        pytest.param(_raw_file(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), id="header-nested-deep"),
        pytest.param(
            _raw_file(
                b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                b'"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
                b"\x00" * 4,
            ),
            id="duplicate-key",
        ),
        pytest.param(
            _raw_file({"w": {"dtype": "F32", "shape": [float("nan")], "data_offsets": [0, 4]}}, b"\0" * 4),
            id="nan-in-header",
        ),
        pytest.param(_raw_file({"__metadata__": {"a": 1}}), id="metadata-not-strings"),
        pytest.param(_raw_file({"w": {"dtype": "F32", "shape": [1]}}, b"\0" * 4), id="entry-missing-offsets"),
        pytest.param(
            _raw_file({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
            id="negative-dimension",
        ),
        pytest.param(
            _raw_file({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, b"\0" * 4),
            id="float-dimension",
        ),
        pytest.param(
            _raw_file({"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 0]}}, b"\0" * 8),
            id="offsets-reversed",
        ),
        pytest.param(
            _raw_file(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                },
                b"\0" * 12,
            ),
            id="offsets-overlap",
        ),
        pytest.param(
            _raw_file({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
            id="offsets-leave-gap",
        ),
        pytest.param(
            _raw_file({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8),
            id="size-disagrees-with-shape",
        ),
    ],
)
def test_malformed_files_are_rejected(data):
    assert _reason(data, expected=None) is RejectReason.MALFORMED


def test_pickles_are_rejected_as_malformed():
    delta = _delta()
    zipped, legacy = io.BytesIO(), io.BytesIO()
    torch.save(delta, zipped)
    torch.save(delta, legacy, _use_new_zipfile_serialization=False)

    for data in (zipped.getvalue(), legacy.getvalue(), pickle.dumps(delta), pickle.dumps(delta, protocol=2)):
        assert _reason(data) is RejectReason.MALFORMED


UNPICKLED: list[str] = []


def _record_unpickling() -> None:
    UNPICKLED.append("ran")


class _Exploit:
    def __reduce__(self):
        return (_record_unpickling, ())


def test_a_pickle_payload_is_never_executed():
    payload = pickle.dumps({"1.weight": _Exploit()})
    assert pickle.loads(payload) is not None and UNPICKLED == ["ran"]  # the payload does run when unpickled
    UNPICKLED.clear()

    assert _reason(payload) is RejectReason.MALFORMED
    assert UNPICKLED == []


def test_an_extra_tensor_is_wrong_keys():
    delta = {**_delta(), "extra": torch.zeros(1)}

    assert _reason(encode_update(delta, {})) is RejectReason.WRONG_KEYS


def test_a_missing_tensor_is_wrong_keys():
    delta = _delta()
    del delta["1.bias"]

    assert _reason(encode_update(delta, {})) is RejectReason.WRONG_KEYS


def test_a_reshaped_tensor_is_wrong_shape():
    delta = _delta()
    delta["1.weight"] = delta["1.weight"].reshape(64, 10)

    assert _reason(encode_update(delta, {})) is RejectReason.WRONG_SHAPE


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.int32])
def test_other_dtypes_are_wrong_dtype(dtype):
    delta = {key: tensor.to(dtype) for key, tensor in _delta().items()}

    assert _reason(safetensors.torch.save(delta)) is RejectReason.WRONG_DTYPE


def test_an_unknown_dtype_name_is_wrong_dtype():
    data = _raw_file({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"\0" * 16)

    assert _reason(data, expected=None) is RejectReason.WRONG_DTYPE


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_rejected(value):
    delta = _delta()
    delta["1.weight"][3, 7] = value

    assert _reason(safetensors.torch.save(delta)) is RejectReason.NON_FINITE


def test_rejection_is_an_integrity_error_that_carries_its_reason():
    error = UpdateRejected(RejectReason.WRONG_KEYS, "missing 'w'")

    assert isinstance(error, IntegrityError) and isinstance(error, ValueError)
    assert "wrong_keys" in str(error) and "missing 'w'" in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert copy.reason is RejectReason.WRONG_KEYS and copy.detail == "missing 'w'"


def test_reject_reasons_cover_the_validator_checks_too():
    assert {reason.value for reason in RejectReason} == {
        "oversize",
        "malformed",
        "wrong_keys",
        "wrong_shape",
        "wrong_dtype",
        "non_finite",
        "digest_mismatch",
        "missing",
    }


@pytest.mark.parametrize(
    ("tensors", "metadata", "error"),
    [
        ({"w": torch.zeros(2, dtype=torch.float64)}, {}, ConfigError),
        ({"w": torch.tensor([float("nan")])}, {}, IntegrityError),
        ({"": torch.zeros(1)}, {}, ConfigError),
        ({"__metadata__": torch.zeros(1)}, {}, ConfigError),
        ({"w": torch.zeros(1)}, {"round": 3}, ConfigError),
        ({"w": torch.zeros(1)}, {FORMAT_KEY: "mine"}, ConfigError),
    ],
)
def test_encoder_refuses_what_no_node_would_accept(tensors, metadata, error):
    with pytest.raises(error):
        encode_update(tensors, metadata)


def test_decoder_arguments_are_checked():
    data = encode_update(_delta(), {})

    with pytest.raises(ConfigError):
        decode_tensors(data, expected={"w": ((1,), torch.float64)}, max_bytes=LIMIT)
    with pytest.raises(ConfigError):
        decode_tensors(data, expected=EXPECTED, max_bytes=0)
