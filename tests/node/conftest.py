"""Shared by every test of the node package (none of which uses brownie)."""

from __future__ import annotations

from pathlib import Path

import pytest

NODE_TESTS = Path(__file__).resolve().parent


def pytest_collection_finish(session: pytest.Session) -> bool | None:
    """Keep brownie off the network when only tests/node runs.

    The brownie plugin connects to its default network (an anvil on port 8545) after collection unless another
    hook returns a result; nothing under tests/node uses brownie, and port 8545 may belong to someone else.
    """
    if session.items and all(NODE_TESTS in Path(item.path).resolve().parents for item in session.items):
        return True
    return None
