"""Pay a URL with the official PyPI ``x402`` client (run inside tests/interop/.venv-official, never our venv: both
packages are named ``x402``). Pays ``exact`` (EIP-3009, or Permit2 where the offer says so) and ``upto`` on
eip155:31337 with spend controls off. usage: PAYER_KEY=0x... python py_pay.py URL; stdout: one JSON line
{status, body, paymentResponse}."""

import asyncio
import json
import os
import sys

import httpx
from eth_account import Account
from x402 import x402Client
from x402.http.clients import x402_httpx_transport
from x402.http.utils import decode_payment_response_header
from x402.mechanisms.evm import EthAccountSigner
from x402.mechanisms.evm.exact import register_exact_evm_client
from x402.mechanisms.evm.upto import UptoEvmScheme


async def main(url: str) -> dict:
    signer = EthAccountSigner(Account.from_key(os.environ["PAYER_KEY"]))
    client = x402Client()
    register_exact_evm_client(client, signer, networks="eip155:31337")
    client.register("eip155:31337", UptoEvmScheme(signer))
    client.set_spend_controls(False)
    async with httpx.AsyncClient(transport=x402_httpx_transport(client), timeout=30) as http:
        res = await http.get(url)
    header = res.headers.get("PAYMENT-RESPONSE")
    receipt = decode_payment_response_header(header).model_dump(by_alias=True, exclude_none=True) if header else None
    try:
        body = res.json()
    except ValueError:
        body = res.text
    return {"status": res.status_code, "body": body, "paymentResponse": receipt}


if __name__ == "__main__":
    try:
        print(json.dumps(asyncio.run(main(sys.argv[1]))))
    except Exception as exc:  # one line on stderr, non-zero exit: the test shows it
        print(f"py_pay: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
