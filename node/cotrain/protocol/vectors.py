"""The test vectors of PROTOCOL.md: what each kind of vector means (its handler) and the cases themselves.

A vector is one JSON file ``{"handler": ..., "description": ..., "input": {...}, "output": {...}}``. The
handler named there is a pure function from ``input`` to ``output`` built from this package's own protocol
code, so ``run_vector(v) == v["output"]`` checks that the code still does what the vector says, and another
implementation checks itself by computing the same outputs from the same inputs (tests/vectors/README.md).

JSON conventions: byte strings are ``0x`` lower-case hex, integers that may pass 2**53 (wei, ids, sample
counts) are decimal strings, tensor values are JSON numbers that are exact float32 values.

``scripts/make_vectors.py`` holds the cases and rewrites tests/vectors/ with these handlers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import eth_abi
import numpy as np
from eth_utils import keccak

from cotrain.consensus.exact import cosine_micro
from cotrain.consensus.fixed_point import NUMBER_FORMATS, FixedPointOverflow, quantize
from cotrain.errors import IntegrityError
from cotrain.learning.data import ArrayDataset, load_builtin, split_train_test
from cotrain.learning.dataset_digest import dataset_bytes, dataset_digest
from cotrain.learning.layers import plan_model, tensor_layout
from cotrain.learning.rules import get_rule
from cotrain.learning.tensor_files import RejectReason, UpdateRejected, decode_arrays, encode_update
from cotrain.protocol.commitment import update_commitment
from cotrain.protocol.merkle import allocation_tree
from cotrain.protocol.rewards import allocate_rewards, rewards_root, slash_allocations
from cotrain.protocol.round_judge import RevealedUpdate, judge, model_file
from cotrain.protocol.round_record import format_fixed, record_bytes
from cotrain.protocol.screening import leave_one_out_spread, marginal_scores, peeled_scores
from cotrain.protocol.task_spec import (
    FileRef,
    ModelSpec,
    spec_bytes,
    spec_digest,
    task_params,
    validate_spec,
)
from cotrain.protocol.update_binding import update_metadata
from cotrain.storage.unixfs import compute_cid

Json = dict[str, Any]
MODEL_MAX_BYTES = 1 << 30


def _hex(data: bytes) -> str:
    return "0x" + bytes(data).hex()


def _bytes(text: str) -> bytes:
    if not text.startswith("0x"):
        raise ValueError(f"expected 0x-prefixed hex, got {text[:20]!r}")
    return bytes.fromhex(text[2:])


def _float32(values: Any, what: str) -> np.ndarray:
    """JSON numbers to a float32 array, refusing any that is not an exact float32 value."""
    array = np.asarray(values, dtype=np.float64)
    single = array.astype(np.float32)
    if not np.array_equal(single.astype(np.float64), array):
        raise ValueError(f"{what} holds values that are not exact float32 numbers")
    return single


def _tensors(spec: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """``{name: {"shape": [...], "values": [...]}}`` to float32 arrays (values must be float32-exact)."""
    return {
        name: _float32(entry["values"], f"tensor {name!r}").reshape(entry["shape"])
        for name, entry in spec.items()
    }


def _int_vectors(vectors: Any) -> list[np.ndarray]:
    """Lists of JSON integers (or decimal strings) to int64 vectors."""
    return [np.array([int(value) for value in vector], dtype=np.int64) for vector in vectors]


def _file_output(data: bytes) -> Json:
    return {"file": _hex(data), "sha256": _hex(hashlib.sha256(data).digest()), "cid": compute_cid(data)}


def _pattern(size: int) -> bytes:
    """The content of a CID vector: byte ``i`` is ``i mod 251``."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


# ------------------------------------------------------------------------------------------- handlers


def spec_handler(inp: Json) -> Json:
    """A spec as its author wrote it (decoded YAML/JSON) to its canonical bytes, digest and ``TaskParams``."""
    spec = validate_spec(inp["spec"])
    digest = spec_digest(spec)
    params = {
        key: _hex(value) if isinstance(value, bytes) else str(value) if isinstance(value, int) else value
        for key, value in task_params(spec, digest).items()
    }
    return {
        "spec_bytes": spec_bytes(spec).decode("utf-8"),
        "spec_digest": _hex(digest),
        "task_params": params,
    }


