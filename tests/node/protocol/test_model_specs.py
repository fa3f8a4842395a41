"""Models in task specs (cotrain.protocol.task_spec, task_model): presets and layer lists, shapes and limits
checked at parse time, canonical bytes, and the docs' two example tasks trained and judged in a round."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cotrain.errors import ConfigError
from cotrain.learning.data import ArrayDataset, load_breast_cancer
from cotrain.learning.layers import DEFAULT_MAX_PARAMETERS, MAX_PARAMETERS
from cotrain.learning.state import layout
from cotrain.learning.tensor_files import encode_update
from cotrain.protocol.round_judge import RevealedUpdate, file_ref, judge, model_file
from cotrain.protocol.round_record import Reason
from cotrain.protocol.task_model import initial_state, task_model, train_round
from cotrain.protocol.task_spec import (
    TaskSpec,
    load_spec,
    parse_spec_bytes,
    spec_bytes,
    validate_spec,
)
from cotrain.protocol.update_binding import update_metadata

ROOT = Path(__file__).resolve().parents[3]
SPECS = ROOT / "node" / "cotrain" / "protocol" / "specs"
DOCS = ROOT / "docs" / "models.md"
HELD_OUT = "0x" + "11" * 32

MLP = [{"type": "linear", "out": 16}, {"type": "relu"}, {"type": "linear", "out": 2}]


def _base() -> dict[str, Any]:
    """The breast_cancer spec as an author's data (30 features, 2 classes, 64 KiB updates)."""
    data: dict[str, Any] = yaml.safe_load((SPECS / "breast_cancer.yaml").read_text(encoding="utf-8"))
    return data


def _with_model(model: dict[str, Any], **limits: Any) -> dict[str, Any]:
    data = _base()
    data["model"] = model
    data["limits"] = {**data["limits"], **limits}
    return data


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_spec(data)
    first, *details = str(info.value).splitlines()
    assert first == "task spec: invalid task spec"
    return [line.removeprefix("  - ") for line in details]


def docs_example(marker: str) -> dict[str, Any]:
    """docs/models.md's YAML block whose first line is ``# models: MARKER``, as data."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    found = [block for block in blocks if block.startswith(f"# models: {marker}\n")]
    assert len(found) == 1, f"docs/models.md has {len(found)} yaml blocks marked {marker!r}"
    example: dict[str, Any] = yaml.safe_load(found[0])
    return example


def _docs_spec(marker: str) -> TaskSpec:
    """The breast_cancer spec with the docs example's model, data and limits, and a pinned held-out set."""
    example = docs_example(marker)
    data = _base()
    data["model"] = example["model"]
    data["data"] = {**example["data"], "builtin": None}
    data["data"]["validation"] = {**data["data"]["validation"], "held_out_digest": HELD_OUT}
    data["limits"] = {**data["limits"], **example.get("limits", {})}
    return validate_spec(data)


# ---------------------------------------------------------------- canonical form


def test_a_preset_spec_writes_neither_layers_nor_a_parameter_bound() -> None:
    for path in sorted(SPECS.glob("*.yaml")):
        raw = spec_bytes(load_spec(path))

        assert b'"layers"' not in raw and b'"max_parameters"' not in raw, path.name


def test_a_layer_list_is_written_out_with_every_default_and_parses_back() -> None:
    # Prepare
    spec = validate_spec(
        _with_model(
            {
                "name": "layers",
                "layers": [
                    {"type": "linear", "out": 8},
                    {"type": "dropout", "p": "1e-1"},
                    {"type": "linear", "out": 2, "bias": False},
                ],
            },
            max_parameters=1000,
        )
    )

    # Execute
    raw = spec_bytes(spec)

    # Assert
    assert (
        b'"model":{"layers":[{"bias":true,"out":8,"type":"linear"},{"p":0.1,"type":"dropout"},'
        b'{"bias":false,"out":2,"type":"linear"}],"name":"layers","params":{}}' in raw
    )
    assert b'"limits":{"max_parameters":1000,"max_update_bytes":65536}' in raw
    assert parse_spec_bytes(raw) == spec


# ---------------------------------------------------------------- refused at parse time


