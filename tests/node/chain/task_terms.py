"""Default task terms for the chain tests (a module of its own: test modules cannot import conftest)."""

from __future__ import annotations

import hashlib
from typing import Any

from cotrain.chain.market import TaskParams

ETHER = 10**18
#: Dev account 8, which the chain tests give no other role (owner 0, validators 1-3, contributors 4-6,
#: outsider 9): the arbiter must be neither a task's owner nor one of its validators.
ARBITER = "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f"
BUDGET = 2 * ETHER
SPEC_CID = "bafkreispec"
DEFAULT_TERMS: dict[str, Any] = {
    "spec_digest": hashlib.sha256(b"task spec").digest(),
    "num_rounds": 2,
    "min_contributors": 2,
    "max_contributors": 2,
    "join_duration": 600,
    "commit_duration": 3600,
    "reveal_duration": 1800,
    "validation_duration": 1800,
    "challenge_duration": 3600,
    "quorum": 2,
    "contributor_stake": ETHER // 10,
    "validator_bond": ETHER,
    "validator_slash": ETHER // 4,
    "challenge_bond": ETHER // 2,
    "arbiter": ARBITER,
}


def task_params(**overrides: Any) -> TaskParams:
    """TaskParams with the test defaults, overridden by keyword."""
    return TaskParams(**{**DEFAULT_TERMS, **overrides})
