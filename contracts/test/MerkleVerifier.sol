// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title MerkleVerifier (tests only)
/// @notice Checks a reward or slash proof exactly as TrainingMarket.claim does: the leaf is OpenZeppelin's
/// StandardMerkleTree leaf of (uint256 index, address account, uint256 amount), hashed twice.
contract MerkleVerifier {
    function verify(bytes32[] calldata proof, bytes32 root, uint256 index, address account, uint256 amount)
        external
        pure
        returns (bool)
    {
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(index, account, amount))));
        return MerkleProof.verifyCalldata(proof, root, leaf);
    }
}
