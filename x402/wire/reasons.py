"""Reason codes of invalid verifications and failed settlements (official TS SDK spelling, architecture.md §4.7, §6).

Clients treat these as opaque strings; keep them stable. The ``invalid_exact_svm_smart_wallet_*`` codes are those of
the TS SDK's opt-in smart-wallet path (chains/solana/smartwallet.py).
"""

from __future__ import annotations

from typing import Final

# Generic (spec v1/v2 §9)
INSUFFICIENT_FUNDS: Final = "insufficient_funds"
INVALID_NETWORK: Final = "invalid_network"
INVALID_PAYLOAD: Final = "invalid_payload"
INVALID_PAYMENT_REQUIREMENTS: Final = "invalid_payment_requirements"
INVALID_SCHEME: Final = "invalid_scheme"
UNSUPPORTED_SCHEME: Final = "unsupported_scheme"
INVALID_X402_VERSION: Final = "invalid_x402_version"
INVALID_TRANSACTION_STATE: Final = "invalid_transaction_state"
UNEXPECTED_VERIFY_ERROR: Final = "unexpected_verify_error"
UNEXPECTED_SETTLE_ERROR: Final = "unexpected_settle_error"
SETTLEMENT_PENDING: Final = "settlement_pending"
DUPLICATE_SETTLEMENT: Final = "duplicate_settlement"

# EVM exact, EIP-3009 (TS @x402/evm spelling)
ASSET_NOT_DEPLOYED_CONTRACT: Final = "asset_not_deployed_contract"
INVALID_EXACT_EVM_SCHEME: Final = "invalid_exact_evm_scheme"
INVALID_EXACT_EVM_NETWORK_MISMATCH: Final = "invalid_exact_evm_network_mismatch"
INVALID_EXACT_EVM_MISSING_EIP712_DOMAIN: Final = "invalid_exact_evm_missing_eip712_domain"
INVALID_EXACT_EVM_RECIPIENT_MISMATCH: Final = "invalid_exact_evm_recipient_mismatch"
INVALID_EXACT_EVM_SIGNATURE: Final = "invalid_exact_evm_signature"
INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_BEFORE: Final = "invalid_exact_evm_payload_authorization_valid_before"
INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_AFTER: Final = "invalid_exact_evm_payload_authorization_valid_after"
INVALID_EXACT_EVM_AUTHORIZATION_VALUE: Final = "invalid_exact_evm_authorization_value"
INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALUE_MISMATCH: Final = "invalid_exact_evm_payload_authorization_value_mismatch"
INVALID_EXACT_EVM_TRANSACTION_FAILED: Final = "invalid_exact_evm_transaction_failed"
INVALID_EXACT_EVM_TRANSFER_EVENT_MISMATCH: Final = "invalid_exact_evm_transfer_event_mismatch"
INVALID_EXACT_EVM_TOKEN_NAME_MISMATCH: Final = "invalid_exact_evm_token_name_mismatch"  # noqa: S105 - a token (asset) name, not a credential
INVALID_EXACT_EVM_TOKEN_VERSION_MISMATCH: Final = "invalid_exact_evm_token_version_mismatch"  # noqa: S105 - a token (asset) name, not a credential
INVALID_EXACT_EVM_EIP3009_NOT_SUPPORTED: Final = "invalid_exact_evm_eip3009_not_supported"
INVALID_EXACT_EVM_NONCE_ALREADY_USED: Final = "invalid_exact_evm_nonce_already_used"
INVALID_EXACT_EVM_INSUFFICIENT_BALANCE: Final = "invalid_exact_evm_insufficient_balance"
INVALID_EXACT_EVM_TRANSACTION_SIMULATION_FAILED: Final = "invalid_exact_evm_transaction_simulation_failed"
INVALID_EXACT_EVM_FAILED_TO_PARSE_SIGNATURE: Final = "invalid_exact_evm_failed_to_parse_signature"
UNSUPPORTED_PAYLOAD_TYPE: Final = "unsupported_payload_type"
EIP6492_FACTORY_NOT_ALLOWED: Final = "eip6492_factory_not_allowed"
SMART_WALLET_DEPLOYMENT_FAILED: Final = "smart_wallet_deployment_failed"

