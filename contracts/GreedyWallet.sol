// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title GreedyWallet
/// @notice Test-only: a contract wallet whose ERC-1271 check never ends, burning all the gas it
///         is given. Vendo must bound the call and treat it as "not signed", not as a node that
///         is down.
contract GreedyWallet {
    using SafeERC20 for IERC20;

    uint256 private spins;

    /// @notice Send `amount` of `token` from this wallet to `to` (anyone may: it is a test).
    function transfer(IERC20 token, address to, uint256 amount) external {
        token.safeTransfer(to, amount);
    }

    function isValidSignature(bytes32, bytes calldata) external view returns (bytes4) {
        uint256 n = spins;
        while (true) {
            n = uint256(keccak256(abi.encode(n)));
        }
        return bytes4(uint32(n));
    }
}
