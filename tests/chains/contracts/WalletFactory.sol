// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {MockERC1271Wallet} from "./MockERC1271Wallet.sol";

/// @title WalletFactory
/// @notice Test factory of counterfactual smart wallets (CREATE2), for ERC-6492 signatures.
contract WalletFactory {
    function createAccount(address owner, bytes32 salt) external returns (address wallet) {
        wallet = addressOf(owner, salt);
        if (wallet.code.length == 0) {
            wallet = address(new MockERC1271Wallet{salt: salt}(owner));
        }
    }

    function addressOf(address owner, bytes32 salt) public view returns (address) {
        bytes32 code = keccak256(abi.encodePacked(type(MockERC1271Wallet).creationCode, abi.encode(owner)));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xff), address(this), salt, code)))));
    }
}
