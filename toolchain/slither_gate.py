"""Run slither on brownie's build and fail on any high or medium finding not triaged in slither-triage.json.

Usage: python toolchain/slither_gate.py   (after toolchain/setup.sh, which installs the solc it runs)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
GATED_IMPACTS = ("High", "Medium")
MARKET = "contracts/TrainingMarket.sol"


def standard_input() -> dict:
    """The solc standard-JSON input for the market, with brownie-config.yaml's compiler settings.

    Slither reads it rather than brownie's build: brownie writes one artifact per contract, so a source file
    that declares none (OpenZeppelin's ``interfaces/IERC20.sol``, which only re-exports) is missing there and
    crytic-compile cannot resolve the imports that name it.
    """
    solc = yaml.safe_load((ROOT / "brownie-config.yaml").read_text())["compiler"]["solc"]
    settings: dict = {
        "remappings": solc.get("remappings", []),
        "optimizer": solc.get("optimizer", {"enabled": False}),
        "outputSelection": {"*": {"*": ["abi", "evm.bytecode", "evm.deployedBytecode"], "": ["ast"]}},
    }
    if solc.get("viaIR"):
        settings["viaIR"] = True
    if solc.get("evm_version"):
        settings["evmVersion"] = solc["evm_version"]
    return {"language": "Solidity", "sources": {MARKET: {"urls": [MARKET]}}, "settings": settings}


def run_slither() -> list[dict]:
    """Return slither's detector results for the project's own contracts (not tests, not dependencies)."""
    version = yaml.safe_load((ROOT / "brownie-config.yaml").read_text())["compiler"]["solc"]["version"]
    solc = Path(os.environ.get("SOLCX_BINARY_PATH", Path.home() / ".solcx")) / f"solc-v{version}"
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=ROOT / "build") as source:
        json.dump(standard_input(), source)
        source.flush()
        command = [
            "slither",
            source.name,
            "--compile-force-framework",
            "solc-json",
            "--solc",
            str(solc),
            "--filter-paths",
            "toolchain|contracts/test",
            "--json",
            "-",
        ]
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    try:
        report = json.loads(completed.stdout)
    except json.JSONDecodeError:
        detail = completed.stderr[-3000:]
        sys.exit(f"slither did not produce a report (exit {completed.returncode}):\n{detail}")
    if not report.get("success"):
        sys.exit(f"slither failed: {report.get('error')}")
    return report.get("results", {}).get("detectors", [])


def function_of(finding: dict) -> str:
    return next((e["name"] for e in finding["elements"] if e["type"] == "function"), "")


def main() -> int:
    triaged = json.loads((ROOT / "slither-triage.json").read_text())["triaged"]
    findings = run_slither()
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding["impact"]] = counts.get(finding["impact"], 0) + 1
    print("slither findings by impact:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")

    used: set[int] = set()
    untriaged = []
    for finding in (f for f in findings if f["impact"] in GATED_IMPACTS):
        key = (finding["check"], function_of(finding))
        match = next((i for i, t in enumerate(triaged) if (t["check"], t["function"]) == key), None)
        if match is None:
            untriaged.append(finding)
            continue
        used.add(match)
        print(f"  triaged {finding['impact']} {key[0]} in {key[1]}: {triaged[match]['reason'][:100]}...")

    for finding in untriaged:
        print(f"UNTRIAGED {finding['impact']} {finding['check']}: {finding['description'].strip()}")
    stale = [t for i, t in enumerate(triaged) if i not in used]
    for entry in stale:
        print(f"STALE triage entry (no longer found, remove it): {entry['check']} in {entry['function']}")
    return 1 if untriaged or stale else 0


if __name__ == "__main__":
    sys.exit(main())
