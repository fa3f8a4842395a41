"""Byte-exact Python port of OpenZeppelin's ``StandardMerkleTree`` (npm ``@openzeppelin/merkle-tree`` 1.0.x).

Roots, proofs and :meth:`StandardMerkleTree.dump` output are interchangeable with the JavaScript library
(default ``sortLeaves: true``), so proofs built here verify with OpenZeppelin's ``MerkleProof`` on chain.
The reward/slash markets use leaves ``(uint256 index, address account, uint256 amount)``; see
:func:`allocation_tree`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import eth_abi
from eth_abi.exceptions import EncodingError, ParseError
from eth_abi.grammar import ABIType, BasicType, TupleType, parse
from eth_utils import (
    is_checksum_address,
    is_checksum_formatted_address,
    is_hex_address,
    keccak,
    to_checksum_address,
)

ALLOCATION_TYPES: tuple[str, ...] = ("uint256", "address", "uint256")
DUMP_FORMAT = "standard-v1"
_UINT256_MAX = 2**256 - 1


class MerkleError(ValueError):
    """Invalid Merkle tree input, proof or dump."""


def leaf_hash(types: Sequence[str], values: Sequence[Any]) -> bytes:
    """Hash one leaf the way ``StandardMerkleTree`` does.

    Parameters
    ----------
    types : Sequence[str]
        Solidity ABI types of the leaf fields, e.g. ``["uint256", "address", "uint256"]``.
    values : Sequence[Any]
        One value per type: ``int`` for integer types (``bool`` is rejected), hex strings in any case for
        addresses, ``bytes`` for ``bytesN``/``bytes``.

    Returns
    -------
    bytes
        ``keccak256(keccak256(abi.encode(values)))``, 32 bytes.

    Raises
    ------
    MerkleError
        If the values cannot be ABI-encoded as ``types``.
    """
    if isinstance(types, str) or isinstance(values, str | bytes):
        raise MerkleError("types and values must be sequences with one entry per leaf field, not a string")
    if len(types) != len(values):
        raise MerkleError(
            f"leaf {values!r} has {len(values)} fields but the encoding {list(types)} has {len(types)}"
        )
    try:
        encoded = eth_abi.encode(list(types), list(values))
    except (EncodingError, ParseError, TypeError, ValueError) as exc:
        raise MerkleError(f"cannot ABI-encode leaf {values!r} as {list(types)}: {exc}") from exc
    return keccak(keccak(encoded))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """Hash two nodes in sorted order, like OpenZeppelin's ``standardNodeHash`` and ``MerkleProof``."""
    return keccak(a + b if a <= b else b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Fold ``proof`` onto ``leaf`` and return the implied root (32 bytes)."""
    node = _check_node(leaf, "leaf")
    for sibling in proof:
        node = hash_pair(node, _check_node(sibling, "proof element"))
    return node


def verify(root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
    """Return whether ``proof`` links the leaf hash ``leaf`` (see :func:`leaf_hash`) to ``root``."""
    return process_proof(leaf, proof) == _check_node(root, "root")


class StandardMerkleTree:
    """Complete binary Merkle tree in OpenZeppelin's array layout (root at 0, children of i at 2i+1, 2i+2).

    Build it with :meth:`of` or :meth:`load`. The constructor (and so :meth:`load`) checks every hash, and
    :meth:`of` computes every hash itself, so an instance is always consistent with its values.

    Parameters
    ----------
    tree : Sequence[bytes]
        All ``2n - 1`` nodes, each 32 bytes.
    values : Sequence[Sequence[Any]]
        The ``n`` leaf values in caller order.
    tree_indices : Sequence[int]
        Position in ``tree`` of each value's leaf.
    leaf_encoding : Sequence[str]
        ABI types of the leaf fields.
    """

    _tree: list[bytes]
    _values: tuple[tuple[Any, ...], ...]
    _tree_indices: tuple[int, ...]
    _leaf_encoding: tuple[str, ...]

    def __init__(
        self,
        *,
        tree: Sequence[bytes],
        values: Sequence[Sequence[Any]],
        tree_indices: Sequence[int],
        leaf_encoding: Sequence[str],
    ) -> None:
        self._assemble(tree, values, tree_indices, leaf_encoding)
        n = len(self._values)
        leaf_positions = range(n - 1, 2 * n - 1)
        if sorted(self._tree_indices) != list(leaf_positions):
            raise MerkleError(f"tree indices must place each value on a distinct leaf in {leaf_positions}")
        self._tree = [_check_node(node, f"tree node {i}") for i, node in enumerate(self._tree)]
        for i, (value, position) in enumerate(zip(self._values, self._tree_indices, strict=True)):
            if self._tree[position] != leaf_hash(self._leaf_encoding, value):
                raise MerkleError(f"value {i} {value!r} does not hash to its leaf at tree index {position}")
        for i in range(n - 2, -1, -1):
            if self._tree[i] != hash_pair(self._tree[2 * i + 1], self._tree[2 * i + 2]):
                raise MerkleError(f"tree node {i} is not the hash of its children; the tree was altered")

    def _assemble(
        self,
        tree: Sequence[bytes],
        values: Sequence[Sequence[Any]],
        tree_indices: Sequence[int],
        leaf_encoding: Sequence[str],
    ) -> None:
        """Hold the parts after checking their counts (not their hashes)."""
        n = len(values)
        if n == 0:
            raise MerkleError("a Merkle tree needs at least one value; pass a non-empty list")
        if len(tree) != 2 * n - 1 or len(tree_indices) != n:
            raise MerkleError(f"{n} values need exactly {2 * n - 1} tree nodes and {n} tree indices")
        self._tree = list(tree)
        self._values = tuple(tuple(value) for value in values)
        self._tree_indices = tuple(tree_indices)
        self._leaf_encoding = tuple(leaf_encoding)

    @classmethod
    def of(cls, values: Sequence[Sequence[Any]], types: Sequence[str]) -> StandardMerkleTree:
        """Build a tree like ``StandardMerkleTree.of(values, types)`` with sorted leaves.

        Parameters
        ----------
        values : Sequence[Sequence[Any]]
            Leaf values, each with one field per entry of ``types`` (see :func:`leaf_hash`).
        types : Sequence[str]
            ABI types of the leaf fields.

        Raises
        ------
        MerkleError
            If ``values`` is empty or a value cannot be encoded.
        """
        if len(values) == 0:
            raise MerkleError("cannot build a Merkle tree from zero values; pass at least one leaf")
        hashes = [leaf_hash(types, value) for value in values]
        # Stable sort, like JS Array.prototype.sort, so duplicate leaves keep caller order.
        order = sorted(range(len(values)), key=hashes.__getitem__)
        size = 2 * len(values) - 1
        tree: list[bytes] = [b""] * size
        tree_indices = [0] * len(values)
        for leaf_number, value_index in enumerate(order):
            tree_indices[value_index] = size - 1 - leaf_number
            tree[size - 1 - leaf_number] = hashes[value_index]
        for i in range(size - len(values) - 1, -1, -1):
            tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        # Every node was hashed just above, so checking them again (as the constructor does for a dump from
        # elsewhere) would only double the cost: about 0.5 s for 1,000 allocations.
        built = cls.__new__(cls)
        built._assemble(tree, values, tree_indices, types)
        return built

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> StandardMerkleTree:
        """Rebuild a tree from :meth:`dump` output or the JSON of OpenZeppelin's ``tree.dump()``.

        Raises
        ------
        MerkleError
            If the dump is malformed or any hash does not match its values.
        """
        if not isinstance(data, Mapping) or data.get("format") != DUMP_FORMAT:
            raise MerkleError(f"unknown Merkle dump format; expected a mapping with format {DUMP_FORMAT!r}")
        try:
            types = [str(t) for t in data["leafEncoding"]]
            abi_types = [parse(t) for t in types]
            values = [
                tuple(_walk(t, v, _scalar_from_json) for t, v in zip(abi_types, entry["value"], strict=True))
                for entry in data["values"]
            ]
            tree_indices = [_json_int(entry["treeIndex"]) for entry in data["values"]]
            tree = [bytes.fromhex(node.removeprefix("0x")) for node in data["tree"]]
        except (KeyError, TypeError, ValueError, AttributeError, ParseError) as exc:
            raise MerkleError(f"malformed Merkle dump ({type(exc).__name__}: {exc}); regenerate it") from exc
        return cls(tree=tree, values=values, tree_indices=tree_indices, leaf_encoding=types)

    @property
    def root(self) -> bytes:
        """The 32-byte Merkle root."""
        return self._tree[0]

    @property
    def values(self) -> tuple[tuple[Any, ...], ...]:
        """The leaf values in caller order."""
        return self._values

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        """ABI types of the leaf fields."""
        return self._leaf_encoding

    def __len__(self) -> int:
        return len(self._values)

    def leaf(self, i: int) -> bytes:
        """Return the leaf hash of the ``i``-th value."""
        return self._tree[self._tree_indices[self._check_index(i)]]

    def proof(self, i: int) -> list[bytes]:
        """Return the sibling hashes from the ``i``-th value's leaf up to the root (``getProof(i)``)."""
        position = self._tree_indices[self._check_index(i)]
        siblings = []
        while position > 0:
            siblings.append(self._tree[position - 1 if position % 2 == 0 else position + 1])
            position = (position - 1) // 2
        return siblings

    def verify(self, i: int, proof: Sequence[bytes]) -> bool:
        """Return whether ``proof`` proves the ``i``-th value against this tree's root."""
        return verify(self.root, self.leaf(i), proof)

    def dump(self) -> dict[str, Any]:
        """Return the JSON-ready structure of OpenZeppelin's ``tree.dump()`` (integers as decimal strings)."""
        abi_types = [parse(t) for t in self._leaf_encoding]
        return {
            "format": DUMP_FORMAT,
            "leafEncoding": list(self._leaf_encoding),
            "tree": ["0x" + node.hex() for node in self._tree],
            "values": [
                {
                    "value": [_walk(t, v, _scalar_to_json) for t, v in zip(abi_types, value, strict=True)],
                    "treeIndex": position,
                }
                for value, position in zip(self._values, self._tree_indices, strict=True)
            ],
        }

    def _check_index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(self._values):
            raise MerkleError(f"value index {i!r} out of range; the tree holds {len(self._values)} values")
        return i


@dataclass(frozen=True)
class Allocation:
    """One reward or slash entry: ``amount`` (token base units) for ``account``.

    ``account`` accepts any-case hex and is stored checksummed; a mixed-case address with a wrong
    checksum is rejected because it usually means a typo.
    """

    account: str
    amount: int

    def __post_init__(self) -> None:
        is_address = (
            isinstance(self.account, str) and self.account.startswith("0x") and is_hex_address(self.account)
        )
        if not is_address:
            raise MerkleError(f"account {self.account!r} is not a 0x-prefixed 20-byte hex address")
        if is_checksum_formatted_address(self.account) and not is_checksum_address(self.account):
            raise MerkleError(
                f"account {self.account} has an invalid EIP-55 checksum; fix the typo or pass it in lowercase"
            )
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise MerkleError(f"amount for {self.account} must be an int in base units, got {self.amount!r}")
        if not 0 <= self.amount <= _UINT256_MAX:
            raise MerkleError(f"amount {self.amount} for {self.account} must be between 0 and 2**256 - 1")
        object.__setattr__(self, "account", to_checksum_address(self.account))


def allocation_tree(allocations: Sequence[Allocation]) -> StandardMerkleTree:
    """Build the market's ``(uint256 index, address account, uint256 amount)`` tree.

    ``index`` is the allocation's position in ``allocations`` (the contract's claimed-bitmap slot), not
    its position in the tree.

    Raises
    ------
    MerkleError
        If ``allocations`` is empty, holds a non-:class:`Allocation`, or repeats an account.
    """
    if len(allocations) == 0:
        raise MerkleError("no allocations: publish a root only when at least one account is owed or slashed")
    first_seen: dict[str, int] = {}
    for i, allocation in enumerate(allocations):
        if not isinstance(allocation, Allocation):
            raise MerkleError(f"allocation {i} is {type(allocation).__name__}, expected Allocation")
        if allocation.account in first_seen:
            first = first_seen[allocation.account]
            raise MerkleError(
                f"account {allocation.account} appears at positions {first} and {i}; "
                "merge its amounts into a single allocation"
            )
        first_seen[allocation.account] = i
    values = [(i, allocation.account, allocation.amount) for i, allocation in enumerate(allocations)]
    return StandardMerkleTree.of(values, ALLOCATION_TYPES)


def _check_node(node: bytes, what: str) -> bytes:
    if not isinstance(node, bytes | bytearray) or len(node) != 32:
        raise MerkleError(f"{what} must be 32 bytes, got {node!r}")
    return bytes(node)


def _walk(abi_type: ABIType, value: Any, scalar: Callable[[BasicType, Any], Any]) -> Any:
    """Apply ``scalar`` to every basic-typed field of ``value``, turning arrays and tuples into lists."""
    if abi_type.is_array:
        return [_walk(abi_type.item_type, item, scalar) for item in value]
    if isinstance(abi_type, TupleType):
        return [_walk(t, item, scalar) for t, item in zip(abi_type.components, value, strict=True)]
    # eth_abi's grammar has two kinds of type: a tuple, or a basic type (possibly an array of either).
    return scalar(cast(BasicType, abi_type), value)


def _scalar_to_json(abi_type: BasicType, value: Any) -> Any:
    # JSON numbers lose precision above 2**53 in JS, so OpenZeppelin dumps carry integers as strings.
    if abi_type.base in ("uint", "int"):
        return str(value)
    if abi_type.base == "bytes":
        return "0x" + bytes(value).hex()
    return value


def _scalar_from_json(abi_type: BasicType, value: Any) -> Any:
    if abi_type.base in ("uint", "int"):
        return _json_int(value)
    if abi_type.base == "bytes" and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def _json_int(value: Any) -> int:
    # Matches @metamask/abi-utils, which reads decimal strings, 0x-hex strings and plain numbers.
    if isinstance(value, str):
        return int(value, 16) if value.lower().startswith("0x") else int(value, 10)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer or integer string, got {value!r}")
    return value
