// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title BatchSender
/// @notice Pays several recipients from the caller's allowance in one transaction.
/// @dev Test helper: lets the payment watcher be exercised with several Transfer logs in a single
///      transaction (e.g. two invoices paid at once). The caller must approve this contract first.
contract BatchSender {
    using SafeERC20 for IERC20;

    error LengthMismatch(uint256 recipients, uint256 amounts);

    /// @notice Transfer `amounts[i]` of `token` from the caller to `to[i]` for every i.
    function send(IERC20 token, address[] calldata to, uint256[] calldata amounts) external {
        if (to.length != amounts.length) {
            revert LengthMismatch(to.length, amounts.length);
        }
        for (uint256 i = 0; i < to.length; ++i) {
            token.safeTransferFrom(msg.sender, to[i], amounts[i]);
        }
    }
}
