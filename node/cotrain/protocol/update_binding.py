"""What binds an update file to its task, round, contributor and base model: its header metadata."""

from __future__ import annotations

from collections.abc import Mapping

#: Metadata keys binding an update file to its task, round, contributor and base model.
UPDATE_BINDING = ("task_id", "round", "contributor", "base_digest", "samples")


def update_metadata(task_id: int, round_: int, contributor: str, base_digest: bytes, samples: int) -> dict:
    """The header metadata of an update file (all strings, as safetensors requires)."""
    return {
        "task_id": str(task_id),
        "round": str(round_),
        "contributor": contributor.lower(),
        "base_digest": "0x" + base_digest.hex(),
        "samples": str(samples),
    }


def binding_matches(metadata: Mapping[str, str], expected: Mapping[str, str]) -> bool:
    """Whether an update's metadata binds it to exactly the expected task, round, contributor and base."""
    return all(metadata.get(key) == expected[key] for key in UPDATE_BINDING if key != "samples")
