"""Train a contributor's round on a GPU and check what it sends: `python scripts/device_check.py [DEVICE]`.

DEVICE defaults to ``auto`` (the first CUDA GPU, else the CPU, which then checks only the CPU path). For the
built-in digits task as is, with FedProx's term, and under DP-SGD, the round is trained on DEVICE and on the
CPU; each update file must decode to CPU float32 tensors with the same names and shapes as the CPU one's, and
the round's update must lower the training loss. Exit status 0 when every check passes.
"""

from __future__ import annotations

import hashlib
import sys
from importlib.resources import files
from pathlib import Path

import torch
from cotrain.learning.device import CPU, resolve_device
from cotrain.learning.evaluation import evaluate
from cotrain.learning.state import layout
from cotrain.learning.tensor_files import decode_tensors, encode_update
from cotrain.protocol.task_model import (
    builtin_split,
    initial_state,
    task_model,
    train_private_round,
    train_round,
)
from cotrain.protocol.task_spec import TaskSpec, load_spec, validate_spec
from cotrain.protocol.update_binding import update_metadata

CONTRIBUTOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
MAX_BYTES = 64 * 1024 * 1024


def _spec(**training: object) -> TaskSpec:
    data = load_spec(Path(str(files("cotrain.protocol") / "specs" / "digits.yaml"))).model_dump(mode="json")
    data["training"].update(training)
    if "dp" in training:
        data["training"].pop("dp")
        data["privacy"] = {
            "dp": {
                "mechanism": "sample",
                "noise_multiplier": 1.0,
                "clip_norm": 1.0,
                "delta": 1e-5,
                "max_epsilon": 50,
            }
        }
    return validate_spec(data, source="device check")


def _update_file(spec: TaskSpec, device: torch.device) -> tuple[dict[str, torch.Tensor], float, float]:
    """Train round 0 on ``device``; the update file's tensors, and the training loss before and after."""
    base = initial_state(spec)
    train = builtin_split(spec)[0]
    private = spec.privacy is not None
    result = (train_private_round if private else train_round)(spec, base, train, 0, device=device)
    metadata = update_metadata(1, 0, CONTRIBUTOR, hashlib.sha256(b"base").digest(), result.samples)
    tensors, _ = decode_tensors(
        encode_update(result.delta, metadata), expected=layout(base), max_bytes=MAX_BYTES
    )
    trained = {name: base[name] + tensors[name] for name in base}
    before = evaluate(task_model(spec), base, train).loss
    after = evaluate(task_model(spec), trained, train).loss
    return tensors, before, after


def main() -> int:
    """Run the checks and print one line per case."""
    device = resolve_device(sys.argv[1] if len(sys.argv) > 1 else "auto")
    print(f"torch {torch.__version__}, training on {device}")
    cases = {"plain": _spec(), "fedprox": _spec(proximal_mu=0.01), "dp-sgd": _spec(dp=True)}
    for name, spec in cases.items():
        on_device, before, after = _update_file(spec, device)
        on_cpu, _, _ = _update_file(spec, CPU)
        assert all(t.device == CPU and t.dtype == torch.float32 for t in on_device.values()), name
        assert {k: tuple(t.shape) for k, t in on_device.items()} == {
            k: tuple(t.shape) for k, t in on_cpu.items()
        }
        assert after < before, f"{name}: training loss {before:.4f} -> {after:.4f} did not decrease"
        gap = max(float((on_device[k] - on_cpu[k]).abs().max()) for k in on_cpu)
        print(
            f"{name}: {len(on_device)} CPU float32 tensors, loss {before:.4f} -> {after:.4f}, "
            f"largest difference from the CPU's update {gap:.2e}"
        )
    print("all checks passed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
