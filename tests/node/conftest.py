"""Shared by every test of the node package (none of which uses brownie)."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import pytest

NODE_TESTS = Path(__file__).resolve().parent
README = NODE_TESTS.parents[1] / "README.md"


def pytest_collection_finish(session: pytest.Session) -> bool | None:
    """Keep brownie off the network when only tests/node runs.

    The brownie plugin connects to its default network (an anvil on port 8545) after collection unless another
    hook returns a result; nothing under tests/node uses brownie, and port 8545 may belong to someone else.
    """
    if session.items and all(NODE_TESTS in Path(item.path).resolve().parents for item in session.items):
        return True
    return None


RawCsv = Callable[..., Path]


@pytest.fixture(scope="session")
def raw_breast_cancer_csv() -> RawCsv:
    """Write scikit-learn's breast-cancer set as a hospital might keep it: raw measurements (exact float64
    text) and the diagnosis as text in a last column ``diagnosis``; ``indexed=True`` writes class indices in
    a column ``label`` instead, ``reverse=True`` every column in reverse order."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()

    def write(path: Path, *, reverse: bool = False, indexed: bool = False) -> Path:
        header = [*bunch.feature_names, "label" if indexed else "diagnosis"]
        rows = [
            [*(repr(float(v)) for v in x), str(y) if indexed else bunch.target_names[y]]
            for x, y in zip(bunch.data, bunch.target, strict=True)
        ]
        if reverse:
            header, rows = header[::-1], [row[::-1] for row in rows]
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([header, *rows])
        return path

    return write


@pytest.fixture(scope="session")
def readme_block() -> Callable[..., str]:
    """The README's code block of a language (default python) whose first line is ``# readme: MARKER``."""

    def find(marker: str, language: str = "python") -> str:
        blocks = re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
        found = [block for block in blocks if block.startswith(f"# readme: {marker}\n")]
        assert len(found) == 1, f"README.md has {len(found)} {language} blocks marked {marker!r}"
        return str(found[0])

    return find
