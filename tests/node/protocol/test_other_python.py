"""The test vectors under a second Python version, with the consensus core's dependencies only (no torch).

The set-up (toolchain/setup.sh) makes ``.venv-core`` with Python 3.12 or 3.10 and
toolchain/requirements-core.txt; ``scripts/check_vectors.py`` recomputes there every vector that needs no
bundled data set: every round's record bytes, digests, model file and roots, the arithmetic, files, CIDs,
rewards and model layouts. The expected digests are the ones this interpreter (3.11, with torch)
wrote, so a byte that depended on the Python version, or a torch import in the core, fails here. In CI the
second interpreter must exist.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CORE_PYTHON = ROOT / ".venv-core" / "bin" / "python"


def _version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_vectors_give_the_same_bytes_under_another_python_without_torch() -> None:
    # Prepare
    if not CORE_PYTHON.exists():
        if os.environ.get("CI"):
            pytest.fail("toolchain/setup.sh found no python3.12 or python3.10 to build .venv-core with")
        pytest.skip("no .venv-core: toolchain/setup.sh found no second Python version (set CORE_PYTHON)")
    version = _version(CORE_PYTHON)
    assert version.split(".")[:2] != [str(v) for v in sys.version_info[:2]], "the same Python as the tests"

    # Execute
    result = subprocess.run(
        [str(CORE_PYTHON), str(ROOT / "scripts" / "check_vectors.py"), str(ROOT / "tests" / "vectors")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "node")},
        timeout=300,
    )

    # Assert
    assert result.returncode == 0, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    checked = int(last.split(" of ")[1].split()[0])
    assert last == f"{checked} of {checked} vectors match under Python {version} (torch not imported)"
    assert checked >= 40
