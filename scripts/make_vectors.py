"""Write the protocol test vectors: `python scripts/make_vectors.py [DIR]` (default tests/vectors).

The cases (inputs) are defined here; each output is computed by the handler in cotrain.protocol.vectors that
the vector names, from the package's own protocol code. Rerun it after a change that is meant to change bytes,
and commit the vectors with that change (PROTOCOL.md and the vectors move together).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from cotrain.learning.data import ArrayDataset
from cotrain.learning.dataset_digest import dataset_digest
from cotrain.learning.tensor_files import encode_update
from cotrain.privacy.sealed import reader_public, seal_with
from cotrain.protocol.round_outcome import model_file
from cotrain.protocol.update_binding import update_metadata
from cotrain.protocol.vectors import run_vector
from cotrain.storage.unixfs import compute_cid
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

SPECS = Path(__file__).resolve().parent.parent / "node" / "cotrain" / "protocol" / "specs"
VALIDATORS = [
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
]
TASK_ID = 7


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


def _json_safe(value: Any) -> Any:
    """Integers beyond 2**53 as decimal strings, so that readers in any language keep them exact."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53 - 1:
        return str(value)
    return value


def _address(tag: str) -> str:
    return "0x" + tag * 20


def _tensor_json(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {
        name: {"shape": list(t.shape), "values": [float(v) for v in t.reshape(-1).tolist()]}
        for name, t in sorted(tensors.items())
    }


# ------------------------------------------------------------------------------------------- the round


def _round_spec(**aggregation: Any) -> dict[str, Any]:
    return {
        "name": "vector-logistic",
        "model": {"name": "logistic", "params": {}},
        "data": {
            "input_shape": [4],
            "num_classes": 2,
            "builtin": None,
            "validation": {"split_seed": 0, "test_fraction": 0.25, "held_out_digest": _held_out_digest()},
        },
        "training": {"local_epochs": 1, "batch_size": 8, "lr": 0.1, "optimizer": "sgd", "seed": 1},
        "aggregation": {"rule": "fedavg", "params": {}, **aggregation},
        "rounds": 2,
        "phases": {"join": 60, "commit": 60, "reveal": 60, "validation": 60, "challenge": 60},
        "contributors": {"min": 1, "max": 16, "stake_wei": "100000000000000000"},
        "validators": {
            "addresses": VALIDATORS,
            "quorum": 2,
            "bond_wei": "1000000000000000000",
            "slash_wei": "250000000000000000",
        },
        "challenge_bond_wei": "500000000000000000",
        "arbiter": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",  # anvil account 1: not a validator
        "budget_wei": "2000007",
        "limits": {"max_update_bytes": 2048},
        "rewards": {"slash_rejected_wei": "50000000000000000"},
    }


GRU_LAYERS = [
    {"type": "embedding", "vocab": 16, "dim": 4},
    {"type": "gru", "hidden": 4},
    {"type": "sequence_pool", "mode": "last"},
    {"type": "dropout", "p": 0.1},
    {"type": "linear", "out": 2},
]
# (name, layers, input_shape, num_classes, description) of the declarative model_layout vectors.
DECLARATIVE_MODELS = [
    (
        "tabular_mlp",
        [
            {"type": "linear", "out": 16},
            {"type": "layer_norm"},
            {"type": "relu"},
            {"type": "dropout", "p": 0.1},
            {"type": "linear", "out": 2},
        ],
        [30],
        2,
        "a tabular MLP with layer norm",
    ),
    (
        "next_word_lstm",
        [
            {"type": "embedding", "vocab": 1000, "dim": 32},
            {"type": "lstm", "hidden": 64},
            {"type": "sequence_pool", "mode": "last"},
            {"type": "linear", "out": 1000},
        ],
        [12],
        1000,
        "a next-word model: embedding, LSTM, last step, linear",
    ),
    (
        "next_word_transformer",
        [
            {"type": "embedding", "vocab": 500, "dim": 32},
            {"type": "position"},
            {"type": "transformer", "heads": 4, "ff": 64, "causal": True},
            {"type": "layer_norm"},
            {"type": "sequence_pool", "mode": "mean"},
            {"type": "linear", "out": 500, "bias": False},
        ],
        [16],
        500,
        "a next-word model: embedding, positions, a causal transformer block",
    ),
    (
        "sensor_conv1d",
        [
            {"type": "conv1d", "out": 8, "kernel": 5},
            {"type": "group_norm", "groups": 4},
            {"type": "tanh"},
            {"type": "max_pool1d", "kernel": 2},
            {"type": "flatten"},
            {"type": "linear", "out": 4},
        ],
        [3, 32],
        4,
        "a 1-d conv net with group norm over 3 channels of 32 readings",
    ),
]

BASE = {
    "1.weight": torch.tensor([[0.5, -0.25, 0.125, 0.0], [-0.5, 0.25, 0.0, 0.75]]),
    "1.bias": torch.tensor([0.0625, -0.0625]),
}
HELD_OUT = {
    "features": [
        [1.0, 0.5, -0.5, 0.0],
        [-1.0, 0.25, 0.5, 1.0],
        [0.5, -1.5, 0.0, 0.25],
        [2.0, 0.0, -1.0, -0.5],
        [-0.5, 1.0, 1.5, 0.75],
        [0.0, -0.25, 0.25, -1.0],
    ],
    "labels": [0, 1, 0, 0, 1, 1],
}


def _held_out_digest() -> str:
    """The canonical digest of HELD_OUT, which every round vector's spec pins (PROTOCOL.md section 9.1)."""
    features = np.asarray(HELD_OUT["features"], dtype=np.float32)
    labels = np.asarray(HELD_OUT["labels"], dtype=np.int64)
    return _hex(dataset_digest(ArrayDataset(features, labels, ("0", "1"))))


def _delta(vector: np.ndarray) -> dict[str, torch.Tensor]:
    """A flat 10-value delta (sorted names: ``1.bias`` then ``1.weight``) as float32 tensors."""
    flat = torch.from_numpy(np.asarray(vector, dtype=np.float32))
    return {"1.bias": flat[:2].clone(), "1.weight": flat[2:].reshape(2, 4).clone()}


def _round(
    spec: dict[str, Any], plan: list[dict[str, Any]], description: str, round_budget: int = 1000003
) -> dict[str, Any]:
    """A round's input: each plan entry is an update (``vector`` or ``raw`` bytes) and how it is revealed."""
    base_file = model_file(0, -1, BASE)  # as roles/owner.py writes it
    base = {"cid": compute_cid(base_file), "digest": _hex(hashlib.sha256(base_file).digest())}
    spec = {**spec, "initial_model": base}
    files = {base["cid"]: _hex(base_file)}
    updates = []
    for order, entry in enumerate(plan):
        who = _address(entry["tag"])
        samples = entry["samples"]
        if "raw" in entry:
            data = entry["raw"]
        else:
            binding = update_metadata(
                TASK_ID,
                entry.get("bound_round", 0),
                who,
                bytes.fromhex(base["digest"][2:]),
                entry.get("bound_samples", samples),
            )
            if "epsilon" in entry:
                binding = {**binding, "epsilon": entry["epsilon"]}
            data = encode_update(_delta(entry["vector"]), binding)
        cid = compute_cid(data)
        digest = hashlib.sha256(data).digest()
        if entry.get("wrong_digest"):
            digest = hashlib.sha256(b"something else").digest()
        if not entry.get("withheld"):
            files[cid] = _hex(data)
        updates.append(
            {
                "contributor": who,
                "cid": cid,
                "digest": _hex(digest),
                "samples": str(samples),
                "commit_order": entry.get("commit_order", order),
                "note": entry["note"],
            }
        )
    return {
        "spec": spec,
        "task_id": str(TASK_ID),
        "round": 0,
        "round_budget": str(round_budget),
        "base": base,
        "updates": updates,
        "files": files,
        "description": description,
    }


def _round_cases() -> list[tuple[str, str, dict[str, Any]]]:
    rng = np.random.default_rng(2026)
    direction = rng.standard_normal(10)
    direction /= np.linalg.norm(direction)

    def honest(norm: float, seed: int) -> np.ndarray:
        noise = np.random.default_rng(seed).standard_normal(10)
        v = direction + 0.35 * noise / np.linalg.norm(noise)
        return norm * v / np.linalg.norm(v)

    a = honest(0.1, 1)
    jitter = np.random.default_rng(15).standard_normal(10)
    screened = [
        {"tag": "a1", "samples": 100, "vector": a, "note": "honest"},
        {"tag": "b2", "samples": 50, "vector": honest(0.12, 2), "note": "honest"},
        {"tag": "c3", "samples": 80, "vector": honest(0.09, 3), "note": "honest"},
        {"tag": "d4", "samples": 60, "vector": honest(0.3, 4), "note": "accepted, clipped to 2 x m'"},
        {"tag": "e5", "samples": 40, "vector": np.zeros(10), "note": "free_rider (zero update), slashed"},
        {
            "tag": "06",
            "samples": 100,
            "vector": a * 1.01,
            "note": "duplicate of a1 (committed later), slashed",
        },
        {"tag": "17", "samples": 70, "vector": honest(5.0, 7), "note": "outlier (norm > 10 x m'), slashed"},
        {
            "tag": "28",
            "samples": 90,
            "vector": -honest(0.11, 8),
            "note": "low_score (sign flipped), not slashed",
        },
        {
            "tag": "39",
            "samples": 30,
            "vector": honest(0.1, 9),
            "bound_round": 1,
            "note": "wrong_binding, slashed",
        },
        {
            "tag": "4a",
            "samples": 30,
            "vector": honest(0.1, 10),
            "bound_samples": 31,
            "note": "samples_mismatch, slashed",
        },
        {"tag": "5b", "samples": 20, "raw": b"not a safetensors file", "note": "malformed, slashed"},
        {
            "tag": "6c",
            "samples": 10,
            "vector": honest(0.1, 12),
            "withheld": True,
            "note": "unavailable, not slashed",
        },
        {
            "tag": "7d",
            "samples": 10,
            "vector": honest(0.1, 13),
            "wrong_digest": True,
            "note": "digest_mismatch, slashed",
        },
        {"tag": "8e", "samples": 10, "raw": b"\x00" * 3000, "note": "too_large (3000 > 2048 bytes), slashed"},
        {
            "tag": "9f",
            "samples": 10,
            "vector": np.concatenate([honest(0.1, 14)[:9], [128.0]]),
            "note": "out_of_range (128.0 does not fit q32.24), slashed",
        },
        {
            "tag": "ab",
            "samples": 80,
            "vector": honest(0.09, 3) + 0.2 * 0.09 * jitter / np.linalg.norm(jitter),
            "note": "redundant: c3 plus 20% noise, past duplicate_distance, within 0.5 x spread; not slashed",
        },
        {
            "tag": "bc",
            "samples": 10**6,
            "vector": (a + honest(0.12, 2) + honest(0.09, 3)) / 3,
            "note": "the mean of a1, b2 and c3 claiming 10**6 samples: low novelty, weight capped",
        },
    ]
    # The duplicate commits after a1 although its address sorts first.
    screened[5]["commit_order"] = 20
    plain = [
        {"tag": "a1", "samples": 100, "vector": honest(0.1, 21), "note": "honest"},
        {"tag": "b2", "samples": 50, "vector": honest(0.2, 22), "note": "honest"},
        {"tag": "c3", "samples": 7, "vector": honest(3.0, 23), "note": "large, but nothing screens it"},
        {"tag": "d4", "samples": 20, "raw": b"\x00" * 16, "note": "malformed, slashed"},
    ]
    rejected = [
        {"tag": "a1", "samples": 5, "raw": b"{}", "note": "malformed, slashed"},
        {"tag": "b2", "samples": 5, "vector": honest(0.1, 31), "withheld": True, "note": "unavailable"},
    ]
    return [
        (
            "screened",
            "fedavg with the default screening: every verdict and reason code",
            _round(_round_spec(), screened, "fedavg + screening"),
        ),
        (
            "unscreened_fedavg",
            "fedavg without screening (the streaming sample-weighted mean)",
            _round(_round_spec(screening={"enabled": False}), plain, "fedavg, no screening"),
        ),
        (
            "screened_median",
            "median with the default screening",
            _round(_round_spec(rule="median"), screened[:8], "median + screening"),
        ),
        (
            "screened_trimmed_mean",
            "trimmed mean (trim_fraction 0.25) with the default screening",
            _round(
                _round_spec(rule="trimmed_mean", params={"trim_fraction": 0.25}), screened[:8], "trimmed mean"
            ),
        ),
        (
            "screened_multi_krum",
            "multi-Krum with the default screening",
            _round(_round_spec(rule="multi_krum"), screened[:8], "multi-Krum + screening"),
        ),
        (
            "screened_centered_clip",
            "centered clipping (radius 0.5 x median norm, 2 iterations) with the default screening",
            _round(
                _round_spec(rule="centered_clip", params={"radius_ratio": 0.5, "iterations": 2}),
                screened[:8],
                "centered clip + screening",
            ),
        ),
        (
            "private_budget",
            "a task with privacy.dp (max_epsilon 2.5): each update's declared epsilon, and over_budget",
            _round(
                {
                    **_round_spec(),
                    "privacy": {
                        "dp": {
                            "mechanism": "user",
                            "noise_multiplier": 1.5,
                            "clip_norm": 0.5,
                            "delta": 1e-5,
                            "max_epsilon": 2.5,
                        }
                    },
                },
                [
                    {**screened[0], "epsilon": "1.25", "note": "declares 1.25"},
                    {**screened[1], "epsilon": "2.5", "note": "declares the maximum itself"},
                    {**screened[2], "epsilon": "2.500001", "note": "over_budget by a millionth, slashed"},
                    {**screened[3], "note": "declares nothing: over_budget, slashed"},
                    {**screened[7], "epsilon": "1e-3", "note": "not a plain decimal: over_budget, slashed"},
                ],
                "fedavg + screening + DP declarations",
            ),
        ),
        (
            "nothing_accepted",
            "no update accepted: the model stays the base, nobody is paid",
            _round(_round_spec(), rejected, "nothing accepted"),
        ),
    ]


# -------------------------------------------------------------------------------------- the arithmetic


def _arithmetic_cases() -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """Quantization, every rule on small integer vectors, and the cosine score (PROTOCOL.md section 11)."""
    q = 2**24
    result: list[tuple[str, str, str, str, dict[str, Any]]] = [
        (
            "arithmetic",
            "quantize",
            "quantize",
            "float32 to q32.24: ties to even, -0.0 to 0, the extremes that fit",
            {
                "number_format": "q32.24",
                "values": [
                    0.0,
                    -0.0,
                    1.0,
                    -1.0,
                    0.10000000149011612,
                    2.0**-25,
                    3 * 2.0**-25,
                    -(2.0**-25),
                    127.99999237060547,
                    -128.0,
                ],
            },
        ),
        (
            "arithmetic",
            "quantize_overflow",
            "quantize",
            "128.0 and -128.5 do not fit q32.24: the update is out_of_range",
            {"number_format": "q32.24", "values": [0.5, 128.0, -128.5]},
        ),
        (
            "arithmetic",
            "cosine",
            "cosine",
            "cosine in millionths: 1/sqrt(2) rounds to 707107",
            {"a": [q, 0], "b": [q, q]},
        ),
        (
            "arithmetic",
            "cosine_opposite",
            "cosine",
            "opposite vectors: -1000000",
            {"a": [3, -4, 12], "b": [-6, 8, -24]},
        ),
        (
            "arithmetic",
            "cosine_zero",
            "cosine",
            "a zero vector scores 0",
            {"a": [0, 0], "b": [5, 7]},
        ),
    ]
    result.append(
        (
            "arithmetic",
            "scores",
            "scores",
            "marginal-value scores of five vectors: the fifth is the mean of the first three, the fourth "
            "points away and is peeled off",
            {
                "vectors": [
                    [40, 10, -20, 30, 5],
                    [35, -5, -10, 20, 15],
                    [50, 20, -30, 25, -5],
                    [-45, -10, 25, -30, -10],
                    [42, 8, -20, 25, 5],
                ],
                "median_norm": 55,
            },
        )
    )
    result.append(
        (
            "arithmetic",
            "scores_extremes",
            "scores",
            "values at +-2**31, a zero vector and a tie of two equal vectors",
            {
                "vectors": [[2**31, -(2**31), 7], [2**31, -(2**31), 7], [0, 0, 0], [-(2**31), 2**31, 1]],
                "median_norm": 2**31,
            },
        )
    )
    vectors = [[3, -7, 2**31, 5], [1, -7, -(2**31), 6], [2, 8, 0, -5], [-9, 0, 1, 5], [4, 1, 3, 7]]
    samples = ["3", "1", "18446744073709551615", "2", "5"]
    for rule, params in [
        ("fedavg", {}),
        ("median", {}),
        ("trimmed_mean", {"trim_fraction": 0.2}),
        ("krum", {"byzantine_fraction": 0.2}),
        ("multi_krum", {"byzantine_fraction": 0.2}),
        ("centered_clip", {"radius_ratio": 0.5, "iterations": 3}),
    ]:
        inp = {"rule": rule, "params": params, "vectors": vectors, "samples": samples}
        result.append(("arithmetic", f"rule_{rule}", "rule", f"{rule} on five integer vectors", inp))
    result.append(
        (
            "arithmetic",
            "rule_median_even",
            "rule",
            "median of four: the middle pair's mean, ties to even (5/2 -> 2, -5/2 -> -2, 7/2 -> 4)",
            {
                "rule": "median",
                "params": {},
                "vectors": [[1, -1, 3], [4, -4, 4], [0, -3, 5], [9, 2, -8]],
                "samples": ["1"] * 4,
            },
        )
    )
    return result


# ------------------------------------------------------------------------------------------- the cases


def _sealed_cases() -> list[tuple[str, str, dict[str, Any]]]:
    """Sealed files from fixed keys, seed and nonces (``seal_with``; a node draws them fresh), each opened by
    one reader's key."""
    keys = [X25519PrivateKey.from_private_bytes(bytes([i]) * 32) for i in (1, 2, 3)]
    readers = [reader_public(key) for key in keys[:2]]
    base_digest = hashlib.sha256(b"base model").digest()
    binding = update_metadata(TASK_ID, 0, _address("a1"), base_digest, 100)
    plaintext = encode_update(_delta(np.arange(10) / 16), binding)
    counter = iter(range(1, 1000))

    def nonces(length: int) -> bytes:
        return next(counter).to_bytes(length, "big")

    sealed = seal_with(plaintext, readers, binding, bytes(range(32)), nonces)
    expected = {**binding, "plaintext_digest": _hex(hashlib.sha256(plaintext).digest())}
    tampered = bytearray(sealed)
    tampered[-1] ^= 0x01

    def case(file: bytes, key: int, **changes: str) -> dict[str, Any]:
        return {
            "file": _hex(file),
            "reader_private_key": _hex(keys[key].private_bytes_raw()),
            "readers": [_hex(r) for r in readers],
            "expected_binding": {**expected, **changes},
            "max_bytes": str(len(sealed) + 1),
        }

    return [
        ("opens", "the second of two readers opens the file", case(sealed, 1)),
        ("not_a_reader", "a key the file was not sealed to: not_a_reader", case(sealed, 2)),
        ("tampered", "the last ciphertext byte flipped: undecryptable", case(bytes(tampered), 0)),
        (
            "digest_mismatch",
            "the revealed digest is not the plaintext's: digest_mismatch",
            case(sealed, 1, plaintext_digest=_hex(hashlib.sha256(b"other").digest())),
        ),
        ("wrong_binding", "revealed for round 1, bound to 0: wrong_binding", case(sealed, 0, round="1")),
        ("not_sealed", "the plain update file: not_sealed", case(plaintext, 0)),
    ]


def cases() -> list[tuple[str, str, str, str, dict[str, Any]]]:
    """``(group, name, handler, description, input)`` for every vector."""
    result: list[tuple[str, str, str, str, dict[str, Any]]] = []
    for path in sorted(SPECS.glob("*.yaml")):
        spec = _json_safe(yaml.safe_load(path.read_text(encoding="utf-8")))
        result.append(("spec", path.stem, "spec", f"the built-in spec {path.name}", {"spec": spec}))
        result.append(
            ("builtin_split", path.stem, "builtin_split", f"held-out split of {path.name}", {"spec": spec})
        )
    result.append(
        (
            "dataset_digest",
            "two_by_two",
            "dataset_digest",
            "three examples of 2 x 2 features (one -0.0, written as +0.0), two classes",
            {
                "shape": [3, 2, 2],
                "features": [1.5, -0.0, 2.25, -3.0, 0.0, 0.5, 0.0009765625, 7.0, -1.0, 1.0, 65504.0, -0.125],
                "labels": [1, 0, 1],
                "classes": ["no", "yes"],
            },
        )
    )
    trimmed = _round_spec(rule="trimmed_mean", screening={"min_score": "-0.1"})
    result.append(
        (
            "spec",
            "defaults_filled",
            "spec",
            "rule parameters and screening defaults written out",
            {"spec": trimmed},
        )
    )
    columns = _round_spec()
    columns["data"] = {
        "input_shape": [4],
        "num_classes": 2,
        "columns": {
            "label": {"name": "diagnosis", "classes": ["malignant", "benign"]},
            "features": [
                {"name": "age", "type": "numeric", "mean": 52.5, "std": 11.25, "min": 0, "max": 120},
                {"name": "radius", "type": "numeric", "mean": "1.4e1", "std": 3.5, "impute": 14},
                {"name": "site", "type": "categorical", "categories": ["left", "right"]},
            ],
        },
        "validation": {"held_out_digest": _held_out_digest()},
    }
    result.append(
        (
            "spec",
            "columns",
            "spec",
            "a column contract for contributors' own CSV files (data.columns), defaults written out",
            {"spec": columns},
        )
    )
    declarative = _round_spec()
    declarative["model"] = {"name": "layers", "layers": GRU_LAYERS}
    declarative["limits"]["max_parameters"] = 1000
    result.append(
        (
            "spec",
            "declarative_model",
            "spec",
            "a model given by its layers (defaults written out) and a parameter bound",
            {"spec": declarative},
        )
    )
    for name, model, shape, classes in [
        ("logistic", {"name": "logistic", "params": {}}, [30], 2),
        ("mlp", {"name": "mlp", "params": {"hidden": [64, 32]}}, [64], 10),
        ("cnn", {"name": "cnn", "params": {"channels": [16, 32]}}, [1, 8, 8], 10),
    ]:
        inp = {"model": model, "input_shape": shape, "num_classes": classes}
        result.append(("model_layout", name, "model_layout", f"tensor names of the {name} model", inp))
    for name, layers, shape, classes, description in DECLARATIVE_MODELS:
        inp = {"model": {"name": "layers", "layers": layers}, "input_shape": shape, "num_classes": classes}
        result.append(("model_layout", name, "model_layout", f"tensor names of {description}", inp))

    tensors = _tensor_json(
        {"b": torch.tensor([1.5, -0.0, 3.0e-8]), "a.weight": torch.tensor([[0.1, 2.0], [-7.25, 65504.0]])}
    )
    binding = {
        "task_id": "7",
        "round": "3",
        "contributor": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "base_digest": _hex(hashlib.sha256(b"base").digest()),
        "samples": "120",
    }
    result.append(
        ("files", "update", "update_file", "an update file", {"tensors": tensors, "binding": binding})
    )
    result.append(
        (
            "files",
            "model",
            "model_file",
            "a model file",
            {"tensors": tensors, "task_id": "7", "after_round": "3"},
        )
    )
    result.append(
        (
            "files",
            "initial_model",
            "model_file",
            "an initial model (round -1)",
            {"tensors": _tensor_json(BASE), "task_id": "0", "after_round": "-1"},
        )
    )
    for name, who, task, round_ in [("one", VALIDATORS[0], "1", "0"), ("two", _address("ab"), "7", "12")]:
        inp = {
            "contributor": who,
            "task_id": task,
            "round": round_,
            "update_digest": _hex(hashlib.sha256(name.encode()).digest()),
            "salt": _hex(hashlib.sha256(b"salt " + name.encode()).digest()),
        }
        result.append(("commitment", name, "commitment", "an update commitment", inp))
    for size in [0, 1, 1000, 262144, 262145, 600000, 174 * 262144 + 1]:
        result.append(("cid", f"size_{size}", "cid", f"{size} bytes, byte i = i mod 251", {"size": size}))

    people = [_address(tag) for tag in ("c3", "a1", "b2")]
    result.append(
        (
            "rewards",
            "equal_weights",
            "rewards",
            "10 wei over three equal weights",
            {"budget_wei": "10", "weights": [[p, "1"] for p in people]},
        )
    )
    result.append(
        (
            "rewards",
            "tie_break",
            "rewards",
            "equal remainders go to the lower address first",
            {"budget_wei": "5", "weights": [[p, "1000000"] for p in people]},
        )
    )
    result.append(
        (
            "rewards",
            "largest_remainder",
            "rewards",
            "weights samples x score, leftover wei by remainder",
            {
                "budget_wei": "1000003",
                "weights": [[people[0], "93412000"], [people[1], "51234500"], [people[2], "80000000"]],
            },
        )
    )
    result.append(
        (
            "rewards",
            "dust",
            "rewards",
            "a share below one wei is left out",
            {"budget_wei": "3", "weights": [[people[0], "1"], [people[1], "1000"], [people[2], "0"]]},
        )
    )
    result.append(
        (
            "rewards",
            "single",
            "rewards",
            "one leaf: the root is the leaf hash",
            {"budget_wei": "1000000000000000000", "weights": [[VALIDATORS[1], "7"]]},
        )
    )
    result.append(
        (
            "slash",
            "three",
            "slash",
            "three rejected contributors",
            {"rejected": people, "amount_wei": "50000000000000000"},
        )
    )
    result.append(
        ("slash", "none", "slash", "a zero slash: the zero root", {"rejected": people, "amount_wei": "0"})
    )
    result.append(
        (
            "record",
            "fixed_point",
            "fixed",
            "float64 to 6-place decimal strings (half to even, exact binary)",
            {
                "values": [
                    0.0,
                    -0.0,
                    1.0,
                    0.1,
                    -0.1,
                    0.0000005,
                    0.0000015,
                    0.0000025,
                    1e-7,
                    -1e-7,
                    0.9999995,
                    2.5e-6,
                    123456.1234565,
                    0.123456789,
                ]
            },
        )
    )
    result.append(
        (
            "proposal",
            "hash",
            "proposal_hash",
            "keccak256(abi.encode(the five compared fields))",
            {
                "model_digest": _hex(hashlib.sha256(b"model").digest()),
                "record_digest": _hex(hashlib.sha256(b"record").digest()),
                "rewards_root": _hex(hashlib.sha256(b"rewards").digest()),
                "slash_root": "0x" + "00" * 32,
                "reward_total": "1000003",
            },
        )
    )
    result.extend(_arithmetic_cases())
    for name, description, inp in _round_cases():
        inp = dict(inp)
        inp.pop("description")
        result.append(("round", name, "round", description, inp))
    for name, description, inp in _sealed_cases():
        result.append(("sealed", name, "sealed", description, inp))
    return result


def main(directory: Path) -> None:
    for group, name, handler, description, inp in cases():
        vector: dict[str, Any] = {"handler": handler, "description": description, "input": inp}
        vector["output"] = run_vector(vector)
        path = directory / group / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(vector, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/vectors"))