# EVM exact, Permit2
INVALID_PERMIT2_SPENDER: Final = "invalid_permit2_spender"
INVALID_PERMIT2_RECIPIENT_MISMATCH: Final = "invalid_permit2_recipient_mismatch"
PERMIT2_DEADLINE_EXPIRED: Final = "permit2_deadline_expired"
PERMIT2_NOT_YET_VALID: Final = "permit2_not_yet_valid"
PERMIT2_AMOUNT_MISMATCH: Final = "permit2_amount_mismatch"
PERMIT2_TOKEN_MISMATCH: Final = "permit2_token_mismatch"  # noqa: S105 - a token (asset) name, not a credential
INVALID_PERMIT2_SIGNATURE: Final = "invalid_permit2_signature"
PERMIT2_ALLOWANCE_REQUIRED: Final = "permit2_allowance_required"
PERMIT2_SIMULATION_FAILED: Final = "permit2_simulation_failed"
PERMIT2_INSUFFICIENT_BALANCE: Final = "permit2_insufficient_balance"
PERMIT2_PROXY_NOT_DEPLOYED: Final = "permit2_proxy_not_deployed"
PERMIT2_INVALID_AMOUNT: Final = "permit2_invalid_amount"
PERMIT2_INVALID_DESTINATION: Final = "permit2_invalid_destination"
PERMIT2_INVALID_OWNER: Final = "permit2_invalid_owner"
PERMIT2_PAYMENT_TOO_EARLY: Final = "permit2_payment_too_early"
PERMIT2_INVALID_NONCE: Final = "permit2_invalid_nonce"
PERMIT2_2612_AMOUNT_MISMATCH: Final = "permit2_2612_amount_mismatch"

# EVM upto (Permit2; scheme_upto_evm.md and the SDKs)
INVALID_UPTO_EVM_SCHEME: Final = "invalid_upto_evm_scheme"
INVALID_UPTO_EVM_NETWORK_MISMATCH: Final = "invalid_upto_evm_network_mismatch"
INVALID_UPTO_EVM_PAYLOAD_SETTLEMENT_EXCEEDS_AMOUNT: Final = "invalid_upto_evm_payload_settlement_exceeds_amount"
INVALID_UPTO_EVM_TRANSACTION_FAILED: Final = "invalid_upto_evm_transaction_failed"
UPTO_FACILITATOR_MISMATCH: Final = "upto_facilitator_mismatch"
UPTO_AMOUNT_EXCEEDS_PERMITTED: Final = "upto_amount_exceeds_permitted"
UPTO_UNAUTHORIZED_FACILITATOR: Final = "upto_unauthorized_facilitator"
INVALID_PERMIT2_PAYLOAD_FORMAT: Final = "invalid_permit2_payload_format"

# EVM exact, ERC-20 approval gas sponsoring extension
INVALID_ERC20_APPROVAL_EXTENSION_FORMAT: Final = "invalid_erc20_approval_extension_format"
ERC20_APPROVAL_FROM_MISMATCH: Final = "erc20_approval_from_mismatch"
ERC20_APPROVAL_ASSET_MISMATCH: Final = "erc20_approval_asset_mismatch"
ERC20_APPROVAL_SPENDER_NOT_PERMIT2: Final = "erc20_approval_spender_not_permit2"
ERC20_APPROVAL_TX_WRONG_TARGET: Final = "erc20_approval_tx_wrong_target"
ERC20_APPROVAL_TX_WRONG_SELECTOR: Final = "erc20_approval_tx_wrong_selector"
ERC20_APPROVAL_TX_WRONG_SPENDER: Final = "erc20_approval_tx_wrong_spender"
ERC20_APPROVAL_TX_INVALID_CALLDATA: Final = "erc20_approval_tx_invalid_calldata"
ERC20_APPROVAL_TX_SIGNER_MISMATCH: Final = "erc20_approval_tx_signer_mismatch"
ERC20_APPROVAL_TX_INVALID_SIGNATURE: Final = "erc20_approval_tx_invalid_signature"
ERC20_APPROVAL_TX_PARSE_FAILED: Final = "erc20_approval_tx_parse_failed"
ERC20_APPROVAL_TX_FAILED: Final = "erc20_approval_tx_failed"
ERC20_APPROVAL_BROADCAST_FAILED: Final = "erc20_approval_broadcast_failed"

