// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title PlainERC20
/// @notice Test ERC-20 without EIP-3009, for the "token does not support transferWithAuthorization" diagnosis.
contract PlainERC20 is ERC20 {
    constructor() ERC20("Plain Token", "PLAIN") {}

    function decimals() public pure override returns (uint8) {
        return 6;
    }

    function version() external pure returns (string memory) {
        return "1";
    }

    function mint(address to, uint256 value) external {
        _mint(to, value);
    }
}
