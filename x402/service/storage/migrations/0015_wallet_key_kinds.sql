-- Chain-agnostic agent wallets: a wallet's addresses are one map keyed by key kind label (chains/keys.py), and a sealed
-- key may be of any kind a chain adapter brings (not only 'evm' / 'svm').
ALTER TABLE wallets ADD COLUMN addresses jsonb NOT NULL DEFAULT '{}';
UPDATE wallets SET addresses = jsonb_strip_nulls(jsonb_build_object('evm', evm_address, 'solana', svm_address));
ALTER TABLE wallets DROP COLUMN evm_address, DROP COLUMN svm_address;
ALTER TABLE wallet_keys DROP CONSTRAINT wallet_keys_chain_check;
ALTER TABLE wallet_keys ADD CONSTRAINT wallet_keys_chain_check CHECK (chain ~ '^[a-z][a-z0-9_-]{0,31}$');