# EVM exact, EIP-2612 gas sponsoring extension
INVALID_EIP2612_EXTENSION_FORMAT: Final = "invalid_eip2612_extension_format"
EIP2612_FROM_MISMATCH: Final = "eip2612_from_mismatch"
EIP2612_ASSET_MISMATCH: Final = "eip2612_asset_mismatch"
EIP2612_SPENDER_NOT_PERMIT2: Final = "eip2612_spender_not_permit2"
EIP2612_DEADLINE_EXPIRED: Final = "eip2612_deadline_expired"

# SVM exact (TS @x402/svm spelling)
INVALID_EXACT_SVM_UNSUPPORTED_SCHEME: Final = "invalid_exact_svm_unsupported_scheme"
INVALID_EXACT_SVM_NETWORK_MISMATCH: Final = "invalid_exact_svm_network_mismatch"
INVALID_EXACT_SVM_PAYLOAD_MISSING_FEE_PAYER: Final = "invalid_exact_svm_payload_missing_fee_payer"
INVALID_EXACT_SVM_FEE_PAYER_NOT_MANAGED: Final = "invalid_exact_svm_fee_payer_not_managed_by_facilitator"
INVALID_EXACT_SVM_PAYLOAD_TRANSACTION: Final = "invalid_exact_svm_payload_transaction"
INVALID_EXACT_SVM_TRANSACTION_COULD_NOT_BE_DECODED: Final = "invalid_exact_svm_payload_transaction_could_not_be_decoded"
INVALID_EXACT_SVM_PAYLOAD_SIGNATURE_INVALID: Final = "invalid_exact_svm_payload_signature_invalid"
INVALID_EXACT_SVM_PAYLOAD_EXCESSIVE_SIGNERS: Final = "invalid_exact_svm_payload_excessive_signers"
INVALID_EXACT_SVM_LENGTH: Final = "invalid_exact_svm_payload_transaction_instructions_length"
INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION: Final = (
    "invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction"
)
INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH: Final = (
    "invalid_exact_svm_payload_transaction_instructions_compute_limit_instruction_too_high"
)
INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION: Final = (
    "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction"
)
INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION_TOO_HIGH: Final = (
    "invalid_exact_svm_payload_transaction_instructions_compute_price_instruction_too_high"
)
INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FOURTH_INSTRUCTION: Final = "invalid_exact_svm_payload_unknown_fourth_instruction"
INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FIFTH_INSTRUCTION: Final = "invalid_exact_svm_payload_unknown_fifth_instruction"
INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SIXTH_INSTRUCTION: Final = "invalid_exact_svm_payload_unknown_sixth_instruction"
INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SEVENTH_INSTRUCTION: Final = "invalid_exact_svm_payload_unknown_seventh_instruction"
INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_OPTIONAL_INSTRUCTION: Final = "invalid_exact_svm_payload_unknown_optional_instruction"
INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION: Final = "invalid_exact_svm_payload_no_transfer_instruction"
INVALID_EXACT_SVM_TRANSACTION_FEE_PAYER_TRANSFERRING_FUNDS: Final = (
    "invalid_exact_svm_payload_transaction_fee_payer_transferring_funds"
)
INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH: Final = "invalid_exact_svm_payload_mint_mismatch"
INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH: Final = "invalid_exact_svm_payload_recipient_mismatch"
INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH: Final = "invalid_exact_svm_payload_amount_mismatch"
INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED: Final = "invalid_exact_svm_transaction_simulation_failed"
INVALID_EXACT_SVM_PAYLOAD_MEMO_MISMATCH: Final = "invalid_exact_svm_payload_memo_mismatch"
INVALID_EXACT_SVM_PAYLOAD_MEMO_COUNT: Final = "invalid_exact_svm_payload_memo_count"
INVALID_EXACT_SVM_VERIFICATION_FAILED: Final = "invalid_exact_svm_verification_failed"
INVALID_EXACT_SVM_FEE_PAYER_MISMATCH: Final = "invalid_exact_svm_fee_payer_mismatch"
INVALID_EXACT_SVM_TRANSACTION_FAILED: Final = "invalid_exact_svm_transaction_failed"
POST_SETTLEMENT_TRANSFER_NOT_CONFIRMED: Final = "post_settlement_transfer_not_confirmed"

