"""Trust scores (docs/trust.md): 0..100 with factors for payer addresses, agent wallets and listed resources."""
