"""Schemathesis hooks for tests/platform/test_schemathesis.py (loaded through ``SCHEMATHESIS_HOOKS``)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

#: The documented Idempotency-Key shape (x402/platform/openapi.py).
_KEY = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    """A well-formed Idempotency-Key becomes a fresh one, so independent cases never share a key by chance.

    Reusing a key with another body is answered 422 idempotency_key_reused by design (tests/platform/
    test_idempotency.py covers it); malformed keys stay as generated, so their rejection is still checked.
    """
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _KEY.match(key):
        headers["Idempotency-Key"] = str(uuid.uuid4())
