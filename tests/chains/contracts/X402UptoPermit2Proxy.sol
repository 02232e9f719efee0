// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Permit2} from "./Permit2.sol";
import {X402Permit2ProxyBase} from "./X402Permit2ProxyBase.sol";

/// @notice `upto`: the facilitator named in the witness settles any amount up to the signed maximum; at
///         0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002.
contract X402UptoPermit2Proxy is X402Permit2ProxyBase {
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,address facilitator,uint256 validAfter)";
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,address facilitator,uint256 validAfter)");

    struct Witness {
        address to;
        address facilitator;
        uint256 validAfter;
    }

    error UnauthorizedFacilitator();
    error AmountExceedsPermitted();

    constructor(address permit2) X402Permit2ProxyBase(permit2) {}

    function settle(
        Permit2.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _check(permit, amount, witness);
        _settle(permit, amount, owner, witness.to, witness.validAfter, _hash(witness), WITNESS_TYPE_STRING, signature);
        emit Settled();
    }

    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        Permit2.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _check(permit, amount, witness);
        _permit2612(permit.permitted.token, owner, permit2612, permit.permitted.amount);
        _settle(permit, amount, owner, witness.to, witness.validAfter, _hash(witness), WITNESS_TYPE_STRING, signature);
        emit SettledWithPermit();
    }

    function _check(Permit2.PermitTransferFrom calldata permit, uint256 amount, Witness calldata witness) private view {
        if (amount > permit.permitted.amount) revert AmountExceedsPermitted();
        if (msg.sender != witness.facilitator) revert UnauthorizedFacilitator();
    }

    function _hash(Witness calldata w) private pure returns (bytes32) {
        return keccak256(abi.encode(WITNESS_TYPEHASH, w.to, w.facilitator, w.validAfter));
    }
}
