// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Permit2} from "./Permit2.sol";
import {X402Permit2ProxyBase} from "./X402Permit2ProxyBase.sol";

/// @notice `exact` by Permit2: exactly `permit.permitted.amount` to `witness.to`; at 0x402085c248EeA27D92E8b30b2C58ed07f9E20001.
contract X402ExactPermit2Proxy is X402Permit2ProxyBase {
    string public constant WITNESS_TYPE_STRING =
        "Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)";
    bytes32 public constant WITNESS_TYPEHASH = keccak256("Witness(address to,uint256 validAfter)");

    struct Witness {
        address to;
        uint256 validAfter;
    }

    constructor(address permit2) X402Permit2ProxyBase(permit2) {}

    function settle(
        Permit2.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _settle(permit, permit.permitted.amount, owner, witness.to, witness.validAfter, _hash(witness), WITNESS_TYPE_STRING, signature);
        emit Settled();
    }

    function settleWithPermit(
        EIP2612Permit calldata permit2612,
        Permit2.PermitTransferFrom calldata permit,
        address owner,
        Witness calldata witness,
        bytes calldata signature
    ) external nonReentrant {
        _permit2612(permit.permitted.token, owner, permit2612, permit.permitted.amount);
        _settle(permit, permit.permitted.amount, owner, witness.to, witness.validAfter, _hash(witness), WITNESS_TYPE_STRING, signature);
        emit SettledWithPermit();
    }

    function _hash(Witness calldata w) private pure returns (bytes32) {
        return keccak256(abi.encode(WITNESS_TYPEHASH, w.to, w.validAfter));
    }
}
