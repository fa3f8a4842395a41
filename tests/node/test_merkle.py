"""Tests for cotrain.protocol.merkle, cross-checked against the npm @openzeppelin/merkle-tree package."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cotrain.protocol.merkle import (
    ALLOCATION_TYPES,
    Allocation,
    MerkleError,
    StandardMerkleTree,
    allocation_tree,
    leaf_hash,
    verify,
)
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = REPO_ROOT / "toolchain" / "npm" / "node_modules"
OZ_SCRIPT = Path(__file__).with_name("oz_merkle_tree.mjs")

ALICE = "0x1111111111111111111111111111111111111111"
BOB = "0x2222222222222222222222222222222222222222"


def _account(n: int) -> str:
    return to_checksum_address(keccak(f"account-{n}".encode())[-20:])


def _allocations(count: int) -> list[Allocation]:
    # Mix zero, small, large and maximal amounts so encoding edge cases are covered.
    amounts = [0, 1, 10**18, 2**256 - 1, 123_456_789]
    return [
        Allocation(_account(i), amounts[i % len(amounts)] + (i if i % 5 != 3 else 0)) for i in range(count)
    ]


def _hex(node: bytes) -> str:
    return "0x" + node.hex()


def _run_openzeppelin(types: list[str], values: list[list[str]]) -> dict:
    if not (NODE_MODULES / "@openzeppelin" / "merkle-tree").is_dir():
        pytest.fail(
            f"@openzeppelin/merkle-tree not found under {NODE_MODULES}; run the project's toolchain setup "
            "(npm install in toolchain/npm) before running the tests"
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail("the `node` executable (Node.js 20) is not on PATH; install it to run the cross-check")
    completed = subprocess.run(
        [node, str(OZ_SCRIPT), str(NODE_MODULES)],
        input=json.dumps({"types": types, "values": values}),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_leaf_hash_is_double_keccak_of_abi_encoding():
    encoded = (7).to_bytes(32, "big") + bytes(12) + bytes.fromhex(ALICE[2:]) + (10**18).to_bytes(32, "big")

    assert leaf_hash(ALLOCATION_TYPES, (7, ALICE, 10**18)) == keccak(keccak(encoded))


def test_single_leaf_root_is_leaf_hash_with_empty_proof():
    tree = StandardMerkleTree.of([(0, ALICE, 5)], ALLOCATION_TYPES)

    assert tree.root == leaf_hash(ALLOCATION_TYPES, (0, ALICE, 5))
    assert tree.proof(0) == []


def test_two_leaves_root_is_hash_of_sorted_pair():
    a = leaf_hash(ALLOCATION_TYPES, (0, ALICE, 5))
    b = leaf_hash(ALLOCATION_TYPES, (1, BOB, 7))

    tree = StandardMerkleTree.of([(0, ALICE, 5), (1, BOB, 7)], ALLOCATION_TYPES)

    assert tree.root == keccak(min(a, b) + max(a, b))
    assert tree.proof(0) == [b]
    assert tree.proof(1) == [a]


def test_address_case_does_not_change_leaf_hash():
    account = _account(1)

    hashes = {
        leaf_hash(ALLOCATION_TYPES, (0, spelling, 1))
        for spelling in (account, account.lower(), account.upper())
    }

    assert len(hashes) == 1


@pytest.mark.parametrize(
    "value", [True, "5", 5.0, -1, 2**256], ids=["bool", "str", "float", "negative", "too-big"]
)
def test_leaf_hash_rejects_non_uint256_amounts(value):
    with pytest.raises(MerkleError, match="cannot ABI-encode"):
        leaf_hash(ALLOCATION_TYPES, (0, ALICE, value))


def test_of_rejects_empty_values():
    with pytest.raises(MerkleError, match="at least one"):
        StandardMerkleTree.of([], ALLOCATION_TYPES)


@pytest.mark.parametrize("index", [-1, 2, True], ids=["negative", "past-end", "bool"])
def test_proof_rejects_out_of_range_index(index):
    tree = StandardMerkleTree.of([(0, ALICE, 5), (1, BOB, 7)], ALLOCATION_TYPES)

    with pytest.raises(MerkleError, match="out of range"):
        tree.proof(index)


_entries = st.lists(
    st.tuples(st.binary(min_size=20, max_size=20), st.integers(min_value=0, max_value=2**256 - 1)),
    min_size=1,
    max_size=24,
    unique_by=lambda entry: entry[0],
)


@settings(max_examples=50, deadline=None)
@given(entries=_entries)
def test_every_proof_verifies_and_a_tampered_amount_does_not(entries):
    allocations = [Allocation(to_checksum_address(raw), amount) for raw, amount in entries]
    tree = allocation_tree(allocations)

    for i, allocation in enumerate(allocations):
        proof = tree.proof(i)
        assert tree.verify(i, proof)
        assert verify(
            tree.root, leaf_hash(ALLOCATION_TYPES, (i, allocation.account, allocation.amount)), proof
        )
        tampered = leaf_hash(ALLOCATION_TYPES, (i, allocation.account, allocation.amount ^ 1))
        assert not verify(tree.root, tampered, proof)


@settings(max_examples=50, deadline=None)
@given(entries=_entries)
def test_of_builds_only_trees_the_verifying_constructor_accepts(entries):
    # Prepare: of() skips re-checking the hashes it computed; load() checks every one.
    allocations = [Allocation(to_checksum_address(raw), amount) for raw, amount in entries]

    # Execute
    built = allocation_tree(allocations)
    checked = StandardMerkleTree.load(built.dump())

    # Assert
    assert checked.dump() == built.dump()
    assert [checked.proof(i) for i in range(len(built))] == [built.proof(i) for i in range(len(built))]


def test_allocation_tree_uses_list_position_as_index():
    allocations = _allocations(5)

    tree = allocation_tree(allocations)

    assert tree.values == tuple((i, a.account, a.amount) for i, a in enumerate(allocations))


def test_allocation_tree_rejects_empty_list():
    with pytest.raises(MerkleError, match="no allocations"):
        allocation_tree([])


def test_allocation_tree_rejects_duplicate_account_in_any_case():
    account = _account(1)

    with pytest.raises(MerkleError, match="positions 0 and 2"):
        allocation_tree([Allocation(account, 1), Allocation(_account(2), 2), Allocation(account.lower(), 3)])


@pytest.mark.parametrize("amount", [-1, True, 1.5, 2**256], ids=["negative", "bool", "float", "too-big"])
def test_allocation_rejects_invalid_amount(amount):
    with pytest.raises(MerkleError, match="amount"):
        Allocation(ALICE, amount)


def test_allocation_rejects_bad_checksum():
    account = _account(1)
    # Flip the case of the first letter so the EIP-55 checksum no longer matches.
    position = next(i for i, c in enumerate(account) if i > 1 and c.isalpha())
    typo = account[:position] + account[position].swapcase() + account[position + 1 :]

    with pytest.raises(MerkleError, match="checksum"):
        Allocation(typo, 1)


def test_allocation_stores_checksummed_account():
    account = _account(1)

    assert Allocation(account.lower(), 1).account == account


def test_load_round_trips_dump():
    tree = allocation_tree(_allocations(7))

    loaded = StandardMerkleTree.load(json.loads(json.dumps(tree.dump())))

    assert loaded.dump() == tree.dump()
    assert loaded.values == tree.values


def _tamper_node(dump):
    dump["tree"][1] = "0x" + "00" * 32


def _tamper_amount(dump):
    dump["values"][2]["value"][2] = str(int(dump["values"][2]["value"][2]) + 1)


def _swap_tree_indices(dump):
    first, second = dump["values"][0], dump["values"][1]
    first["treeIndex"], second["treeIndex"] = second["treeIndex"], first["treeIndex"]


def _wrong_format(dump):
    dump["format"] = "simple-v1"


def _drop_leaf_encoding(dump):
    del dump["leafEncoding"]


@pytest.mark.parametrize(
    "tamper", [_tamper_node, _tamper_amount, _swap_tree_indices, _wrong_format, _drop_leaf_encoding]
)
def test_load_rejects_inconsistent_dump(tamper):
    dump = allocation_tree(_allocations(7)).dump()
    tamper(dump)

    with pytest.raises(MerkleError):
        StandardMerkleTree.load(dump)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 100])
def test_matches_openzeppelin_merkle_tree(count):
    # Prepare
    allocations = _allocations(count)
    values = [[str(i), a.account, str(a.amount)] for i, a in enumerate(allocations)]
    expected = _run_openzeppelin(list(ALLOCATION_TYPES), values)

    # Execute
    tree = allocation_tree(allocations)

    # Assert
    assert _hex(tree.root) == expected["root"]
    assert [[_hex(node) for node in tree.proof(i)] for i in range(count)] == expected["proofs"]
    assert json.dumps(tree.dump()) == json.dumps(expected["dump"])


def test_load_accepts_openzeppelin_dump():
    allocations = _allocations(3)
    values = [[str(i), a.account.lower(), hex(a.amount)] for i, a in enumerate(allocations)]
    expected = _run_openzeppelin(list(ALLOCATION_TYPES), values)

    tree = StandardMerkleTree.load(expected["dump"])

    assert tree.root == allocation_tree(allocations).root
