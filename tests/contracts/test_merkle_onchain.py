"""Proofs built by cotrain's Python Merkle code verify with OpenZeppelin's MerkleProof on chain, using the
same double-hashed (index, account, amount) leaf as TrainingMarket."""

import pytest
from brownie import MerkleVerifier
from cotrain.protocol.merkle import Allocation, allocation_tree
from eth_utils import keccak, to_checksum_address

SIZES = (1, 2, 3, 7, 33)


@pytest.fixture(scope="module")
def verifier(owner):
    return MerkleVerifier.deploy({"from": owner})


def allocations(n: int) -> list[Allocation]:
    """n distinct accounts with distinct, uneven amounts."""
    return [
        Allocation(
            to_checksum_address(keccak(f"merkle account {i}".encode())[-20:]), 10**15 * (i + 1) + i * i
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("n", SIZES)
def test_every_proof_verifies(verifier, n):
    allocs = allocations(n)
    tree = allocation_tree(allocs)
    for i, a in enumerate(allocs):
        assert verifier.verify(tree.proof(i), tree.root, i, a.account, a.amount), f"leaf {i} of {n}"


@pytest.mark.parametrize("n", SIZES)
def test_tampered_amount_does_not_verify(verifier, n):
    allocs = allocations(n)
    tree = allocation_tree(allocs)
    for i, a in enumerate(allocs):
        assert not verifier.verify(tree.proof(i), tree.root, i, a.account, a.amount + 1), f"leaf {i} of {n}"


@pytest.mark.parametrize("n", SIZES)
def test_wrong_index_does_not_verify(verifier, n):
    allocs = allocations(n)
    tree = allocation_tree(allocs)
    for i, a in enumerate(allocs):
        assert not verifier.verify(tree.proof(i), tree.root, i + n, a.account, a.amount), f"leaf {i} of {n}"
