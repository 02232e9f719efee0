"""Hostile values in every field of a real, signed payment: /verify and /settle on the dev chain never answer 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chains.evm.devchain import DevChain
from tests.harness import evm
from tests.harness.hostile import HOSTILE_JSON, deep_array, json_bytes, leaves, replaced


@pytest.mark.slow
async def test_payment_fields_fuzzed_on_the_chain_path(
    database_url: str, aiohttp_client: Any, devchain: DevChain
) -> None:
    client, _ = await evm.facilitator_client(aiohttp_client, devchain, database_url)
    payer_key, req = await evm.payer_and_offer(devchain, 10_000)
    base = evm.sign_payment(devchain, payer_key, req).body()
    failures: list[str] = []
    reasons: dict[str, int] = {}
    sent = 0
    # every /verify first: once one variant settles, its nonce is spent and verify stops earlier
    for op in ("/verify", "/settle"):
        for path in leaves(base):
            for value in [*HOSTILE_JSON, "DEEP"]:
                if value == "DEEP":
                    body = json_bytes(replaced(base, path, "@@")).replace(b'"@@"', deep_array())
                else:
                    body = json_bytes(replaced(base, path, value))
                r = await client.post(op, data=body, headers={"Content-Type": "application/json"})
                text = await r.text()
                sent += 1
                if r.status >= 500:
                    failures.append(f"{op} {'.'.join(map(str, path))}={str(value)[:40]!r} -> {r.status} {text[:200]}")
                elif r.status != 200:
                    assert r.content_type == "application/problem+json", (op, path, text[:200])
                else:
                    doc = json.loads(text)
                    reason = doc.get("invalidReason") or doc.get("errorReason") or "ok"
                    reasons[reason] = reasons.get(reason, 0) + 1
    assert sent > 1_000
    assert not failures, "\n".join(failures[:30]) + f"\n({len(failures)} of {sent})"
    # the hostile values reached the EVM adapter's own checks, not only the envelope decoder
    assert len([r for r in reasons if r.startswith("invalid_exact_evm_")]) >= 6, reasons