# Solana exact, current rules (issue 17): version-1 messages, the outcome check and the smart-wallet path
INVALID_EXACT_SVM_UNSUPPORTED_TRANSACTION_VERSION: Final = "unsupported_transaction_version"
INVALID_EXACT_SVM_MULTIPLE_MATCHING_TRANSFERS: Final = "invalid_exact_svm_payload_multiple_matching_transfers"
SW_FEE_PAYER_NOT_ISOLATED: Final = "invalid_exact_svm_smart_wallet_fee_payer_not_isolated"
SW_MALFORMED_COMPUTE_BUDGET: Final = "invalid_exact_svm_smart_wallet_malformed_compute_budget"
SW_MALFORMED_COMPUTE_LIMIT: Final = "invalid_exact_svm_smart_wallet_malformed_compute_limit"
SW_MALFORMED_COMPUTE_PRICE: Final = "invalid_exact_svm_smart_wallet_malformed_compute_price"
SW_COMPUTE_UNITS_TOO_HIGH: Final = "invalid_exact_svm_smart_wallet_compute_units_too_high"
SW_PRIORITY_FEE_TOO_HIGH: Final = "invalid_exact_svm_smart_wallet_priority_fee_too_high"
SW_UNSUPPORTED_COMPUTE_BUDGET: Final = "invalid_exact_svm_smart_wallet_unsupported_compute_budget_instruction"
SW_ALT_RESOLUTION_FAILED: Final = "invalid_exact_svm_smart_wallet_alt_resolution_failed"
SW_SIMULATION_FAILED: Final = "invalid_exact_svm_smart_wallet_simulation_failed"
SW_NO_TRANSFER_IN_SIMULATION: Final = "invalid_exact_svm_smart_wallet_no_transfer_in_simulation"
SW_TRANSFER_MISMATCH: Final = "invalid_exact_svm_smart_wallet_transfer_mismatch"
SW_MULTIPLE_MATCHING_TRANSFERS: Final = "invalid_exact_svm_smart_wallet_multiple_matching_transfers"
SW_PROGRAM_NOT_ALLOWED: Final = "invalid_exact_svm_smart_wallet_program_not_allowed"