def model_layout_handler(inp: Json) -> Json:
    """A spec's model (a preset or its layers) as tensor names and shapes, in file (sorted-name) order.

    Computed from the layer list alone, without torch; tests/node/learning checks that the torch model has
    exactly this ``state_dict`` layout.
    """
    model = ModelSpec.model_validate(inp["model"])
    plans = plan_model(model.name, model.params, model.layers, inp["input_shape"], inp["num_classes"])
    return {"tensors": [[name, list(shape)] for name, shape in tensor_layout(plans)]}


def update_file_handler(inp: Json) -> Json:
    """Update tensors and their binding to the update file's metadata, bytes, sha256 and CID."""
    binding = inp["binding"]
    metadata = update_metadata(
        int(binding["task_id"]),
        int(binding["round"]),
        binding["contributor"],
        _bytes(binding["base_digest"]),
        int(binding["samples"]),
    )
    return {"metadata": metadata, **_file_output(encode_update(_tensors(inp["tensors"]), metadata))}


def model_file_handler(inp: Json) -> Json:
    """Model weights, task id and round to the model file's bytes, sha256 and CID."""
    data = model_file(int(inp["task_id"]), int(inp["after_round"]), _tensors(inp["tensors"]))
    return _file_output(data)


def commitment_handler(inp: Json) -> Json:
    """The commit-reveal commitment of an update."""
    value = update_commitment(
        inp["contributor"],
        int(inp["task_id"]),
        int(inp["round"]),
        _bytes(inp["update_digest"]),
        _bytes(inp["salt"]),
    )
    return {"commitment": _hex(value)}


def cid_handler(inp: Json) -> Json:
    """The CIDv1 of ``size`` bytes whose byte ``i`` is ``i mod 251`` (and their sha256, to check the data)."""
    data = _pattern(int(inp["size"]))
    return {"sha256": _hex(hashlib.sha256(data).digest()), "cid": compute_cid(data)}


def _allocations_output(allocations: list[Any]) -> Json:
    if not allocations:
        return {"allocations": [], "leaves": [], "root": _hex(rewards_root([]))}
    tree = allocation_tree(allocations)
    return {
        "allocations": [[a.account.lower(), str(a.amount)] for a in allocations],
        "leaves": [
            {"index": i, "leaf_hash": _hex(tree.leaf(i)), "proof": [_hex(p) for p in tree.proof(i)]}
            for i in range(len(allocations))
        ],
        "root": _hex(rewards_root(allocations)),
    }


def rewards_handler(inp: Json) -> Json:
    """A round budget split over integer weights (largest remainder), its leaves, proofs and root."""
    weights = [(account, int(weight)) for account, weight in inp["weights"]]
    return _allocations_output(allocate_rewards(int(inp["budget_wei"]), weights))


def slash_handler(inp: Json) -> Json:
    """One slash per rejected contributor, its leaves, proofs and root."""
    return _allocations_output(slash_allocations(inp["rejected"], int(inp["amount_wei"])))


def fixed_handler(inp: Json) -> Json:
    """float64 values to the record's 6-place decimal strings."""
    return {"strings": [format_fixed(float(value)) for value in inp["values"]]}


def quantize_handler(inp: Json) -> Json:
    """float32 values to the fixed-point integers of a number format, or the count that overflows."""
    width_bits, scale_bits = NUMBER_FORMATS[inp["number_format"]]
    try:
        values = quantize(_float32(inp["values"], "values"), scale_bits, width_bits)
    except FixedPointOverflow as overflow:
        return {"overflow": overflow.count}
    return {"integers": [int(v) for v in values]}


def rule_handler(inp: Json) -> Json:
    """An aggregation rule on fixed-point integer vectors: the aggregate and each share in millionths."""
    result = get_rule(inp["rule"]).run(
        _int_vectors(inp["vectors"]), [int(s) for s in inp["samples"]], inp["params"]
    )
    return {"aggregate": [int(v) for v in result.vector], "shares": result.shares}


