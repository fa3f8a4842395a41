"""Export TrainingMarket's ABI and bytecode from brownie's build into the cotrain package.

Contributors run the node without a Solidity compiler: the package ships cotrain/chain/TrainingMarket.json.
Run ``brownie compile`` first, then ``python toolchain/export_artifact.py``; ``--check`` only reports whether
the shipped file matches the build (exit status 1 when it does not).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = ROOT / "build" / "contracts"
TARGET = ROOT / "node" / "cotrain" / "chain" / "TrainingMarket.json"
# Builds whose ASTs define the enums the market's ABI refers to (the ABI itself only says uint8).
SOURCES = ("TrainingMarket", "ITrainingMarket")


def _load(build_dir: Path, name: str) -> dict[str, Any]:
    path = build_dir / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `brownie compile` in {ROOT} first")
    return json.loads(path.read_text(encoding="utf-8"))


def stale_sources(build_dir: Path = BUILD_DIR, root: Path = ROOT) -> list[str]:
    """Return the source files whose current sha1 differs from the one their build was compiled from."""
    stale = []
    for name in SOURCES:
        build = _load(build_dir, name)
        source = root / build["sourcePath"]
        if not source.is_file() or hashlib.sha1(source.read_bytes()).hexdigest() != build["sha1"]:
            stale.append(build["sourcePath"])
    return stale


def enums_from_ast(ast: dict[str, Any]) -> dict[str, list[str]]:
    """Map each enum's qualified name (``Contract.Enum``, as in ABI ``internalType``) to its member names."""
    enums = {}
    for unit in ast["nodes"]:
        if unit["nodeType"] != "ContractDefinition":
            continue
        for node in unit["nodes"]:
            if node["nodeType"] == "EnumDefinition":
                enums[f"{unit['name']}.{node['name']}"] = [member["name"] for member in node["members"]]
    return enums


def artifact_from_build(build_dir: Path = BUILD_DIR) -> dict[str, Any]:
    """Build the shipped artifact: ABI, creation and runtime bytecode, enum members, compiler settings."""
    builds = {name: _load(build_dir, name) for name in SOURCES}
    market = builds["TrainingMarket"]
    if "__" in market["bytecode"]:
        raise SystemExit("TrainingMarket's bytecode has unlinked library placeholders; it cannot ship as is")
    enums: dict[str, list[str]] = {}
    for build in builds.values():
        enums.update(enums_from_ast(build["ast"]))
    return {
        "contractName": market["contractName"],
        "compiler": market["compiler"],
        "sources": {build["sourcePath"]: build["sha1"] for build in builds.values()},
        "enums": enums,
        "abi": market["abi"],
        "bytecode": "0x" + market["bytecode"],
        "deployedBytecode": "0x" + market["deployedBytecode"],
    }


def render(artifact: dict[str, Any]) -> str:
    """The artifact as the file text that ships (stable formatting, so diffs show real changes)."""
    return json.dumps(artifact, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare the shipped file with the build")
    args = parser.parse_args(argv)

    stale = stale_sources()
    if stale:
        print(f"build/ is older than {', '.join(stale)}: run `brownie compile` first", file=sys.stderr)
        return 1
    text = render(artifact_from_build())
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.is_file() else ""
        if current != text:
            print(
                f"{TARGET.relative_to(ROOT)} differs from build/: run toolchain/export_artifact.py",
                file=sys.stderr,
            )
            return 1
        print(f"{TARGET.relative_to(ROOT)} matches build/")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)} ({len(text) // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
