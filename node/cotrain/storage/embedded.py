"""A content store in a local directory: IPFS's blocks and CIDs, no daemon.

Blocks live under ``<root>/blocks/<shard>/<cid>``, the shard being the two characters before the CID's
last one (as IPFS's flatfs does), so no directory grows past a few thousand entries. Each block is
written to a temporary file, flushed to disk and renamed into place, and a file's root block is renamed
last: a crash leaves at most unused blocks and temp files, never a torn block or a root whose blocks are
missing. Several processes may add and read in one directory at once; identical blocks simply replace
each other.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cotrain.errors import IntegrityError, StorageError
from cotrain.storage.base import ContentNotFoundError, ContentTooLargeError
from cotrain.storage.unixfs import MAX_BLOCK_SIZE, Block, canonical_cid, declared_size, iter_blocks, read_dag


class EmbeddedStore:
    """Content store in a directory on this machine, with the same CIDs an IPFS daemon gives.

    Parameters
    ----------
    root : Path
        The store's directory; created if missing.
    """

    kind: str = "embedded"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blocks = self.root / "blocks"
        try:
            self._blocks.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the content store at {self.root}: {exc}") from exc

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    def add(self, data: bytes) -> str:
        """Store ``data`` and return its CID.

        Raises
        ------
        StorageError
            A block could not be written (permissions, disk full).
        """
        dirs: set[Path] = set()
        previous: Block | None = None
        for block in iter_blocks(data):  # the root comes last
            if previous is not None:
                self._write_block(previous)
                # Flushed even if the block was already there: another process may not have flushed it yet.
                dirs.add(self._path(previous.cid).parent)
            previous = block
        assert previous is not None
        # The root goes last, after every other block's rename is on disk, so whoever sees the root
        # (`has`, a reader in another process, this machine after a power cut) finds the whole file.
        for directory in dirs:
            _fsync_dir(directory)
        self._write_block(previous)
        _fsync_dir(self._path(previous.cid).parent)
        return previous.cid

    def get(self, cid: str, *, max_size: int) -> bytes:
        """Return the content named ``cid``, checking every block against its CID.

        Raises
        ------
        ContentNotFoundError
            The store does not hold ``cid`` or one of its blocks.
        ContentTooLargeError
            The file is larger than ``max_size``; only its root block was read.
        IntegrityError
            A block on disk is corrupt.
        """
        canonical = canonical_cid(cid)
        size = declared_size(canonical, self._read_block(canonical))
        if size > max_size:
            raise ContentTooLargeError(f"{cid} is {size} bytes, more than the {max_size} allowed")
        return read_dag(canonical, self._read_block)

    def has(self, cid: str) -> bool:
        """Return whether the file's root block is here (and so, as it was written last, the whole file)."""
        return self.block_path(cid).is_file()

    def block_path(self, cid: str) -> Path:
        """Return where the block named ``cid`` is, or would be, stored."""
        return self._path(canonical_cid(cid))

    def _path(self, canonical: str) -> Path:
        # Callers pass CIDs this package wrote: parsing them again with multiformats would cost a
        # millisecond and leave reference cycles that keep each block alive until the next gc.
        return self._blocks / canonical[-3:-1] / canonical

    def _write_block(self, block: Block) -> None:
        cid = block.cid
        path = self._path(cid)
        if path.is_file():
            return  # content-addressed: whatever is there is this very block, or is caught on read
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError as exc:
            raise StorageError(f"cannot write to the content store at {self.root}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(block.data)
                f.flush()
                os.fsync(f.fileno())
                os.fchmod(f.fileno(), 0o644)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StorageError(f"cannot write block {cid} to {path}: {exc}") from exc

    def _read_block(self, cid: str) -> bytes:
        path = self._path(cid)
        try:
            with path.open("rb") as f:
                block = f.read(MAX_BLOCK_SIZE + 1)
        except FileNotFoundError as exc:
            raise ContentNotFoundError(f"{cid} is not in the content store at {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read block {cid} from {path}: {exc}") from exc
        if len(block) > MAX_BLOCK_SIZE:
            raise IntegrityError(f"block file {path} is larger than any block; the store is corrupt")
        return block


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once its directory is flushed.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError as exc:
        raise StorageError(f"cannot open {directory} to flush it: {exc}") from exc
    try:
        os.fsync(fd)
    except OSError as exc:
        raise StorageError(f"cannot flush {directory} to disk: {exc}") from exc
    finally:
        os.close(fd)
