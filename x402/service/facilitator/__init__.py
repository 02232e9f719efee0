"""The facilitator service: verify, settle, journal, reconciler, nonce lanes, verify-tx and its routes."""
