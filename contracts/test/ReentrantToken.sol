// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @notice A hostile task owner's ERC20: once armed, the next transferFrom calls `target` with `payload` from
/// the token's own address after moving the tokens, records the outcome and does not bubble a failure.
contract ReentrantToken is ERC20 {
    /// @notice Where the armed call goes; zero when disarmed.
    address public target;
    /// @notice The armed call's calldata.
    bytes public payload;
    /// @notice Whether the last re-entrant call succeeded.
    bool public reentrySucceeded;
    /// @notice Number of re-entrant calls made.
    uint256 public reentryAttempts;

    constructor() ERC20("Reentrant Token", "RENT") {}

    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Makes the next transferFrom call `target_` with `payload_` once.
    function arm(address target_, bytes calldata payload_) external {
        target = target_;
        payload = payload_;
    }

    /// @notice Calls `target_` with `payload_` from the token's address now (to take part in a task).
    function execute(address target_, bytes calldata payload_) external {
        (bool ok, bytes memory data) = target_.call(payload_);
        if (!ok) {
            assembly {
                revert(add(data, 32), mload(data))
            }
        }
    }

    function transferFrom(address from, address to, uint256 value) public override returns (bool) {
        bool moved = super.transferFrom(from, to, value);
        address armed = target;
        if (armed != address(0)) {
            target = address(0);
            reentryAttempts += 1;
            (reentrySucceeded,) = armed.call(payload);
        }
        return moved;
    }
}