def cosine_handler(inp: Json) -> Json:
    """The score arithmetic: the cosine similarity of two integer vectors in millionths."""
    a, b = _int_vectors([inp["a"], inp["b"]])
    return {"micro": cosine_micro(a, b)}


def scores_handler(inp: Json) -> Json:
    """The marginal-value score arithmetic on integer vectors (PROTOCOL.md section 11.4): each vector's
    leave-one-out median, squared distance, the squared spread, the scores, and the scores after peeling."""
    vectors = _int_vectors(inp["vectors"])
    median_norm = int(inp["median_norm"])
    references, distances, spread = leave_one_out_spread(vectors)
    return {
        "references": [[int(v) for v in reference] for reference in references],
        "distances": [str(d) for d in distances],
        "spread": str(spread),
        "scores": marginal_scores(vectors, median_norm),
        "peeled_scores": peeled_scores(vectors, median_norm, lambda score: score >= 0),
    }


def proposal_hash(
    model_digest: bytes, record_digest: bytes, rewards_root: bytes, slash_root: bytes, reward_total: int
) -> bytes:
    """The contract's ``proposalHash`` (as ``chain.market.Proposal.proposal_hash``; protocol does not import
    chain, and the vectors' runner checks that the two agree)."""
    return keccak(
        eth_abi.encode(
            ["bytes32", "bytes32", "bytes32", "bytes32", "uint256"],
            [model_digest, record_digest, rewards_root, slash_root, reward_total],
        )
    )


def proposal_hash_handler(inp: Json) -> Json:
    """The on-chain ``proposalHash`` of a proposal's five compared fields."""
    value = proposal_hash(
        _bytes(inp["model_digest"]),
        _bytes(inp["record_digest"]),
        _bytes(inp["rewards_root"]),
        _bytes(inp["slash_root"]),
        int(inp["reward_total"]),
    )
    return {"proposal_hash": _hex(value)}


def builtin_split_handler(inp: Json) -> Json:
    """The held-out rows of a spec's built-in data set, by index into the bundled data set's row order.

    ``held_out_digest`` is the held-out set's canonical digest (PROTOCOL.md section 9.1), the value a spec's
    ``data.validation.held_out_digest`` may pin; the features are standardized with numpy's ``mean``/``std``,
    which PROTOCOL.md lists as machine-dependent today.
    """
    from cotrain.protocol.task_model import builtin_split  # torch: only this handler needs it

    spec = validate_spec(inp["spec"])
    assert spec.data.builtin is not None
    data = load_builtin(spec.data.builtin, flat=len(spec.data.input_shape) == 1)
    rows = np.arange(len(data), dtype=np.float32).reshape(-1, 1)
    split = spec.data.validation
    assert split.test_fraction is not None and split.split_seed is not None
    _, test = split_train_test(
        ArrayDataset(rows, data.labels, data.classes),
        test_fraction=split.test_fraction,
        seed=split.split_seed,
    )
    return {
        "rows": len(data),
        "held_out_indices": [int(i) for i in test.features[:, 0]],
        "held_out_digest": _hex(dataset_digest(builtin_split(spec)[1])),
    }


def dataset_digest_handler(inp: Json) -> Json:
    """A data set's canonical bytes and digest (PROTOCOL.md section 9.1) from its features and labels."""
    features = np.asarray(inp["features"], dtype=np.float32).reshape(inp["shape"])
    dataset = ArrayDataset(features, np.asarray(inp["labels"], dtype=np.int64), tuple(inp["classes"]))
    return {"bytes": _hex(dataset_bytes(dataset)), "digest": _hex(dataset_digest(dataset))}