def test_a_layer_that_does_not_fit_is_one_line_naming_it_from_a_spec_file(tmp_path: Path) -> None:
    # Prepare: 30 features reach a conv2d that wants images.
    data = _with_model(
        {
            "name": "layers",
            "layers": [{"type": "linear", "out": 64}, {"type": "conv2d", "out": 4, "kernel": 3}, *MLP],
        }
    )
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    # Execute
    with pytest.raises(ConfigError) as info:
        load_spec(path)

    # Assert
    assert str(info.value).splitlines() == [
        f"{path}: invalid task spec",
        "  - model.layers[1] (conv2d out 4 kernel 3 stride 1 padding 0) receives shape (64,); conv2d takes "
        "(channels, height, width)",
    ]


@pytest.mark.parametrize(
    ("model", "problem"),
    [
        (
            {"name": "layers", "layers": [{"type": "linear", "out": 16}, {"type": "relu"}]},
            "model.layers[1] (relu) outputs shape (16,), but the model must output one value per class, "
            "shape (2,) for data.num_classes 2",
        ),
        ({"name": "layers"}, "model: name 'layers' needs layers: the model's layers in order"),
        (
            {"name": "layers", "params": {"hidden": [4]}, "layers": MLP},
            "model: a model given by its layers takes no params; each layer holds its own fields",
        ),
        (
            {"name": "mlp", "layers": MLP},
            "model: layers belong to name 'layers'; the preset 'mlp' takes params only (drop layers, or set "
            "name: layers)",
        ),
        (
            {"name": "layers", "layers": [{"type": "linear", "out": 4, "width": 3}]},
            "model.layers[0].linear.width: unknown field; allowed fields: type, out, bias",
        ),
        (
            {"name": "layers", "layers": [{"type": "batch_norm"}, *MLP]},
            "model.layers[0]: batch_norm is not allowed: BatchNorm keeps running statistics, which are not "
            "parameters: updates (float32 deltas of parameters) cannot carry them, and its batch statistics "
            "defeat DP-SGD's per-example clipping; use layer_norm or group_norm",
        ),
        (
            {"name": "layers", "layers": [{"type": "relu"}] * 65},
            "model.layers: List should have at most 64 items after validation, not 65, got ",
        ),
        (
            {"name": "cnn", "params": {}},
            "model 'cnn' needs images shaped (channels, height, width), got input shape (30,); load digits "
            "with flat=False",
        ),
    ],
)
def test_a_model_that_cannot_run_is_refused_in_one_line(model: dict[str, Any], problem: str) -> None:
    [line] = _problems(_with_model(model))

    assert line.startswith(problem)


def test_an_unknown_layer_type_lists_the_allowlist() -> None:
    [line] = _problems(_with_model({"name": "layers", "layers": [{"type": "attention"}, *MLP]}))

    assert line.startswith("model.layers[0]: Input tag 'attention' found using 'type' does not match any of")
    assert "'linear', 'conv1d', 'conv2d'" in line and "'leaky_relu'" in line


# ---------------------------------------------------------------- limits


def _wide(width: int) -> dict[str, Any]:
    return {"name": "layers", "layers": [{"type": "linear", "out": width}, {"type": "linear", "out": 2}]}


def test_a_layer_list_is_bounded_by_default() -> None:
    width = DEFAULT_MAX_PARAMETERS // 32 + 1  # 30 inputs, 2 outputs: 33 values per unit, 2 biases
    count = 30 * width + width + 2 * width + 2

    problems = _problems(_with_model(_wide(width), max_update_bytes=2**30))

    assert problems == [
        f"model: {count} parameters, more than the {DEFAULT_MAX_PARAMETERS} a model given by its layers may "
        f"hold unless limits.max_parameters allows more (at most {MAX_PARAMETERS})"
    ]
    assert validate_spec(_with_model(_wide(width), max_update_bytes=2**30, max_parameters=count))


def test_max_parameters_bounds_presets_too_when_set() -> None:
    preset = {"name": "mlp", "params": {"hidden": [10]}}  # 30*10 + 10 + 10*2 + 2 = 332

    assert validate_spec(_with_model(preset, max_parameters=332))
    assert _problems(_with_model(preset, max_parameters=331)) == [
        "model: 332 parameters, more than limits.max_parameters (331)"
    ]
    assert validate_spec(_with_model({"name": "mlp", "params": {"hidden": [10**6]}}))  # unset: as before


