// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title Test18
/// @notice An 18-decimal ERC-20 for tests: amounts of one token are ~1e18 base units, above 2^53,
///         so a page that puts amounts through floats gets them wrong.
/// @dev Minting is deliberately open to anyone: this token only exists on anvil for tests.
///      Never deploy it to a real network.
contract Test18 is ERC20 {
    constructor() ERC20("Test 18-decimal Coin", "T18") {}

    /// @notice Mint `amount` base units to `to`. Open to any caller (test token).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
