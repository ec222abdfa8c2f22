// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestUSDC
/// @notice 6-decimal stand-in for USDC on the local dev chain.
/// @dev Minting is deliberately open to anyone: this token only exists on anvil for development
///      and tests, where any account must be able to fund buyers. Never deploy it to a real network.
contract TestUSDC is ERC20 {
    constructor() ERC20("Test USD Coin", "USDC") {}

    /// @notice Match real USDC, whose amounts are in millionths of a dollar.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Mint `amount` base units to `to`. Open to any caller (dev/test token).
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
