"""Smart-wallet sign-in signatures (``x402.paywall.siwx.ContractSignatures``): EIP-1271 and ERC-6492 over RPC.

A deployed wallet is asked ``isValidSignature(digest, signature)`` (the inner signature of an ERC-6492 wrapper);
a wallet not deployed yet, whose signature carries the ERC-6492 wrapper, is checked with the deployless validator
(``eth_call`` of its creation code: the factory deploys the wallet inside the call only). ``factories`` limits the
ERC-6492 factories (None: any, since a sign-in moves no money and the call persists nothing).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

from eth_abi.abi import encode as abi_encode

from chains.evm.rpc import RpcError, RpcPool
from chains.evm.verify import (
    ERC1271_MAGIC,
    call_params,
    erc6492_validator_code,
    hexdata,
    is_valid_signature_data,
    unwrap_erc6492,
)

RPC_TIMEOUT: Final = 10.0


class RpcContractSignatures:
    """EIP-1271 / ERC-6492 checks on the networks of ``pools`` (CAIP-2 id -> RpcPool)."""

    def __init__(self, pools: Mapping[str, RpcPool], *, factories: Collection[str] | None = None) -> None:
        self.pools = dict(pools)
        self.factories = None if factories is None else {f.lower() for f in factories}

    @classmethod
    def from_urls(cls, urls: Mapping[str, tuple[str, ...]], **kw: object) -> RpcContractSignatures:
        """One pool per network from its RPC URLs."""
        pools = {net: RpcPool(net, u, timeout=RPC_TIMEOUT) for net, u in urls.items()}
        return cls(pools, **kw)  # type: ignore[arg-type]

    async def close(self) -> None:
        """Close the pools' HTTP sessions."""
        for pool in self.pools.values():
            await pool.close()

    async def is_valid(self, chain_id: str, address: str, digest: bytes, signature: bytes) -> bool:
        """True when the wallet at ``address`` accepts ``signature`` over ``digest``; False for unknown chains."""
        pool = self.pools.get(chain_id)
        if pool is None:
            return False
        wrapped = unwrap_erc6492(signature)
        try:
            code = await pool.call("eth_getCode", [address, "latest"])
            if isinstance(code, str) and code not in ("0x", "0x0", ""):
                inner = wrapped[2] if wrapped is not None else signature
                answer = await pool.call(
                    "eth_call", [call_params(address, is_valid_signature_data(digest, inner)), "latest"]
                )
                return isinstance(answer, str) and answer[2:10] == ERC1271_MAGIC.hex()
            if wrapped is None or (self.factories is not None and wrapped[0].lower() not in self.factories):
                return False
            data = erc6492_validator_code() + abi_encode(["address", "bytes32", "bytes"], [address, digest, signature])
            answer = await pool.call("eth_call", [{"data": hexdata(data)}, "latest"])
        except RpcError:  # a revert: not valid (ChainUnavailable, a dependency failure, propagates)
            return False
        return isinstance(answer, str) and answer.lower() == "0x01"
