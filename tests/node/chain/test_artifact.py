"""The ABI and bytecode shipped in the package are those of the current contract sources."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cotrain.chain.market import ARTIFACT_NAME, load_artifact

ROOT = Path(__file__).resolve().parents[3]
BUILD = ROOT / "build" / "contracts"
SHIPPED = ROOT / "node" / "cotrain" / "chain" / ARTIFACT_NAME


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _fresh_build(name: str) -> dict[str, Any]:
    path = BUILD / f"{name}.json"
    if not path.is_file():
        pytest.skip(
            f"{path.relative_to(ROOT)} is absent: run `brownie compile` to compare with a fresh build"
        )
    build = json.loads(path.read_text(encoding="utf-8"))
    source = ROOT / build["sourcePath"]
    assert _sha1(source) == build["sha1"], f"build/ is older than {source}: run `brownie compile` first"
    return build


def _export_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "export_artifact", ROOT / "toolchain" / "export_artifact.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_abi_and_bytecode_equal_the_fresh_build():
    # Prepare
    build = _fresh_build("TrainingMarket")
    _fresh_build("ITrainingMarket")

    # Execute
    shipped = load_artifact()

    # Assert
    assert shipped["abi"] == build["abi"]
    assert shipped["bytecode"] == "0x" + build["bytecode"]
    assert shipped["deployedBytecode"] == "0x" + build["deployedBytecode"]
    assert shipped["compiler"] == build["compiler"]


def test_export_script_reproduces_the_shipped_file_byte_for_byte():
    _fresh_build("TrainingMarket")
    _fresh_build("ITrainingMarket")
    script = _export_script()

    text = script.render(script.artifact_from_build(BUILD))

    assert text == SHIPPED.read_text(encoding="utf-8"), "run `python toolchain/export_artifact.py`"


def test_shipped_artifact_names_the_current_sources():
    # Works without build/: a source edited after the export changes its sha1.
    shipped = load_artifact()

    assert set(shipped["sources"]) == {
        "contracts/TrainingMarket.sol",
        "contracts/interfaces/ITrainingMarket.sol",
    }
    for path, sha1 in shipped["sources"].items():
        assert _sha1(ROOT / path) == sha1, f"{path} changed since the export: recompile and re-export"


def test_shipped_enums_come_from_the_solidity_sources():
    assert load_artifact()["enums"] == {
        "ITrainingMarket.TaskStatus": ["None", "Active", "Completed", "Cancelled", "Halted"],
        "ITrainingMarket.RoundStatus": ["Open", "Accepted", "Finalized", "Failed", "Voided"],
        "ITrainingMarket.Phase": ["Join", "Commit", "Reveal", "Validate", "Expired", "Closed"],
        "ITrainingMarket.ChallengeOutcome": ["None", "Rejected", "Upheld", "Dismissed"],
    }
