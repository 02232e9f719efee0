"""Sign a Sign-In-With-X challenge with the official PyPI ``x402`` package (run in its own venv: it shares our import
name). stdin: {"extensions": <402 extensions>, "url": <resource URL>, "privateKey": "0x..."};
stdout: one JSON line {"header": <SIGN-IN-WITH-X value>}."""

import asyncio
import json
import sys

from eth_account import Account
from x402.extensions.sign_in_with_x import create_siwx_payload, encode_siwx_header


async def main() -> None:
    req = json.load(sys.stdin)
    ext = req["extensions"]["sign-in-with-x"]
    chain = ext["supportedChains"][0]
    info = {**ext["info"], "chainId": chain["chainId"], "type": chain["type"]}
    payload = await create_siwx_payload(info, Account.from_key(req["privateKey"]), req["url"])
    print(json.dumps({"header": encode_siwx_header(payload)}))


asyncio.run(main())