@pytest.mark.parametrize(
    ("value", "problem"), [(0, "greater than or equal to 1"), (MAX_PARAMETERS + 1, "less")]
)
def test_max_parameters_is_a_positive_integer_up_to_the_model_file_bound(value: int, problem: str) -> None:
    [line] = _problems(_with_model({"name": "logistic"}, max_parameters=value))

    assert line.startswith("limits.max_parameters:") and problem in line


def test_a_layer_list_whose_updates_cannot_fit_the_update_limit_is_refused() -> None:
    # 30*16 + 16 + 16*2 + 2 = 530 parameters: at least 2120 bytes.
    layers = {"name": "layers", "layers": MLP}

    assert validate_spec(_with_model(layers, max_update_bytes=2120))
    assert _problems(_with_model(layers, max_update_bytes=2119)) == [
        "model: 530 float32 parameters make every update at least 2120 bytes, more than "
        "limits.max_update_bytes (2119), so validators would refuse them all"
    ]


# ---------------------------------------------------------------- the command line


def test_task_post_refuses_a_model_whose_shapes_do_not_fit_before_connecting(tmp_path: Path) -> None:
    # Prepare
    data = _with_model({"name": "layers", "layers": [{"type": "lstm", "hidden": 8}, *MLP]})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")

    # Execute: no chain, no network file; the spec is refused first.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cotrain",
            "task",
            "post",
            str(path),
            "--network",
            str(tmp_path / "none.json"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "node"), "COLUMNS": "80"},  # a narrow terminal
        timeout=120,
    )

    # Assert
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path}: invalid task spec",
        "  - model.layers[0] (lstm hidden 8) receives shape (30,); lstm takes a sequence (steps, features)",
    ]


# ---------------------------------------------------------------- the docs' examples


def _tokens(count: int, seed: int, vocab: int, steps: int) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, vocab, count)
    features = ((starts[:, None] + np.arange(steps)) % vocab).astype(np.float32)
    return ArrayDataset(features, (starts + steps) % vocab, tuple(map(str, range(vocab))))


def test_the_docs_next_word_model_parses_and_trains_on_tiny_data() -> None:
    # Prepare
    spec = _docs_spec("next-word")
    vocab, steps = spec.data.num_classes, spec.data.input_shape[0]
    data = _tokens(24, 0, vocab, steps)

    # Execute
    result = train_round(spec, initial_state(spec), data, 0)

    # Assert
    assert [layer.type for layer in spec.model.layers or []] == [
        "embedding",
        "lstm",
        "sequence_pool",
        "linear",
    ]
    assert parse_spec_bytes(spec_bytes(spec)) == spec
    assert sum(t.numel() for t in result.delta.values()) == 1_064_328  # as docs/models.md says
    assert list(result.delta) == sorted(initial_state(spec)) and np.isfinite(result.loss)
    assert float(result.delta["3.weight"].abs().max()) > 0


def test_the_docs_tabular_model_trains_in_a_round_that_validators_judge() -> None:
    # Prepare: three contributors with a third of breast_cancer each.
    breast_cancer = load_breast_cancer()
    spec = _docs_spec("tabular")
    base_state = initial_state(spec)
    base_arrays = {key: tensor.numpy() for key, tensor in base_state.items()}
    base = file_ref(model_file(7, -1, base_arrays))
    contributors = ["0x" + f"{i + 1:02x}" * 20 for i in range(3)]
    files, revealed = {}, []
    for order, who in enumerate(contributors):
        shard = breast_cancer.subset(np.arange(order, len(breast_cancer), 3))
        delta = train_round(spec, base_state, shard, 0).delta
        update = encode_update(delta, update_metadata(7, 0, who, base.digest, len(shard)))
        ref = file_ref(update)
        files[ref.cid] = update
        revealed.append(RevealedUpdate(who, ref.cid, ref.digest, len(shard), order))

    # Execute
    judged = judge(spec, 7, 0, 10**6, base, base_arrays, revealed, lambda update: files[update.cid])

    # Assert
    assert [entry.reason for entry in judged.record.updates] == [Reason.OK] * 3
    assert {key: tuple(array.shape) for key, array in judged.arrays.items()} == {
        key: shape for key, (shape, _) in layout(base_state).items()
    }
    assert layout(task_model(spec).state_dict()) == layout(base_state)
