// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Erc6492Validator
/// @notice Deployless signature check for smart-contract payers (EIP-1271, and ERC-6492 for wallets not yet deployed).
/// @dev Never deployed: the facilitator `eth_call`s its creation code with constructor arguments (signer, hash,
/// signature). The constructor deploys a counterfactual wallet through its factory when the signature carries the
/// ERC-6492 wrapper and the signer has no code yet (inside the call only: nothing persists), asks the wallet's
/// `isValidSignature`, and returns a single byte: 0x01 valid, 0x00 not.
contract Erc6492Validator {
    bytes32 private constant MAGIC = 0x6492649264926492649264926492649264926492649264926492649264926492;
    bytes4 private constant ERC1271_VALID = 0x1626ba7e;

    constructor(address signer, bytes32 hash, bytes memory signature) {
        bool ok = _isValid(signer, hash, signature);
        assembly {
            mstore(0, ok)
            return(31, 1)
        }
    }

    function _isValid(address signer, bytes32 hash, bytes memory signature) private returns (bool) {
        bytes memory inner = signature;
        uint256 n = signature.length;
        if (n >= 32 && _tail(signature) == MAGIC) {
            (address factory, bytes memory factoryCalldata, bytes memory sig) =
                abi.decode(_head(signature, n - 32), (address, bytes, bytes));
            if (signer.code.length == 0) {
                (bool deployed, ) = factory.call(factoryCalldata);
                if (!deployed) return false;
            }
            inner = sig;
        }
        if (signer.code.length == 0) return false; // EOAs are checked off-chain with ecrecover
        (bool ok, bytes memory ret) = signer.staticcall(abi.encodeWithSelector(ERC1271_VALID, hash, inner));
        return ok && ret.length >= 32 && bytes4(abi.decode(ret, (bytes32))) == ERC1271_VALID;
    }

    function _tail(bytes memory data) private pure returns (bytes32 word) {
        assembly {
            word := mload(add(data, mload(data)))
        }
    }

    function _head(bytes memory data, uint256 len) private pure returns (bytes memory out) {
        out = new bytes(len);
        for (uint256 i = 0; i < len; i++) {
            out[i] = data[i];
        }
    }
}
