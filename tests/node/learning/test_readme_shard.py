"""The README's recipe for a data shard runs as printed, and `cotrain contribute` accepts what it writes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from cotrain.learning.local_data import load_local_data
from cotrain.protocol.task_model import builtin_split
from cotrain.protocol.task_spec import load_spec


@pytest.fixture(scope="module")
def shard_files(tmp_path_factory: pytest.TempPathFactory, readme_block: Callable[..., str]) -> Path:
    """Run both README blocks (the CSV one uses the first one's arrays) in a fresh folder and interpreter."""
    folder = tmp_path_factory.mktemp("readme")
    code = readme_block("make a shard") + readme_block("shard as csv")
    subprocess.run([sys.executable, "-c", code], cwd=folder, check=True, timeout=120)
    return folder


def digits_spec():
    return load_spec(Path(str(files("cotrain.protocol") / "specs" / "digits.yaml")))


@pytest.mark.parametrize("name", ["my-shard.npz", "my-shard.csv"])
def test_the_digits_task_accepts_the_readme_shard(shard_files: Path, name: str) -> None:
    # Prepare
    spec = digits_spec()

    # Execute
    shard = load_local_data(
        shard_files / name, input_shape=tuple(spec.data.input_shape), num_classes=spec.data.num_classes
    )

    # Assert: half of the 1797 digits (share 0 of 2), shaped for the CNN, every class present
    assert len(shard) == 899
    assert shard.input_shape == (1, 8, 8)
    assert shard.classes == tuple(str(i) for i in range(10))
    assert np.bincount(shard.labels, minlength=10).min() > 0


def test_the_readme_shard_is_scaled_as_the_validators_data(shard_files: Path) -> None:
    # Prepare: the validators' examples are the built-in digits, standardized over the whole set
    train, held_out = builtin_split(digits_spec())
    builtin = np.concatenate([train.features, held_out.features]).reshape(-1, 64)

    # Execute
    npz = load_local_data(shard_files / "my-shard.npz", input_shape=(1, 8, 8), num_classes=10)
    csv = load_local_data(shard_files / "my-shard.csv", input_shape=(1, 8, 8), num_classes=10)

    # Assert: every shard row is one of the built-in rows, to float32 rounding (CSV: to 7 digits)
    index = {row.tobytes(): i for i, row in enumerate(builtin)}
    assert all(row.reshape(-1).tobytes() in index for row in npz.features)
    np.testing.assert_allclose(csv.features, npz.features, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(csv.labels, npz.labels)
