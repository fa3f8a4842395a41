"""UnixFS files as IPFS stores them, computed locally: the same CIDv1 that ``ipfs add --cid-version 1
--raw-leaves`` prints, and the blocks behind it, without any daemon.

The layout is the IPFS default: 256 KiB chunks stored as ``raw`` leaves, grouped into a balanced tree of
``dag-pb`` nodes with at most 174 links each, every node carrying a UnixFS ``File`` message
(``filesize`` and one ``blocksizes`` entry per link) and every link an empty ``Name``. A file of at most
one chunk is its raw leaf, so its CID is a ``bafkrei...`` sha2-256 of the bytes. See the UnixFS spec
(https://specs.ipfs.tech/unixfs/) and the dag-pb spec (https://ipld.io/specs/codecs/dag-pb/spec/).

:func:`read_dag` reads such a file back from blocks and checks every block against its CID and every
size the tree declares, so a block store can be untrusted.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from multiformats import CID

from cotrain.errors import IntegrityError

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
# Bitswap refuses blocks above 2 MiB, so no IPFS file ever needs a larger one.
MAX_BLOCK_SIZE = 2 * 1024 * 1024
# A balanced tree of depth 8 already holds 174**8 chunks; anything deeper was built to waste our time.
MAX_DEPTH = 32

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12

_UNIXFS_RAW = 0
_UNIXFS_FILE = 2
# Protobuf wire types; dag-pb and UnixFS use no others.
_VARINT = 0
_LEN = 2


class Block(NamedTuple):
    """One block of a DAG: its CID (base32 CIDv1) and its bytes."""

    cid: str
    data: bytes


@dataclass(frozen=True)
class _Child:
    cid: bytes  # binary CID
    tsize: int  # block bytes of the whole subtree (dag-pb ``Tsize``)
    size: int  # file bytes under it (UnixFS ``blocksizes`` entry)


def compute_cid(data: bytes) -> str:
    """Return the CID ``ipfs add --cid-version 1 --raw-leaves`` gives ``data``.

    Parameters
    ----------
    data : bytes
        The whole file.

    Returns
    -------
    str
        The CIDv1 in base32 (``bafkrei...`` for files of at most 256 KiB, ``bafybei...`` above).
    """
    root = ""
    for block in iter_blocks(data):
        root = block.cid
    return root


def build_dag(data: bytes) -> tuple[str, dict[str, bytes]]:
    """Return the root CID of ``data`` and every block of its DAG, keyed by CID.

    The blocks together are as large as ``data`` (plus about 0.02 %); use :func:`iter_blocks` to write
    them somewhere without holding them all.
    """
    blocks: dict[str, bytes] = {}
    root = ""
    for block in iter_blocks(data):
        blocks[block.cid] = block.data
        root = block.cid
    return root, blocks


def iter_blocks(data: bytes, *, chunk_size: int = CHUNK_SIZE, max_links: int = MAX_LINKS) -> Iterator[Block]:
    """Yield the blocks of the UnixFS DAG of ``data``, each child before its parent, the root last.

    Parameters
    ----------
    data : bytes
        The whole file.
    chunk_size, max_links : int
        Leaf size and links per node. Only the defaults give the CIDs IPFS gives; other values exist
        so tests can build deep trees from little data.

    Yields
    ------
    Block
        ``(cid, bytes)``; the last one is the root, whose CID names the file.
    """
    if chunk_size < 1 or max_links < 2:
        raise ValueError("chunk_size must be >= 1 and max_links >= 2")
    view = memoryview(data)
    if len(view) <= chunk_size:
        # A single chunk (the empty file included) is not wrapped: the file is its raw leaf.
        leaf = bytes(data)  # no copy when data is already bytes
        yield Block(_cid_str(RAW, leaf), leaf)
        return

    # Batch the leaves, then the parents, max_links at a time until one node is left, as the js and go
    # importers do. A batch of one still gets a parent: only a single-chunk file is its own root.
    level: list[_Child] = []
    batch: list[_Child] = []
    for offset in range(0, len(view), chunk_size):
        leaf = bytes(view[offset : offset + chunk_size])
        cid = _cid_bytes(RAW, leaf)
        yield Block(_cid_text(cid), leaf)
        batch.append(_Child(cid, len(leaf), len(leaf)))
        if len(batch) == max_links:
            level.append((yield from _emit_parent(batch)))
            batch = []
    if batch:
        level.append((yield from _emit_parent(batch)))
    while len(level) > 1:
        parents = []
        for start in range(0, len(level), max_links):
            parents.append((yield from _emit_parent(level[start : start + max_links])))
        level = parents


def read_dag(root_cid: str, get_block: Callable[[str], bytes]) -> bytes:
    """Read a UnixFS file back from its blocks, checking each block and size on the way.

    Parameters
    ----------
    root_cid : str
        CID of the file (v0 or v1, any multibase).
    get_block : callable
        Returns the bytes of the block with the given base32 CIDv1; it may raise to say a block is missing.

    Returns
    -------
    bytes
        The file.

    Raises
    ------
    IntegrityError
        A block does not hash to its CID, is not a UnixFS file node, or the sizes its tree declares do
        not add up.
    """
    out = bytearray()
    _read_node(_cid_from_text(root_cid), get_block, out, expected_size=None, depth=0)
    return bytes(out)


def declared_size(root_cid: str, root_block: bytes) -> int:
    """Return the file size the root block of a UnixFS file declares, after checking it against its CID.

    Lets a store refuse a file that is too large before it fetches any other block.
    """
    cid = _cid_from_text(root_cid)
    _verify(cid, root_block)
    if cid.codec == RAW:
        return len(root_block)
    _, unixfs = _decode_file_node(cid, root_block)
    return unixfs.content_size


def verify_block(cid: str, block: bytes) -> None:
    """Raise :class:`IntegrityError` unless ``block`` hashes to the digest in ``cid``."""
    _verify(_cid_from_text(cid), block)


def canonical_cid(cid: str) -> str:
    """Return ``cid`` as a base32 CIDv1 string, the form this package stores and compares.

    Raises
    ------
    IntegrityError
        ``cid`` is not the CID of a raw or dag-pb block hashed with sha2-256.
    """
    return str(_cid_from_text(cid))


def same_cid(a: str, b: str) -> bool:
    """Return whether two CID strings name the same content (CIDv0 and v1, any multibase)."""
    return _cid_from_text(a) == _cid_from_text(b)


@dataclass(frozen=True)
class _Cid:
    codec: int
    digest: bytes  # sha2-256, the only hash IPFS uses by default and the only one read here

    def __str__(self) -> str:
        return _cid_text(b"\x01" + _varint(self.codec) + b"\x12\x20" + self.digest)


def _cid_from_text(text: str) -> _Cid:
    # multiformats validates types at run time and costs about a millisecond a call, so it only parses
    # the text CIDs callers give; links inside blocks are parsed by _cid_from_bytes.
    try:
        decoded = CID.decode(text.strip())
    except (LookupError, ValueError, TypeError) as exc:
        raise IntegrityError(f"{text!r} is not a valid CID: {exc}") from exc
    return _cid_from_bytes(bytes(decoded), where=text)


def _cid_from_bytes(raw: bytes, *, where: object) -> _Cid:
    if len(raw) == 34 and raw[:2] == b"\x12\x20":  # CIDv0: a bare sha2-256 multihash of a dag-pb block
        return _Cid(DAG_PB, raw[2:])
    version, pos = _read_varint(raw, 0, where)
    codec, pos = _read_varint(raw, pos, where)
    hash_code, pos = _read_varint(raw, pos, where)
    length, pos = _read_varint(raw, pos, where)
    if version != 1:
        raise IntegrityError(f"{where}: CID version {version} is not supported")
    if codec not in (RAW, DAG_PB):
        raise IntegrityError(f"{where}: codec 0x{codec:x} is not part of a UnixFS file (raw or dag-pb)")
    if hash_code != SHA2_256 or length != 32 or len(raw) - pos != 32:
        raise IntegrityError(
            f"{where}: only sha2-256 CIDs are read here (hash 0x{hash_code:x}, {length} bytes)"
        )
    return _Cid(codec, raw[pos:])


def _verify(cid: _Cid, block: bytes) -> None:
    if hashlib.sha256(block).digest() != cid.digest:
        raise IntegrityError(f"block {cid} does not hash to its CID: the store holds corrupt or forged data")


# --- building ---------------------------------------------------------------------------------------


def _emit_parent(children: list[_Child]) -> Generator[Block, None, _Child]:
    # Generator with a return value, so callers can `yield from` it and keep the parent's link.
    node = _file_node(children)
    cid = _cid_bytes(DAG_PB, node)
    yield Block(_cid_text(cid), node)
    return _Child(cid, len(node) + sum(c.tsize for c in children), _size(children))


def _size(children: list[_Child]) -> int:
    return sum(c.size for c in children)


def _file_node(children: list[_Child]) -> bytes:
    unixfs = bytearray(b"\x08\x02")  # Type = File
    unixfs += b"\x18" + _varint(_size(children))  # filesize
    for child in children:
        unixfs += b"\x20" + _varint(child.size)  # blocksizes, unpacked as in go and js
    node = bytearray()
    for child in children:
        # Hash, an empty Name (present: dropping it changes the CID), Tsize.
        link = b"\x0a" + _varint(len(child.cid)) + child.cid + b"\x12\x00" + b"\x18" + _varint(child.tsize)
        node += b"\x12" + _varint(len(link)) + link
    node += b"\x0a" + _varint(len(unixfs)) + unixfs  # Data comes after Links in canonical dag-pb
    return bytes(node)


def _cid_bytes(codec: int, block: bytes) -> bytes:
    return b"\x01" + _varint(codec) + b"\x12\x20" + hashlib.sha256(block).digest()


def _cid_str(codec: int, block: bytes) -> str:
    return _cid_text(_cid_bytes(codec, block))


def _cid_text(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode("ascii").lower().rstrip("=")


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


# --- reading ----------------------------------------------------------------------------------------


@dataclass
class _UnixFsData:
    type: int = -1
    data: bytes = b""
    filesize: int | None = None
    blocksizes: list[int] = field(default_factory=list)

    @property
    def content_size(self) -> int:
        return len(self.data) + sum(self.blocksizes)


def _read_node(
    cid: _Cid, get_block: Callable[[str], bytes], out: bytearray, *, expected_size: int | None, depth: int
) -> None:
    if depth > MAX_DEPTH:
        raise IntegrityError(f"DAG deeper than {MAX_DEPTH} levels at {cid}; refusing to read it")
    block = get_block(str(cid))
    _verify(cid, block)
    if cid.codec == RAW:
        if expected_size is not None and len(block) != expected_size:
            raise IntegrityError(f"leaf {cid} holds {len(block)} bytes, parent says {expected_size}")
        out += block
        return
    links, unixfs = _decode_file_node(cid, block)
    if expected_size is not None and unixfs.content_size != expected_size:
        raise IntegrityError(f"node {cid} holds {unixfs.content_size} bytes, parent says {expected_size}")
    out += unixfs.data
    for link, size in zip(links, unixfs.blocksizes, strict=True):
        _read_node(link, get_block, out, expected_size=size, depth=depth + 1)


def _decode_file_node(cid: _Cid, block: bytes) -> tuple[list[_Cid], _UnixFsData]:
    links, data = _decode_pbnode(cid, block)
    unixfs = _decode_unixfs(cid, data)
    if unixfs.type not in (_UNIXFS_FILE, _UNIXFS_RAW):
        raise IntegrityError(f"{cid} is a UnixFS node of type {unixfs.type}, not a file")
    sizes = unixfs.blocksizes
    if len(sizes) != len(links):
        raise IntegrityError(f"{cid} has {len(links)} links but {len(sizes)} block sizes")
    # A zero-sized child adds no bytes but costs a fetch; an honest importer never writes one.
    if any(size == 0 for size in sizes):
        raise IntegrityError(f"{cid} links to an empty child")
    if unixfs.filesize is not None and unixfs.filesize != unixfs.content_size:
        raise IntegrityError(f"{cid} declares {unixfs.filesize} bytes, its parts hold {unixfs.content_size}")
    return links, unixfs


def _decode_pbnode(cid: _Cid, block: bytes) -> tuple[list[_Cid], bytes]:
    links: list[_Cid] = []
    data: bytes | None = None
    for fld in _fields(cid, block):
        if fld.key == (2, _LEN) and data is None:
            links.append(_decode_pblink(cid, fld.payload))
        elif fld.key == (1, _LEN) and data is None:
            data = fld.payload
        else:
            raise IntegrityError(f"{cid} is not canonical dag-pb (field {fld.number}/{fld.wire})")
    if data is None:
        raise IntegrityError(f"{cid} is a dag-pb node without UnixFS data")
    return links, data


def _decode_pblink(cid: _Cid, raw: bytes) -> _Cid:
    target: _Cid | None = None
    for fld in _fields(cid, raw):
        if fld.key == (1, _LEN) and target is None:
            target = _cid_from_bytes(fld.payload, where=f"a link in {cid}")
        elif fld.key not in ((2, _LEN), (3, _VARINT)):  # Name, Tsize: not needed to read
            raise IntegrityError(f"{cid} has a malformed link (field {fld.number}/{fld.wire})")
    if target is None:
        raise IntegrityError(f"{cid} has a link without a CID")
    return target


def _decode_unixfs(cid: _Cid, raw: bytes) -> _UnixFsData:
    result = _UnixFsData()
    sizes: list[int] = []
    for fld in _fields(cid, raw):
        if fld.key == (1, _VARINT):
            result.type = fld.varint
        elif fld.key == (2, _LEN):
            result.data = fld.payload
        elif fld.key == (3, _VARINT):
            result.filesize = fld.varint
        elif fld.key == (4, _VARINT):
            sizes.append(fld.varint)
        elif fld.key == (4, _LEN):  # packed: no importer writes it, but protobuf allows it
            sizes.extend(_packed_varints(cid, fld.payload))
        elif fld.number in (5, 6, 7, 8):  # hashType, fanout, mode, mtime: irrelevant to a file's bytes
            continue
        else:
            raise IntegrityError(
                f"{cid} has a malformed UnixFS message (field {fld.number}, wire type {fld.wire})"
            )
    result.blocksizes = sizes
    return result


class _Field(NamedTuple):
    number: int
    wire: int
    varint: int  # the value of a varint field, else 0
    payload: bytes  # the bytes of a length-delimited field, else empty

    @property
    def key(self) -> tuple[int, int]:
        return self.number, self.wire


def _fields(cid: _Cid, buf: bytes) -> Iterator[_Field]:
    """Yield the fields of a protobuf message that uses only varint and length-delimited fields."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos, cid)
        number, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos, cid)
            yield _Field(number, wire, value, b"")
        elif wire == _LEN:
            length, pos = _read_varint(buf, pos, cid)
            if pos + length > len(buf):
                raise IntegrityError(f"{cid} is truncated protobuf")
            yield _Field(number, wire, 0, buf[pos : pos + length])
            pos += length
        else:
            raise IntegrityError(f"{cid} uses protobuf wire type {wire}, which dag-pb and UnixFS never do")


def _packed_varints(cid: _Cid, buf: bytes) -> Iterator[int]:
    pos = 0
    while pos < len(buf):
        value, pos = _read_varint(buf, pos, cid)
        yield value


def _read_varint(buf: bytes, pos: int, where: object) -> tuple[int, int]:
    value = shift = 0
    while pos < len(buf) and shift < 64:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise IntegrityError(f"{where}: truncated or overlong varint")
