"""Run the protocol test vectors with this interpreter: `python scripts/check_vectors.py [DIR]`.

It needs only the consensus core's dependencies (numpy, pydantic, eth-utils, eth-abi, PyYAML, multiformats;
toolchain/requirements-core.txt), not torch: the vectors that need a bundled data set
(cotrain.protocol.vectors.NEEDS_LEARNING_STACK) are left to the main test suite; model layouts are planned
without torch, so they are checked here too. The set-up runs it under a
second Python version (tests/node/protocol/test_other_python.py), so a record digest that depended on the
interpreter, or a torch import that crept into the core, would show here. Prints one line per mismatch and a
summary; exits 1 on any mismatch.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from cotrain.protocol.vectors import MACHINE_DEPENDENT, NEEDS_LEARNING_STACK, run_vector


def main(directory: Path) -> int:
    checked, failed = 0, []
    for path in sorted(directory.rglob("*.json")):
        vector = json.loads(path.read_text(encoding="utf-8"))
        if vector["handler"] in NEEDS_LEARNING_STACK:
            continue
        skip = MACHINE_DEPENDENT.get(vector["handler"], ())
        output = run_vector(vector)
        for key, expected in vector["output"].items():
            if key not in skip and output.get(key) != expected:
                failed.append(f"{path.relative_to(directory)}: {key} differs")
        checked += 1
    for line in failed:
        print(line)
    torch = "imported" if "torch" in sys.modules else "not imported"
    python = platform.python_version()
    print(f"{checked - len(failed)} of {checked} vectors match under Python {python} (torch {torch})")
    return 1 if failed or "torch" in sys.modules else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/vectors")))
