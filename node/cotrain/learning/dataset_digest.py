"""The canonical digest of a data set: what a task spec pins its held-out set by.

Validators measure each new model on their held-out set (advisory metrics, and the optional
``max_loss_increase`` screening, whose verdicts enter the round record), so two of them with different sets
report different numbers, or, with that screening, propose different records and no quorum forms. The spec
therefore pins the set by this digest,
and a validator or auditor refuses to use a set whose digest differs. It is a digest of the arrays as the node
loads them (an :class:`~cotrain.learning.data.ArrayDataset` shaped to the task's ``input_shape``), not of a
file, so the same examples give the same digest whether they come from a ``.npz`` (whose zip entries carry
timestamps), a ``.csv`` (however its numbers are written) or the built-in split.
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

from cotrain.learning.data import ArrayDataset

#: Domain separation: no other hashed object of the protocol starts with these bytes.
DATASET_DIGEST_PREFIX = b"cotrain:dataset:v1\x00"


def dataset_bytes(dataset: ArrayDataset) -> bytes:
    """Return the canonical encoding of ``dataset``'s examples, which :func:`dataset_digest` hashes.

    Byte by byte, for ``N`` examples with features shaped ``(N, d_1, ..., d_k)``:

    1. the 18 ASCII bytes ``cotrain:dataset:v1`` and one zero byte (:data:`DATASET_DIGEST_PREFIX`);
    2. ``k + 1`` as an unsigned 32-bit little-endian integer;
    3. ``N, d_1, ..., d_k``, each an unsigned 64-bit little-endian integer;
    4. the features as IEEE 754 float32 little-endian in C (row-major) order, ``4 * N * d_1 * ... * d_k``
       bytes, with negative zero written as positive zero (``00 00 00 00``);
    5. the labels (class indices) as signed 64-bit little-endian integers in row order, ``8 * N`` bytes.

    Class names are not encoded: metrics depend on the labels' indices only. Row order is: reordering the
    examples changes the digest.
    """
    shape = dataset.features.shape
    # Adding +0.0 turns -0.0 into +0.0 (IEEE 754, round to nearest) and leaves every other value alone.
    features = np.ascontiguousarray(dataset.features + np.float32(0.0), dtype="<f4")
    labels = np.ascontiguousarray(dataset.labels, dtype="<i8")
    return b"".join(
        (
            DATASET_DIGEST_PREFIX,
            struct.pack("<I", len(shape)),
            struct.pack(f"<{len(shape)}Q", *shape),
            features.tobytes(order="C"),
            labels.tobytes(order="C"),
        )
    )


def dataset_digest(dataset: ArrayDataset) -> bytes:
    """Return sha256 of :func:`dataset_bytes` (32 bytes): the digest a spec's
    ``data.validation.held_out_digest`` pins."""
    return hashlib.sha256(dataset_bytes(dataset)).digest()