def round_handler(inp: Json) -> Json:
    """A whole round judged from its public inputs by the consensus core: record bytes and digest, model
    file, roots and proposal hash."""
    spec = validate_spec(inp["spec"])
    files = {cid: _bytes(data) for cid, data in inp["files"].items()}
    base = FileRef(cid=inp["base"]["cid"], digest=_bytes(inp["base"]["digest"]))
    base_file = files[base.cid]
    if compute_cid(base_file) != base.cid or hashlib.sha256(base_file).digest() != base.digest:
        raise IntegrityError("the base model file does not match its CID and digest")
    base_arrays, _ = decode_arrays(base_file, expected=None, max_bytes=MODEL_MAX_BYTES)
    updates = [
        RevealedUpdate(u["contributor"], u["cid"], _bytes(u["digest"]), int(u["samples"]), u["commit_order"])
        for u in inp["updates"]
    ]

    def fetch(update: RevealedUpdate) -> bytes:
        # What storage.base.fetch_verified and the validator's fetch do, on an in-memory store.
        if update.cid not in files:
            raise UpdateRejected(RejectReason.MISSING, f"{update.cid} is not in the store")
        data = files[update.cid]
        if len(data) > spec.limits.max_update_bytes:
            raise UpdateRejected(RejectReason.OVERSIZE, f"{len(data)} bytes")
        if compute_cid(data) != update.cid or hashlib.sha256(data).digest() != update.digest:
            raise UpdateRejected(RejectReason.DIGEST_MISMATCH, "the file does not match its CID and digest")
        return data

    judged = judge(
        spec,
        int(inp["task_id"]),
        int(inp["round"]),
        int(inp["round_budget"]),
        base,
        base_arrays,
        updates,
        fetch,
    )
    record = judged.record
    data = record_bytes(record)
    record_digest = hashlib.sha256(data).digest()
    model = judged.model_file
    model_digest = hashlib.sha256(model).digest()
    hashed = proposal_hash(
        model_digest, record_digest, record.rewards_root, record.slash_root, record.reward_total
    )
    return {
        "record": data.decode("utf-8"),
        "record_digest": _hex(record_digest),
        "record_cid": compute_cid(data),
        "model_file": _hex(model),
        "model_digest": _hex(model_digest),
        "model_cid": compute_cid(model),
        "rewards_root": _hex(record.rewards_root),
        "slash_root": _hex(record.slash_root),
        "reward_total": str(record.reward_total),
        "proposal_hash": _hex(hashed),
    }


def sealed_handler(inp: Json) -> Json:
    """Open a sealed update file with one reader's private key (PROTOCOL.md section 6.6): the plaintext and
    its sha256, or the first check that refuses it."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from cotrain.privacy.sealed import SealedRejected, open_sealed

    key = X25519PrivateKey.from_private_bytes(_bytes(inp["reader_private_key"]))
    try:
        plaintext = open_sealed(
            _bytes(inp["file"]),
            key,
            inp["expected_binding"],
            int(inp["max_bytes"]),
            readers=[_bytes(reader) for reader in inp["readers"]],
        )
    except SealedRejected as rejected:
        return {"reason": rejected.reason.value}
    return {"plaintext": _hex(plaintext), "plaintext_sha256": _hex(hashlib.sha256(plaintext).digest())}


HANDLERS: dict[str, Callable[[Json], Json]] = {
    "spec": spec_handler,
    "model_layout": model_layout_handler,
    "update_file": update_file_handler,
    "model_file": model_file_handler,
    "commitment": commitment_handler,
    "cid": cid_handler,
    "rewards": rewards_handler,
    "slash": slash_handler,
    "fixed": fixed_handler,
    "quantize": quantize_handler,
    "rule": rule_handler,
    "cosine": cosine_handler,
    "scores": scores_handler,
    "proposal_hash": proposal_hash_handler,
    "builtin_split": builtin_split_handler,
    "dataset_digest": dataset_digest_handler,
    "round": round_handler,
    "sealed": sealed_handler,
}

#: Output fields that depend on numpy's kernels, by handler: compared separately. The built-in split's digest
#: follows numpy's standardization.
MACHINE_DEPENDENT: dict[str, tuple[str, ...]] = {"builtin_split": ("held_out_digest",)}

#: Handlers that need torch or scikit-learn (a bundled data set); every other handler runs on the consensus
#: core's dependencies alone (``scripts/check_vectors.py`` runs those under another Python).
NEEDS_LEARNING_STACK = frozenset({"builtin_split"})


def run_vector(vector: Mapping[str, Any]) -> Json:
    """Compute a vector's output from its input with this package."""
    return HANDLERS[vector["handler"]](dict(vector["input"]))
