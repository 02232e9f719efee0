"""PayTo claims: a tenant proves it controls a payTo address, so verify-tx for it is refused to everyone else.

The proof is a signature by the payTo key of ``claim_message(address, tenant)`` (it names the tenant, so one
tenant's proof cannot be replayed by another): EIP-191 ``personal_sign`` for an EVM address, ed25519 for a
Solana address, checked with the registry's ownership-proof code. One claimant per address.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Final

from aiohttp import web

from x402.errors import BadRequest, Conflict, NotFound
from x402.service.appkeys import PLATFORM
from x402.service.http import json_object as _body
from x402.service.http import json_response as _json
from x402.service.middleware import REQUEST_ID
from x402.service.platform import audit
from x402.service.platform.audit import AuditEntry
from x402.service.platform.auth import Principal, require_tenant
from x402.service.platform.tenants import parse_uuid
from x402.service.registry.proofs import proves
from x402.service.storage.scope import system_scope

routes = web.RouteTableDef()

_EVM: Final = re.compile(r"^0x[0-9a-fA-F]{40}$")
_COLS: Final = "id, tenant_id, address, proof_kind, created_at"
MAX_SIGNATURE: Final = 200  # hex or base58 of a 64/65-byte signature is far shorter


def normalize_address(raw: object) -> str:
    """EVM addresses lower-case; Solana addresses must be a valid base58 public key. 400 otherwise."""
    if isinstance(raw, str) and _EVM.fullmatch(raw):
        return raw.lower()
    if isinstance(raw, str) and 32 <= len(raw) <= 44:
        from solders.pubkey import Pubkey

        try:
            Pubkey.from_string(raw)
        except ValueError:
            pass
        else:
            return raw
    raise BadRequest("address must be an EVM (0x…) or Solana (base58) address", code="invalid_address")


def claim_message(address: str, tenant_id: uuid.UUID) -> str:
    """The exact text the payTo key signs to prove a claim."""
    return f"x402 payTo claim\naddress: {address}\ntenant: {tenant_id}"


def claim_json(row: Any) -> dict[str, Any]:
    """A claim as the API shows it."""
    return {
        "id": str(row["id"]),
        "address": row["address"],
        "proofKind": row["proof_kind"],
        "createdAt": row["created_at"].isoformat(),
    }


def _caller(request: web.Request) -> Principal:
    principal = require_tenant(request)
    principal.require("verify")
    return principal


@routes.post("/v1/payto-claims")
async def create_claim(request: web.Request) -> web.Response:
    """Claim ``{address, signature}``; without a valid signature the 400 names the ``message`` to sign."""
    principal = _caller(request)
    assert principal.tenant_id is not None
    doc = await _body(request)
    address = normalize_address(doc.get("address"))
    message = claim_message(address, principal.tenant_id)
    signature = doc.get("signature")
    if not isinstance(signature, str) or not signature:
        raise BadRequest("sign the message with the payTo key", code="claim_signature_required", message=message)
    kind = proves(signature, message, address) if len(signature) <= MAX_SIGNATURE else None
    if kind is None:
        raise BadRequest(
            "the signature is not the payTo key's over message", code="invalid_claim_signature", message=message
        )
    pool = request.app[PLATFORM].store.pool
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO payto_claims (tenant_id, address, proof_kind, signature) VALUES ($1, $2, $3, $4)
                ON CONFLICT ON CONSTRAINT payto_claims_address DO NOTHING RETURNING {_COLS}""",
            principal.tenant_id,
            address,
            kind,
            signature,
        )
        if row is None:
            with system_scope("payTo claims: one claimant per address, whichever tenant it is"):
                existing = await pool.fetchrow(f"SELECT {_COLS} FROM payto_claims WHERE address = $1", address)
            if existing is not None and existing["tenant_id"] == principal.tenant_id:
                return _json(claim_json(existing))
            raise Conflict("this payTo is claimed by another tenant", code="payto_claimed")
        out = claim_json(row)
        await audit.append(
            conn,
            AuditEntry(
                principal.actor, "payto_claim.create", "payto_claim", out["id"], None, out, request.get(REQUEST_ID)
            ),
        )
    return _json(out, 201)


@routes.get("/v1/payto-claims")
async def list_claims(request: web.Request) -> web.Response:
    """The calling tenant's claims."""
    principal = _caller(request)
    rows = await request.app[PLATFORM].store.pool.fetch(
        f"SELECT {_COLS} FROM payto_claims WHERE tenant_id = $1 ORDER BY created_at, id", principal.tenant_id
    )
    return _json({"data": [claim_json(r) for r in rows]})


@routes.delete("/v1/payto-claims/{id}")
async def delete_claim(request: web.Request) -> web.Response:
    """Give a claim up (another tenant's claim is not found)."""
    principal = _caller(request)
    claim_id = parse_uuid(request.match_info["id"])
    pool = request.app[PLATFORM].store.pool
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"DELETE FROM payto_claims WHERE id = $1 AND tenant_id = $2 RETURNING {_COLS}",
            claim_id,
            principal.tenant_id,
        )
        if row is None:
            raise NotFound("no such claim")
        before = claim_json(row)
        await audit.append(
            conn,
            AuditEntry(
                principal.actor,
                "payto_claim.delete",
                "payto_claim",
                before["id"],
                before,
                None,
                request.get(REQUEST_ID),
            ),
        )
    return web.Response(status=204)
