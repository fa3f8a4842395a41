"""Splitting a round's budget into reward leaves, stake slashes, and the Merkle roots the market checks.

Every list of allocations here is in the protocol's order: ascending lower-case account address, one entry
per account, amounts above zero. A leaf's index (the contract's claimed-bitmap slot) is its position in that
list, so any validator that computes the same amounts publishes the same root.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import NamedTuple

from eth_utils import is_checksum_address, is_checksum_formatted_address, is_hex_address

from cotrain.protocol.merkle import Allocation, StandardMerkleTree, allocation_tree

EMPTY_ROOT = b"\x00" * 32
_UINT256_MAX = 2**256 - 1


class AllocationProof(NamedTuple):
    """What ``claim`` or ``slashContributor`` takes for one leaf: ``(index, account, amount, proof)``."""

    index: int  # type: ignore[assignment]  # the contract's name for it; shadows tuple.index on purpose
    account: str
    amount: int
    proof: list[bytes]


def allocate_rewards(budget_wei: int, weights: Sequence[tuple[str, int | float]]) -> list[Allocation]:
    """Split ``budget_wei`` in proportion to ``weights`` with exact integer arithmetic.

    Each account first gets the floor of its exact share ``budget * w / sum(w)`` (float weights are taken
    at their exact binary value). The wei left over, fewer than the number of accounts, go one each to the
    largest fractional remainders (Hamilton's largest-remainder method); equal remainders go to the lower
    address first. So the amounts sum to exactly ``budget_wei`` when any weight is positive, never exceed
    it, and do not depend on the order of ``weights``.

    Parameters
    ----------
    budget_wei : int
        The amount to split, in wei.
    weights : Sequence[tuple[str, int | float]]
        ``(address, weight)`` pairs; any address case; weights finite and non-negative.

    Returns
    -------
    list[Allocation]
        Sorted by lower-case address. Accounts whose amount is zero (zero weight, or a share below one wei)
        are left out, since a leaf that pays nothing is of no use.

    Raises
    ------
    ValueError
        If the budget is negative or above 2**256 - 1, an address is malformed or repeated, or a weight is
        negative, not finite or not a number.

    Examples
    --------
    >>> accounts = ["0x" + digit * 40 for digit in "123"]
    >>> [a.amount for a in allocate_rewards(10, [(account, 1) for account in accounts])]
    [4, 3, 3]
    """
    if isinstance(budget_wei, bool) or not isinstance(budget_wei, int) or not 0 <= budget_wei <= _UINT256_MAX:
        raise ValueError(f"budget_wei must be an int between 0 and 2**256 - 1, got {budget_wei!r}")
    exact: dict[str, Fraction] = {}
    for account, weight in weights:
        key = _account_key(account, exact)
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ValueError(f"weight for {account} must be an int or float, got {weight!r}")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight for {account} must be finite and non-negative, got {weight!r}")
        exact[key] = Fraction(weight)
    total = sum(exact.values(), Fraction(0))
    if total == 0 or budget_wei == 0:
        return []
    floors: dict[str, int] = {}
    remainders: dict[str, Fraction] = {}
    for key, exact_weight in exact.items():
        share = budget_wei * exact_weight / total
        floors[key] = share.numerator // share.denominator
        remainders[key] = share - floors[key]
    left_over = budget_wei - sum(floors.values())
    # Only positive remainders can be picked: they sum to left_over and each is below one.
    for key in sorted(remainders, key=lambda k: (-remainders[k], k))[:left_over]:
        floors[key] += 1
    return [Allocation(key, amount) for key, amount in sorted(floors.items()) if amount > 0]


def slash_allocations(rejected: Iterable[str], stake_slash_wei: int) -> list[Allocation]:
    """Return one ``stake_slash_wei`` slash per rejected contributor, in protocol order.

    Parameters
    ----------
    rejected : Iterable[str]
        Addresses whose updates were rejected (any case, each once).
    stake_slash_wei : int
        Stake slashed per rejected update (the spec's ``rewards.slash_rejected_wei``).

    Returns
    -------
    list[Allocation]
        Sorted by lower-case address; empty when ``stake_slash_wei`` is zero.

    Raises
    ------
    ValueError
        If an address is malformed or repeated, or the amount is not an int in ``[0, 2**256 - 1]``.
    """
    if (
        isinstance(stake_slash_wei, bool)
        or not isinstance(stake_slash_wei, int)
        or not 0 <= stake_slash_wei <= _UINT256_MAX
    ):
        raise ValueError(f"stake_slash_wei must be an int between 0 and 2**256 - 1, got {stake_slash_wei!r}")
    seen: dict[str, None] = {}
    for account in rejected:
        seen[_account_key(account, seen)] = None
    if stake_slash_wei == 0:
        return []
    return [Allocation(key, stake_slash_wei) for key in sorted(seen)]


class RewardTree:
    """The ``(uint256 index, address account, uint256 amount)`` tree over allocations in protocol order, with
    each account's leaf index: build it once, then prove any account's leaf without rebuilding it.

    Raises
    ------
    ValueError
        If ``allocations`` is empty (publish :data:`EMPTY_ROOT` instead) or not in protocol order.
    """

    def __init__(self, allocations: Sequence[Allocation]) -> None:
        check_order(allocations)
        self.allocations = tuple(allocations)
        self.tree = allocation_tree(self.allocations)
        self._index = {allocation.account.lower(): i for i, allocation in enumerate(self.allocations)}

    @property
    def root(self) -> bytes:
        """The 32-byte Merkle root the market checks proofs against."""
        return self.tree.root

    def __contains__(self, account: object) -> bool:
        return str(account).lower() in self._index

    def proof(self, account: str) -> AllocationProof:
        """Return ``account``'s leaf and proof, ready for the market's ``claim`` or ``slashContributor``.

        Raises
        ------
        ValueError
            If ``account`` has no allocation.
        """
        index = self._index.get(str(account).lower())
        if index is None:
            raise ValueError(f"{account} has no allocation in this tree")
        allocation = self.allocations[index]
        return AllocationProof(index, allocation.account, allocation.amount, self.tree.proof(index))


def reward_tree(allocations: Sequence[Allocation]) -> StandardMerkleTree:
    """Build the ``(uint256 index, address account, uint256 amount)`` tree over ``allocations``.

    Raises
    ------
    ValueError
        If ``allocations`` is empty (publish :data:`EMPTY_ROOT` instead) or not in protocol order.
    """
    return RewardTree(allocations).tree


def rewards_root(allocations: Sequence[Allocation]) -> bytes:
    """Return the Merkle root of ``allocations``, or 32 zero bytes when there are none.

    The market never matches a proof against the zero root (no leaf hashes to it), so an empty root means
    nothing can be claimed or slashed, which is how the contract's tests propose a round without slashes.

    Raises
    ------
    ValueError
        If ``allocations`` is not in protocol order.
    """
    if len(allocations) == 0:
        return EMPTY_ROOT
    return RewardTree(allocations).root


def allocation_proof(allocations: Sequence[Allocation], account: str) -> AllocationProof:
    """Return the leaf and proof for ``account``, ready for the market's ``claim`` or ``slashContributor``.

    Builds the whole tree: to prove more than one leaf, or the leaves of a record, use :class:`RewardTree`
    (a :class:`~cotrain.protocol.round_record.RoundRecord` keeps its own).

    Raises
    ------
    ValueError
        If ``account`` has no allocation, or ``allocations`` is empty or not in protocol order.
    """
    return RewardTree(allocations).proof(account)


def check_order(allocations: Sequence[Allocation]) -> None:
    """Check that ``allocations`` are in protocol order with amounts above zero.

    Raises
    ------
    ValueError
        Naming the first entry out of place.
    """
    previous = ""
    for i, allocation in enumerate(allocations):
        if not isinstance(allocation, Allocation):
            raise ValueError(f"allocation {i} is a {type(allocation).__name__}, expected Allocation")
        key = allocation.account.lower()
        if key <= previous:
            raise ValueError(
                f"allocation {i} ({allocation.account}) is out of order; sort allocations by lower-case "
                "address with one entry per account, as allocate_rewards returns them"
            )
        if allocation.amount == 0:
            raise ValueError(f"allocation {i} ({allocation.account}) is zero; leave zero amounts out")
        previous = key


def _account_key(account: str, seen: Iterable[str]) -> str:
    if not (isinstance(account, str) and account.startswith("0x") and is_hex_address(account)):
        raise ValueError(f"{account!r} is not a 0x-prefixed 20-byte hex address")
    if is_checksum_formatted_address(account) and not is_checksum_address(account):
        raise ValueError(f"{account} has an invalid EIP-55 checksum; fix the typo or pass it in lower case")
    key = account.lower()
    if key in seen:
        raise ValueError(f"{account} appears twice; merge its entries into one")
    return key