DESCRIPTIONS: Final[dict[str, str]] = {
    INSUFFICIENT_FUNDS: "The payer's balance is below the required amount.",
    INVALID_NETWORK: "The network is unknown or not supported.",
    INVALID_PAYLOAD: "The payment payload is malformed.",
    INVALID_PAYMENT_REQUIREMENTS: "The payment requirements are malformed.",
    INVALID_SCHEME: "The scheme is invalid.",
    UNSUPPORTED_SCHEME: "The scheme is not supported for this network.",
    INVALID_X402_VERSION: "The x402Version is missing or not supported.",
    INVALID_TRANSACTION_STATE: "The transaction is in an unexpected state.",
    UNEXPECTED_VERIFY_ERROR: "Verification failed for an unexpected reason.",
    UNEXPECTED_SETTLE_ERROR: "Settlement failed for an unexpected reason.",
    SETTLEMENT_PENDING: "The settlement transaction was sent but is not confirmed yet.",
    DUPLICATE_SETTLEMENT: "This payment was already settled (replay).",
    ASSET_NOT_DEPLOYED_CONTRACT: "The asset address has no contract code.",
    INVALID_EXACT_EVM_SCHEME: "The payload is not for the exact scheme.",
    INVALID_EXACT_EVM_NETWORK_MISMATCH: "The payload's network differs from the requirements'.",
    INVALID_EXACT_EVM_MISSING_EIP712_DOMAIN: "The requirements lack extra.name/extra.version for the EIP-712 domain.",
    INVALID_EXACT_EVM_RECIPIENT_MISMATCH: "The authorization's recipient is not payTo.",
    INVALID_EXACT_EVM_SIGNATURE: "The signature does not recover to the payer.",
    INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_BEFORE: "The authorization has expired (validBefore too soon).",
    INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALID_AFTER: "The authorization is not valid yet (validAfter ahead).",
    INVALID_EXACT_EVM_AUTHORIZATION_VALUE: "The authorization value is invalid (v1).",
    INVALID_EXACT_EVM_PAYLOAD_AUTHORIZATION_VALUE_MISMATCH: "The authorization value differs from the required amount.",
    INVALID_EXACT_EVM_TRANSACTION_FAILED: "The settlement transaction reverted or failed.",
    INVALID_EXACT_EVM_TRANSFER_EVENT_MISMATCH: "The settlement receipt has no matching Transfer event.",
    INVALID_EXACT_EVM_TOKEN_NAME_MISMATCH: "extra.name differs from the token's EIP-712 name.",
    INVALID_EXACT_EVM_TOKEN_VERSION_MISMATCH: "extra.version differs from the token's EIP-712 version.",
    INVALID_EXACT_EVM_EIP3009_NOT_SUPPORTED: "The token does not implement EIP-3009.",
    INVALID_EXACT_EVM_NONCE_ALREADY_USED: "The authorization nonce was already used on chain.",
    INVALID_EXACT_EVM_INSUFFICIENT_BALANCE: "The payer's token balance is below the value.",
    INVALID_EXACT_EVM_TRANSACTION_SIMULATION_FAILED: "Simulating the transfer failed.",
    INVALID_EXACT_EVM_FAILED_TO_PARSE_SIGNATURE: "The signature could not be parsed.",
    UNSUPPORTED_PAYLOAD_TYPE: "The payload type is not supported.",
    EIP6492_FACTORY_NOT_ALLOWED: "The ERC-6492 deployment factory is not allowed.",
    SMART_WALLET_DEPLOYMENT_FAILED: "Deploying the payer's smart wallet failed.",
    INVALID_UPTO_EVM_SCHEME: "The payload is not for the upto scheme.",
    INVALID_UPTO_EVM_NETWORK_MISMATCH: "The payload's network differs from the requirements'.",
    INVALID_UPTO_EVM_PAYLOAD_SETTLEMENT_EXCEEDS_AMOUNT: "The settlement amount exceeds the signed maximum.",
    INVALID_UPTO_EVM_TRANSACTION_FAILED: "The upto settlement transaction reverted or failed.",
    UPTO_FACILITATOR_MISMATCH: "The witness names another facilitator.",
    UPTO_AMOUNT_EXCEEDS_PERMITTED: "The proxy refused an amount above the permitted maximum.",
    UPTO_UNAUTHORIZED_FACILITATOR: "The proxy refused a settlement sent by another facilitator.",
    INVALID_PERMIT2_PAYLOAD_FORMAT: "The Permit2 authorization is malformed.",
    INVALID_PERMIT2_SPENDER: "The Permit2 spender is not the x402 proxy.",
    INVALID_PERMIT2_RECIPIENT_MISMATCH: "The Permit2 witness recipient is not payTo.",
    PERMIT2_DEADLINE_EXPIRED: "The Permit2 deadline has passed.",
    PERMIT2_NOT_YET_VALID: "The Permit2 authorization is not valid yet.",
    PERMIT2_AMOUNT_MISMATCH: "The Permit2 amount differs from the required amount.",
    PERMIT2_TOKEN_MISMATCH: "The Permit2 token differs from the asset.",
    INVALID_PERMIT2_SIGNATURE: "The Permit2 signature is invalid.",
    PERMIT2_ALLOWANCE_REQUIRED: "The payer has not approved Permit2 for the token.",
    PERMIT2_SIMULATION_FAILED: "Simulating the Permit2 transfer failed.",
    PERMIT2_INSUFFICIENT_BALANCE: "The payer's balance is below the Permit2 amount.",
    PERMIT2_PROXY_NOT_DEPLOYED: "The x402 Permit2 proxy is not deployed on this network.",
    PERMIT2_INVALID_AMOUNT: "The Permit2 amount is invalid.",
    PERMIT2_INVALID_DESTINATION: "The Permit2 destination is invalid.",
    PERMIT2_INVALID_OWNER: "The Permit2 owner is invalid.",
    PERMIT2_PAYMENT_TOO_EARLY: "The Permit2 payment is before its validity window.",
    PERMIT2_INVALID_NONCE: "The Permit2 nonce is invalid.",
    PERMIT2_2612_AMOUNT_MISMATCH: "The EIP-2612 permit amount does not cover the Permit2 approval.",
    INVALID_ERC20_APPROVAL_EXTENSION_FORMAT: "The ERC-20 approval extension is malformed.",
    ERC20_APPROVAL_FROM_MISMATCH: "The approval signer is not the payer.",
    ERC20_APPROVAL_ASSET_MISMATCH: "The approval is for another token.",
    ERC20_APPROVAL_SPENDER_NOT_PERMIT2: "The approval spender is not Permit2.",
    ERC20_APPROVAL_TX_WRONG_TARGET: "The approval transaction targets another contract.",
    ERC20_APPROVAL_TX_WRONG_SELECTOR: "The approval transaction calls another function.",
    ERC20_APPROVAL_TX_WRONG_SPENDER: "The approval transaction approves another spender.",
    ERC20_APPROVAL_TX_INVALID_CALLDATA: "The approval transaction calldata is invalid.",
    ERC20_APPROVAL_TX_SIGNER_MISMATCH: "The approval transaction signer is not the payer.",
    ERC20_APPROVAL_TX_INVALID_SIGNATURE: "The approval transaction signature is invalid.",
    ERC20_APPROVAL_TX_PARSE_FAILED: "The approval transaction could not be parsed.",
    ERC20_APPROVAL_TX_FAILED: "The approval transaction failed.",
    ERC20_APPROVAL_BROADCAST_FAILED: "Broadcasting the approval transaction failed.",
    INVALID_EIP2612_EXTENSION_FORMAT: "The EIP-2612 extension is malformed.",
    EIP2612_FROM_MISMATCH: "The EIP-2612 permit owner is not the payer.",
    EIP2612_ASSET_MISMATCH: "The EIP-2612 permit is for another token.",
    EIP2612_SPENDER_NOT_PERMIT2: "The EIP-2612 permit spender is not Permit2.",
    EIP2612_DEADLINE_EXPIRED: "The EIP-2612 permit deadline has passed.",
    INVALID_EXACT_SVM_UNSUPPORTED_SCHEME: "The payload is not for the exact scheme.",
    INVALID_EXACT_SVM_NETWORK_MISMATCH: "The payload's network differs from the requirements'.",
    INVALID_EXACT_SVM_PAYLOAD_MISSING_FEE_PAYER: "The requirements lack extra.feePayer.",
    INVALID_EXACT_SVM_FEE_PAYER_NOT_MANAGED: "The fee payer is not one of the facilitator's signers.",
    INVALID_EXACT_SVM_PAYLOAD_TRANSACTION: "The transaction is invalid.",
    INVALID_EXACT_SVM_TRANSACTION_COULD_NOT_BE_DECODED: "The transaction could not be decoded.",
    INVALID_EXACT_SVM_PAYLOAD_SIGNATURE_INVALID: "A transaction signature is invalid.",
    INVALID_EXACT_SVM_PAYLOAD_EXCESSIVE_SIGNERS: "The transaction has too many signers.",
    INVALID_EXACT_SVM_LENGTH: "The transaction has an unexpected number of instructions.",
    INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION: "The compute-unit limit instruction is invalid.",
    INVALID_EXACT_SVM_COMPUTE_LIMIT_INSTRUCTION_TOO_HIGH: "The compute-unit limit is too high.",
    INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION: "The compute-unit price instruction is invalid.",
    INVALID_EXACT_SVM_COMPUTE_PRICE_INSTRUCTION_TOO_HIGH: "The compute-unit price is too high.",
    INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FOURTH_INSTRUCTION: "The fourth instruction is not allowed.",
    INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_FIFTH_INSTRUCTION: "The fifth instruction is not allowed.",
    INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SIXTH_INSTRUCTION: "The sixth instruction is not allowed.",
    INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_SEVENTH_INSTRUCTION: "The seventh instruction is not allowed.",
    INVALID_EXACT_SVM_PAYLOAD_UNKNOWN_OPTIONAL_INSTRUCTION: "An optional instruction is not allowed.",
    INVALID_EXACT_SVM_PAYLOAD_NO_TRANSFER_INSTRUCTION: "The transaction has no token transfer instruction.",
    INVALID_EXACT_SVM_TRANSACTION_FEE_PAYER_TRANSFERRING_FUNDS: "The fee payer would transfer funds.",
    INVALID_EXACT_SVM_PAYLOAD_MINT_MISMATCH: "The transfer is for another mint.",
    INVALID_EXACT_SVM_PAYLOAD_RECIPIENT_MISMATCH: "The transfer goes to another recipient.",
    INVALID_EXACT_SVM_PAYLOAD_AMOUNT_MISMATCH: "The transfer pays less than the required amount.",
    INVALID_EXACT_SVM_TRANSACTION_SIMULATION_FAILED: "Simulating the transaction failed.",
    INVALID_EXACT_SVM_PAYLOAD_MEMO_MISMATCH: "The memo differs from the required memo.",
    INVALID_EXACT_SVM_PAYLOAD_MEMO_COUNT: "The transaction has too many memo instructions.",
    INVALID_EXACT_SVM_VERIFICATION_FAILED: "Verification failed.",
    INVALID_EXACT_SVM_FEE_PAYER_MISMATCH: "The transaction's fee payer is not extra.feePayer.",
    INVALID_EXACT_SVM_TRANSACTION_FAILED: "The settlement transaction failed.",
    POST_SETTLEMENT_TRANSFER_NOT_CONFIRMED: "The transfer was not confirmed after settlement.",
    INVALID_EXACT_SVM_UNSUPPORTED_TRANSACTION_VERSION: "The transaction message version is not supported.",
    INVALID_EXACT_SVM_MULTIPLE_MATCHING_TRANSFERS: "More than one transfer in the transaction pays the requirement.",
    SW_FEE_PAYER_NOT_ISOLATED: "The fee payer appears in an instruction.",
    SW_MALFORMED_COMPUTE_BUDGET: "A compute-budget instruction is malformed.",
    SW_MALFORMED_COMPUTE_LIMIT: "The compute-unit limit instruction is malformed.",
    SW_MALFORMED_COMPUTE_PRICE: "The compute-unit price instruction is malformed.",
    SW_COMPUTE_UNITS_TOO_HIGH: "The smart-wallet compute-unit limit is too high.",
    SW_PRIORITY_FEE_TOO_HIGH: "The smart-wallet compute-unit price is too high.",
    SW_UNSUPPORTED_COMPUTE_BUDGET: "A compute-budget instruction of an unsupported type.",
    SW_ALT_RESOLUTION_FAILED: "An address lookup table could not be resolved.",
    SW_SIMULATION_FAILED: "Simulating the smart-wallet transaction failed.",
    SW_NO_TRANSFER_IN_SIMULATION: "The simulation shows no token transfer.",
    SW_TRANSFER_MISMATCH: "No transfer in the simulation pays the requirement.",
    SW_MULTIPLE_MATCHING_TRANSFERS: "More than one simulated transfer pays the requirement.",
    SW_PROGRAM_NOT_ALLOWED: "A top-level program is not on the smart-wallet allowlist.",
}
"""One-line description of every reason code (used for docs)."""
