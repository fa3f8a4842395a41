"""Where local training runs: ``cpu``, ``cuda``, ``cuda:N``, or ``auto`` (the first GPU if torch sees one).

Only a contributor's training moves: its update file is written from CPU float32 tensors whatever the device,
and validators judge on the CPU with the exact core, so the device changes nothing anyone else computes.
"""

from __future__ import annotations

import os
import re

import torch

from cotrain.errors import ConfigError

#: The values ``--device`` takes.
DEVICE_HELP = "auto, cpu, cuda or cuda:N (auto: the first CUDA GPU if torch sees one, else cpu)"
CPU = torch.device("cpu")
_CUDA = re.compile(r"cuda(?::(\d+))?")


def resolve_device(name: str) -> torch.device:
    """The torch device ``name`` asks for.

    Raises
    ------
    ConfigError
        If ``name`` is none of :data:`DEVICE_HELP`, or asks for a CUDA GPU this machine does not have.
    """
    text = name.strip().lower()
    if text == "cpu":
        return CPU
    if text == "auto":
        return _cuda(0) if torch.cuda.is_available() else CPU
    match = _CUDA.fullmatch(text)
    if match is None:
        raise ConfigError(f"unknown device {name!r}; use {DEVICE_HELP}")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but torch sees no CUDA GPU here (torch.cuda.is_available() is "
            "false): use --device cpu, or a CUDA build of torch on a machine with an NVIDIA GPU"
        )
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            f"device {name!r} asked for, but torch sees {count} CUDA GPU(s): use cuda:0 to cuda:{count - 1}"
        )
    return _cuda(index)


def _cuda(index: int) -> torch.device:
    # cuBLAS refuses deterministic mode (which training switches on) unless its workspace is fixed before it
    # starts; a value the user set wins.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.device("cuda", index)
