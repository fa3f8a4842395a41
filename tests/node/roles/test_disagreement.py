"""Tests for cotrain.roles.disagreement.differing_fields: the paths at which two records differ."""

from __future__ import annotations

from cotrain.roles.disagreement import differing_fields


def test_equal_documents_differ_nowhere() -> None:
    document = {"new_model": {"digest": "0x01"}, "updates": [{"verdict": "accepted"}]}

    assert differing_fields(document, dict(document)) == []


def test_nested_values_are_named_by_dotted_paths_in_document_order() -> None:
    mine = {
        "new_model": {"cid": "bafy1", "digest": "0x01"},
        "updates": [{"verdict": "accepted", "score": "1"}],
    }
    theirs = {
        "new_model": {"cid": "bafy1", "digest": "0x02"},
        "updates": [{"verdict": "rejected", "score": "1"}],
    }

    assert differing_fields(mine, theirs) == ["new_model.digest", "updates[0].verdict"]


def test_missing_keys_and_lists_of_other_lengths_are_differences() -> None:
    mine = {"a": 1, "updates": [1, 2]}
    theirs = {"b": 2, "updates": [1]}

    assert differing_fields(mine, theirs) == ["a", "updates", "b"]


def test_different_top_level_values_name_the_whole_record() -> None:
    assert differing_fields(1, 2) == ["(the whole record)"]
