// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITrainingMarket} from "../interfaces/ITrainingMarket.sol";

/// @title ReentrantClaimer
/// @notice Test-only attacker: when the market pays it ETH (claim, leave, withdrawCredit) it re-enters the market
/// once with a pre-armed call and records whether that call succeeded; in bubbling mode a failed re-entry makes
/// receive() revert with the inner revert data.
contract ReentrantClaimer {
    /// @notice The market under attack.
    ITrainingMarket public immutable market;

    /// @notice Calldata for the re-entrant call; empty means receive() just accepts the ETH.
    bytes public reentryCall;
    /// @notice When true, a failed re-entry makes receive() revert with the inner revert data.
    bool public bubble;
    /// @notice Number of times receive() ran.
    uint256 public receipts;
    /// @notice Number of re-entrant calls attempted (at most one per arming).
    uint256 public reentryAttempts;
    /// @notice Whether the last re-entrant call succeeded.
    bool public reentrySucceeded;
    /// @notice Revert data of the last failed re-entrant call.
    bytes public reentryError;

    /// @notice Deploys an attacker aimed at market.
    constructor(ITrainingMarket market_) {
        market = market_;
    }

    /// @notice Arms a re-entrant claim of the leaf (index, account, amount) in taskId's round.
    function armClaim(
        uint256 taskId,
        uint32 round,
        uint256 index,
        address account,
        uint256 amount,
        bytes32[] calldata proof,
        bool bubble_
    ) external {
        _arm(abi.encodeCall(ITrainingMarket.claim, (taskId, round, index, account, amount, proof)), bubble_);
    }

    /// @notice Arms a re-entrant leave of taskId.
    function armLeave(uint256 taskId, bool bubble_) external {
        _arm(abi.encodeCall(ITrainingMarket.leave, (taskId)), bubble_);
    }

    /// @notice Arms a re-entrant withdrawCredit.
    function armWithdrawCredit(bool bubble_) external {
        _arm(abi.encodeCall(ITrainingMarket.withdrawCredit, ()), bubble_);
    }

    /// @notice Disarms: receive() accepts ETH without re-entering.
    function disarm() external {
        delete reentryCall;
        bubble = false;
    }

    /// @notice Joins taskId with msg.value as the stake.
    function join(uint256 taskId) external payable {
        market.join{value: msg.value}(taskId);
    }

    /// @notice Leaves taskId (the stake comes back through receive()).
    function leave(uint256 taskId) external {
        market.leave(taskId);
    }

    /// @notice Challenges a round with msg.value as the challenge bond.
    function challenge(uint256 taskId, uint32 round, string calldata evidenceCid) external payable {
        market.challenge{value: msg.value}(taskId, round, evidenceCid);
    }

    /// @notice Withdraws this contract's market credit (paid through receive()).
    function withdrawCredit() external {
        market.withdrawCredit();
    }

    /// @notice Counts the payment and, if armed and not yet attempted, re-enters the market once.
    receive() external payable {
        receipts += 1;
        bytes memory data = reentryCall;
        if (data.length == 0) return;
        delete reentryCall;
        reentryAttempts += 1;
        (bool ok, bytes memory err) = address(market).call(data);
        reentrySucceeded = ok;
        reentryError = err;
        if (!ok && bubble) {
            assembly {
                revert(add(err, 32), mload(err))
            }
        }
    }

    function _arm(bytes memory data, bool bubble_) private {
        reentryCall = data;
        bubble = bubble_;
        reentrySucceeded = false;
        delete reentryError;
    }
}
