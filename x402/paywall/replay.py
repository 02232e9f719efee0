"""The paywall's replay guard: one payment buys one handler run.

The facilitator journal answers an identical settle with the recorded result (so a client can retry safely), which
means a replayed payment header would be "settled" again and get the resource again. The middleware therefore
claims the payment id (``SET NX``) after verify and before the handler, so two concurrent or later uses of one
payment cannot both run the handler. A claim is released when nothing was charged (handler failed, settle
failed), so the payer may retry; after a settlement it is kept until the authorization has expired.
"""

from __future__ import annotations

import time
from typing import Final

from x402.cache import Cache

_PREFIX: Final = "x402:paywall:payment:"
_ID_PREFIX: Final = "x402:paywall:identifier:"
#: how long the paywall remembers which purchase a payment identifier stands for
IDENTIFIER_TTL: Final = 7 * 24 * 3600.0
CLAIMED: Final = b"claimed"
SETTLED: Final = b"settled"
#: how long a settled payment id is remembered when its authorization has no validBefore
DEFAULT_SETTLED_TTL: Final = 24 * 3600.0
_MAX_SETTLED_TTL: Final = 7 * 24 * 3600.0
# a claim must outlive handler + settle; it is replaced or released long before in practice
_CLAIM_MARGIN: Final = 300.0


class PaymentClaims:
    """Claims on payment ids in the service cache (Redis across processes, in-process otherwise)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache

    async def claim(self, payment_id: str, max_timeout_seconds: int) -> bool:
        """Claim a payment for this request; False when it is in use or already spent."""
        return await self.cache.set(_PREFIX + payment_id, CLAIMED, ttl=max_timeout_seconds + _CLAIM_MARGIN, nx=True)

    async def state(self, payment_id: str) -> bytes | None:
        """``claimed``, ``settled:<tx>`` or None."""
        return await self.cache.get(_PREFIX + payment_id)

    async def release(self, payment_id: str) -> None:
        """Give a claim back (nothing was charged); the Cache protocol has no delete, so expire it at once."""
        await self.cache.set(_PREFIX + payment_id, b"released", ttl=0.001)

    async def settled(self, payment_id: str, transaction: str, valid_before: int | None) -> None:
        """Remember a spent payment until its authorization can no longer be used anyway."""
        ttl = DEFAULT_SETTLED_TTL if valid_before is None else valid_before - time.time() + 60
        ttl = min(max(ttl, 60.0), _MAX_SETTLED_TTL)
        await self.cache.set(_PREFIX + payment_id, SETTLED + b":" + transaction.encode(), ttl=ttl)

    async def bind_identifier(self, identifier: str, fingerprint: bytes) -> bool:
        """Bind a payment identifier to one purchase (method, resource, offer); False when bound to another."""
        value = fingerprint.hex().encode()
        if await self.cache.set(_ID_PREFIX + identifier, value, ttl=IDENTIFIER_TTL, nx=True):
            return True
        bound = await self.cache.get(_ID_PREFIX + identifier)
        return bound is None or bound == value
