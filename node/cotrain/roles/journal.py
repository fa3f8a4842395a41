"""A node's small local journal: what it must remember between restarts and cannot read from the chain.

The chain is the source of truth; the journal only keeps secrets and intents, such as the salt of an update
that was committed but not yet revealed. Each entry is one JSON file written atomically (temp file, fsync,
rename), so a crash leaves either the old entry or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from cotrain.errors import ConfigError


class Journal:
    """JSON entries under a directory, one file per key."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ConfigError(f"journal key {key!r} is not a plain file name")
        return self.root / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The entry stored under ``key``, or None."""
        path = self._path(key)
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Store ``entry`` under ``key``, durably, replacing any earlier entry."""
        path = self._path(key)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(entry, file, sort_keys=True)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        # The rename itself is durable only once the directory is flushed.
        directory = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
