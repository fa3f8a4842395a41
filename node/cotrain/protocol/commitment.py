"""The commit-reveal binding of an update to its contributor, task and round.

The market checks ``keccak256(abi.encode(contributor, taskId, round, updateDigest, salt))`` at reveal time.
The contributor's address is inside the hash, so a commitment copied by someone else never reveals, and
an update seen at reveal time is too late to commit to.
"""

import secrets

import eth_abi
from eth_utils import keccak, to_checksum_address


def update_commitment(
    contributor: str, task_id: int, round_: int, update_digest: bytes, salt: bytes
) -> bytes:
    """Return the 32-byte commitment the market's ``commit`` expects for this update.

    Parameters
    ----------
    contributor : str
        The committing account's address (any case).
    task_id, round_ : int
        The task and round the update is for.
    update_digest : bytes
        sha256 of the update file (32 bytes).
    salt : bytes
        32 secret random bytes, revealed together with the update (see :func:`new_salt`).
    """
    if len(update_digest) != 32 or len(salt) != 32:
        raise ValueError("update_digest and salt must be 32 bytes each")
    encoded = eth_abi.encode(
        ["address", "uint256", "uint256", "bytes32", "bytes32"],
        [to_checksum_address(contributor), task_id, round_, update_digest, salt],
    )
    return keccak(encoded)


def new_salt() -> bytes:
    """Return 32 bytes from the operating system's secure random source."""
    return secrets.token_bytes(32)
