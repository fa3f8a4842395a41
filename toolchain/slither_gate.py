"""Run slither on brownie's build and fail on any high or medium finding not triaged in slither-triage.json.

Usage: python toolchain/slither_gate.py   (after `brownie compile --all`)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GATED_IMPACTS = ("High", "Medium")


def run_slither() -> list[dict]:
    """Return slither's detector results for the project's own contracts (not tests, not dependencies)."""
    command = [
        "slither",
        ".",
        "--compile-force-framework",
        "brownie",
        "--brownie-ignore-compile",
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
