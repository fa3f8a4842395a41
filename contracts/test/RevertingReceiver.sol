// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ITrainingMarket} from "../interfaces/ITrainingMarket.sol";

/// @title RevertingReceiver
/// @notice Test-only account that refuses every ETH transfer: it can join a task or be named in a rewards tree,
/// but any payment to it fails.
contract RevertingReceiver {
    /// @notice The market this receiver acts on.
    ITrainingMarket public immutable market;

    /// @notice Raised by receive() for every incoming transfer.
    error PaymentRefused();

    /// @notice Deploys a receiver that acts on market.
    constructor(ITrainingMarket market_) {
        market = market_;
    }

    /// @notice Joins taskId with msg.value as the stake.
    function join(uint256 taskId) external payable {
        market.join{value: msg.value}(taskId);
    }

    /// @notice Tries to leave taskId (fails while receive() refuses the refund).
    function leave(uint256 taskId) external {
        market.leave(taskId);
    }

    /// @notice Refuses every payment.
    receive() external payable {
        revert PaymentRefused();
    }
}
