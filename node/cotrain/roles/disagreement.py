"""When validators propose different results for a round: who proposed what, and which fields of the round
record differ, so a validator that lost (or a round that failed for want of a quorum) says why."""

from __future__ import annotations

from typing import Any

from cotrain.chain.market import Proposal
from cotrain.errors import CotrainError
from cotrain.protocol.round_record import RoundRecord
from cotrain.protocol.task_spec import FileRef
from cotrain.roles.task_view import TaskView

#: How many differing fields a message lists before it says how many more there are.
SHOWN_FIELDS = 6


def proposals_by_result(view: TaskView, round_: int) -> dict[bytes, tuple[Proposal, list[str]]]:
    """Each distinct result proposed for ``round_`` (by proposal hash): the proposal and who proposed it."""
    results: dict[bytes, tuple[Proposal, list[str]]] = {}
    for event in view.events("RoundProposed", round_):
        entry = results.setdefault(event.args["proposalHash"], (event.args["proposal"], []))
        entry[1].append(event.args["validator"])
    return results


def differing_fields(mine: Any, theirs: Any, path: str = "") -> list[str]:
    """The dotted paths (``updates[2].verdict``) at which two JSON-like values differ, in document order."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        keys = list(mine) + [key for key in theirs if key not in mine]
        return [
            found
            for key in keys
            for found in differing_fields(mine.get(key), theirs.get(key), f"{path}.{key}" if path else key)
        ]
    if isinstance(mine, list) and isinstance(theirs, list) and len(mine) == len(theirs):
        return [
            found
            for i, (a, b) in enumerate(zip(mine, theirs, strict=True))
            for found in differing_fields(a, b, f"{path}[{i}]")
        ]
    return [] if mine == theirs else [path or "(the whole record)"]


def describe_differences(mine: RoundRecord, theirs: RoundRecord) -> str:
    """``"updates[1].reward (500 here, 250 there), ..."``: what differs between two round records."""
    a, b = mine.model_dump(mode="json"), theirs.model_dump(mode="json")
    paths = differing_fields(a, b)
    shown = [f"{p} ({_at(a, p)} here, {_at(b, p)} there)" for p in paths[:SHOWN_FIELDS]]
    more = f" and {len(paths) - SHOWN_FIELDS} more" if len(paths) > SHOWN_FIELDS else ""
    return ", ".join(shown) + more if shown else "no field (the records are equal)"


def explain_against(view: TaskView, mine: RoundRecord, other: Proposal) -> str:
    """How ``mine`` differs from the record another proposal names (fetched and checked by its digest)."""
    try:
        theirs = view.records.load(FileRef(cid=other.record_cid, digest=other.record_digest))
    except CotrainError as error:
        return f"their record {other.record_cid} could not be read ({error})"
    return describe_differences(mine, theirs)


def _at(document: Any, path: str) -> str:
    """The value at a path :func:`differing_fields` produced, shortened for a log line."""
    value = document
    for part in path.replace("[", ".[").split("."):
        if not part:
            continue
        try:
            value = value[int(part[1:-1])] if part.startswith("[") else value.get(part)
        except (IndexError, AttributeError, TypeError, ValueError):
            return "-"
    text = "absent" if value is None else str(value)
    return text if len(text) <= 24 else text[:21] + "..."
