"""Tests for cotrain.protocol.update_binding: the metadata that binds an update file to its round."""

from __future__ import annotations

import pytest
from cotrain.protocol.update_binding import UPDATE_BINDING, binding_matches, update_metadata

CONTRIBUTOR = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BASE_DIGEST = bytes(range(32))


def test_update_metadata_binds_task_round_contributor_base_and_samples() -> None:
    metadata = update_metadata(3, 0, CONTRIBUTOR, BASE_DIGEST, 427)

    assert metadata == {
        "task_id": "3",
        "round": "0",
        "contributor": CONTRIBUTOR.lower(),
        "base_digest": "0x" + BASE_DIGEST.hex(),
        "samples": "427",
    }
    assert tuple(metadata) == UPDATE_BINDING


def test_binding_matches_exactly_the_same_binding_and_ignores_samples_and_other_keys() -> None:
    expected = update_metadata(3, 1, CONTRIBUTOR, BASE_DIGEST, 427)

    assert binding_matches(expected, expected)
    assert binding_matches({**expected, "samples": "1"}, expected)
    assert binding_matches({**expected, "cotrain.format": "cotrain.update/1"}, expected)


@pytest.mark.parametrize(
    "change",
    [
        {"task_id": "4"},
        {"task_id": "03"},
        {"round": "0"},
        {"contributor": CONTRIBUTOR},
        {"contributor": "0x" + "00" * 20},
        {"base_digest": BASE_DIGEST.hex()},
        {"base_digest": "0x" + bytes(32).hex()},
    ],
)
def test_binding_matches_refuses_any_other_binding(change: dict[str, str]) -> None:
    expected = update_metadata(3, 1, CONTRIBUTOR, BASE_DIGEST, 427)

    assert not binding_matches({**expected, **change}, expected)


@pytest.mark.parametrize("key", ["task_id", "round", "contributor", "base_digest"])
def test_binding_matches_refuses_a_missing_key(key: str) -> None:
    expected = update_metadata(3, 1, CONTRIBUTOR, BASE_DIGEST, 427)
    metadata = {k: v for k, v in expected.items() if k != key}

    assert not binding_matches(metadata, expected)
