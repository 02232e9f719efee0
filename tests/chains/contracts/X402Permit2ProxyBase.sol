// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {Permit2} from "./Permit2.sol";

/// @notice Shared part of our x402 Permit2 proxies, written to the public interface of the x402 proxies
///         (specs/schemes/exact/scheme_exact_evm.md, specs/schemes/upto/scheme_upto_evm.md): the proxy is the
///         Permit2 `spender`, and the witness binds the destination so the caller cannot redirect funds. Each
///         proxy is placed at its canonical address with anvil_setCode (chains/evm/devchain.py).
abstract contract X402Permit2ProxyBase is ReentrancyGuardTransient {
    Permit2 public immutable PERMIT2;

    struct EIP2612Permit {
        uint256 value;
        uint256 deadline;
        bytes32 r;
        bytes32 s;
        uint8 v;
    }

    event Settled();
    event SettledWithPermit();
    event EIP2612PermitFailed(address indexed token, address indexed owner, bytes data);

    error InvalidPermit2Address();
    error InvalidDestination();
    error PaymentTooEarly();
    error InvalidOwner();
    error InvalidAmount();
    error Permit2612AmountMismatch();

    constructor(address permit2) {
        if (permit2 == address(0)) revert InvalidPermit2Address();
        PERMIT2 = Permit2(permit2);
    }

    function _settle(
        Permit2.PermitTransferFrom calldata permit,
        uint256 amount,
        address owner,
        address to,
        uint256 validAfter,
        bytes32 witnessHash,
        string memory witnessTypeString,
        bytes calldata signature
    ) internal {
        if (amount == 0) revert InvalidAmount();
        if (owner == address(0)) revert InvalidOwner();
        if (to == address(0)) revert InvalidDestination();
        if (block.timestamp < validAfter) revert PaymentTooEarly();
        PERMIT2.permitWitnessTransferFrom(
            permit, Permit2.SignatureTransferDetails({to: to, requestedAmount: amount}), owner, witnessHash, witnessTypeString, signature
        );
    }

    /// @dev The EIP-2612 approval of Permit2 must be for exactly the permitted amount. A failing permit() does not
    ///      revert (the approval may already exist); the transfer then fails on its own if it does not.
    function _permit2612(address token, address owner, EIP2612Permit calldata p, uint256 permitted) internal {
        if (p.value != permitted) revert Permit2612AmountMismatch();
        try IERC20Permit(token).permit(owner, address(PERMIT2), p.value, p.deadline, p.v, p.r, p.s) {}
        catch (bytes memory data) {
            emit EIP2612PermitFailed(token, owner, data);
        }
    }
}
