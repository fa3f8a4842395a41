"""Tests for cotrain.roles.journal: entries survive restarts and crashes; keys stay plain file names."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cotrain.errors import ConfigError
from cotrain.roles import journal as journal_module
from cotrain.roles.journal import Journal

SALTED = {"cid": "bafkreiexample", "salt": "00" * 32, "samples": 427}


def _files(root: Path) -> list[str]:
    return sorted(path.name for path in root.iterdir())


def test_an_entry_is_read_back_after_a_restart(tmp_path: Path) -> None:
    Journal(tmp_path / "journal").put("round-0", SALTED)

    restarted = Journal(tmp_path / "journal")

    assert restarted.get("round-0") == SALTED
    assert restarted.get("round-1") is None
    assert _files(tmp_path / "journal") == ["round-0.json"]
    assert json.loads((tmp_path / "journal" / "round-0.json").read_text(encoding="utf-8")) == SALTED


def test_put_replaces_the_earlier_entry(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.put("claimed-0", {"amount": 0})

    journal.put("claimed-0", {"amount": 5})

    assert journal.get("claimed-0") == {"amount": 5}
    assert _files(tmp_path) == ["claimed-0.json"]


@pytest.mark.parametrize("key", ["", "a/b", "../round-0", ".hidden", "..", "."])
def test_a_key_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, key: str) -> None:
    journal = Journal(tmp_path / "journal")

    with pytest.raises(ConfigError, match="not a plain file name"):
        journal.put(key, SALTED)
    with pytest.raises(ConfigError, match="not a plain file name"):
        journal.get(key)
    assert _files(tmp_path) == ["journal"]
    assert _files(tmp_path / "journal") == []


def test_an_entry_that_fails_half_written_leaves_the_previous_one(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.put("round-0", SALTED)

    # json.dump writes the first keys, then meets a value it cannot encode.
    with pytest.raises(TypeError):
        journal.put("round-0", {"a": "written", "z": object()})

    assert journal.get("round-0") == SALTED
    assert _files(tmp_path) == ["round-0.json"]


@pytest.mark.parametrize(
    ("step", "error"),
    [("fsync", OSError("disk gone")), ("replace", KeyboardInterrupt())],
    ids=["fsync", "rename"],
)
def test_a_crash_before_the_rename_leaves_the_previous_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str, error: BaseException
) -> None:
    journal = Journal(tmp_path)
    journal.put("round-0", SALTED)

    def crash(*args: object) -> None:
        raise error

    monkeypatch.setattr(journal_module.os, step, crash)
    with pytest.raises(type(error)):
        journal.put("round-0", {"salt": "new"})
    monkeypatch.undo()

    assert journal.get("round-0") == SALTED
    assert _files(tmp_path) == ["round-0.json"]


_KILLED_BEFORE_RENAME = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from cotrain.roles import journal

    journal.os.replace = lambda *args: os._exit(9)  # the process dies with the new entry in a temp file
    journal.Journal(Path(sys.argv[1])).put("round-0", {"salt": "new"})
    """
)


def test_a_process_killed_mid_put_leaves_the_previous_entry(tmp_path: Path) -> None:
    Journal(tmp_path).put("round-0", SALTED)

    result = subprocess.run(
        [sys.executable, "-c", _KILLED_BEFORE_RENAME, str(tmp_path)],
        capture_output=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 9, result.stderr
    (leftover,) = [name for name in _files(tmp_path) if name != "round-0.json"]
    assert leftover.startswith(".round-0.")
    assert json.loads((tmp_path / leftover).read_text(encoding="utf-8")) == {"salt": "new"}
    restarted = Journal(tmp_path)
    assert restarted.get("round-0") == SALTED
    restarted.put("round-0", {"salt": "newer"})
    assert restarted.get("round-0") == {"salt": "newer"}


def test_put_flushes_the_file_then_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without the directory flush, a power cut after put may lose the rename and so the whole entry.
    journal = Journal(tmp_path)
    entry = tmp_path / "round-0.json"
    real_fsync = os.fsync
    flushed: list[tuple[bool, bool]] = []

    def spy(fd: int) -> None:
        flushed.append((stat.S_ISDIR(os.fstat(fd).st_mode), entry.exists()))
        real_fsync(fd)

    monkeypatch.setattr(journal_module.os, "fsync", spy)
    journal.put("round-0", SALTED)

    # (is a directory, entry in place): the temp file before the rename, the directory after it.
    assert flushed == [(False, False), (True, True)]
