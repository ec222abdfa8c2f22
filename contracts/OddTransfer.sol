// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;

/// @notice Test-only: emits an event named Transfer with the value indexed (4 topics, no data),
/// the shape of an ERC-721 Transfer. Vendo must not count it as an ERC-20 payment.
contract OddTransfer {
    event Transfer(address indexed from, address indexed to, uint256 indexed value);

    function emitTransfer(address to, uint256 value) external {
        emit Transfer(msg.sender, to, value);
    }
}
