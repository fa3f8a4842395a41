"""Tests for cotrain.learning.device and training on an explicit device (CPU here; scripts/device_check.py
trains on a GPU where there is one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from cotrain.cli import app
from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset
from cotrain.learning.device import CPU, resolve_device
from cotrain.learning.models import build_model
from cotrain.learning.state import model_state
from cotrain.learning.training import train_local
from cotrain.privacy.dp import train_local_dp
from typer.testing import CliRunner

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
HYPER = {"epochs": 2, "batch_size": 16, "lr": 0.05, "optimizer": "sgd", "seed": 7}


@pytest.fixture(scope="module")
def small_digits(digits: ArrayDataset) -> ArrayDataset:
    return digits.subset(np.arange(120))


def _cnn() -> torch.nn.Module:
    return build_model("cnn", {"channels": [4, 8]}, input_shape=(1, 8, 8), num_classes=10, seed=0)


def _bits(state: dict[str, torch.Tensor]) -> dict[str, bytes]:
    return {key: tensor.numpy().tobytes() for key, tensor in state.items()}


@pytest.mark.parametrize("name", ["cpu", " CPU "])
def test_cpu_is_the_cpu(name: str) -> None:
    assert resolve_device(name) == torch.device("cpu") == CPU


def test_auto_is_a_gpu_only_where_torch_sees_one() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@NO_GPU
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "CUDA:2"])
def test_cuda_without_a_gpu_is_refused_in_one_line(name: str) -> None:
    with pytest.raises(ConfigError, match=r"no CUDA GPU here") as caught:
        resolve_device(name)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("name", ["gpu", "tpu", "cuda:x", "cuda:-1", "mps", ""])
def test_an_unknown_device_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device(name)


@NO_GPU
def test_contribute_refuses_cuda_before_it_connects(tmp_path: Path) -> None:
    # The network file does not exist: a command that got past the device would fail on it instead.
    args = ["contribute", "--task", "1", "--data", str(tmp_path / "data.npz"), "--device", "cuda"]

    result = CliRunner().invoke(app, [*args, "--network", str(tmp_path / "missing.json")])

    assert isinstance(result.exception, ConfigError)
    assert "no CUDA GPU here" in str(result.exception)


@pytest.mark.parametrize("proximal_mu", [0.0, 0.1])
def test_training_on_an_explicit_cpu_is_bit_identical_to_the_default(
    small_digits: ArrayDataset, proximal_mu: float
) -> None:
    # Prepare
    global_state = model_state(_cnn())

    # Execute
    default = train_local(_cnn(), global_state, small_digits, **HYPER, proximal_mu=proximal_mu)
    explicit = train_local(_cnn(), global_state, small_digits, **HYPER, proximal_mu=proximal_mu, device=CPU)

    # Assert
    assert _bits(explicit.delta) == _bits(default.delta)
    assert explicit.loss == default.loss
    assert all(t.device == CPU and t.dtype == torch.float32 for t in explicit.delta.values())


def test_dp_sgd_on_an_explicit_cpu_is_bit_identical_to_the_default(small_digits: ArrayDataset) -> None:
    # Prepare
    global_state = model_state(_cnn())
    privacy = {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "delta": 1e-5}

    # Execute
    runs = [
        train_local_dp(
            _cnn(),
            global_state,
            small_digits,
            **HYPER,
            **privacy,
            generator=torch.Generator().manual_seed(3),
            **device,
        )[0]
        for device in ({}, {"device": CPU})
    ]

    # Assert
    assert _bits(runs[1].delta) == _bits(runs[0].delta)
    assert runs[1].mechanism == runs[0].mechanism
    assert all(t.device == CPU and t.dtype == torch.float32 for t in runs[1].delta.values())
