// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title PermitERC20
/// @notice ERC-20 with EIP-2612 `permit` and no EIP-3009, 6 decimals, domain "Permit USD"/"1": for the Permit2
///         tests (any ERC-20, and the eip2612GasSponsoring path). `mint` is open: test chains only.
contract PermitERC20 is ERC20, ERC20Permit {
    constructor() ERC20("Permit USD", "PUSD") ERC20Permit("Permit USD") {}

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
