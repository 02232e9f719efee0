"""Payment intent: what a payment seems to buy (resource path, tier, duration), with a confidence.

Sources, strongest first: explicit keys in a memo (Solana Memo instruction, an EVM payload ``memo``, a printable
EIP-3009 nonce or Permit2 witness) or in the requirements' ``extra``; explicit URL query parameters; words in a
free-text memo; words in the URL path. Hints are advisory: nothing is refused because of them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from risk.model import Intent, RiskContext
from x402.errors import BadRequest
from x402.wire import jsonlimits

MEMO_PROGRAMS = frozenset(
    {
        Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"),
        Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"),
    }
)
MAX_TX_B64 = 8192
TIERS = ("free", "basic", "starter", "standard", "plus", "pro", "premium", "business", "enterprise", "gold", "silver")
_TIER_WORD = re.compile(r"(?<![a-z])(" + "|".join(TIERS) + r")(?![a-z])", re.I)
_DURATION = re.compile(
    r"(?<![a-z0-9])(\d{1,4}\s?(?:s|sec|m|min|h|hr|hours?|d|days?|w|weeks?|mo|months?|y|years?)"
    r"|hourly|daily|weekly|monthly|yearly|annual|lifetime)(?![a-z])",
    re.I,
)
_TIER_KEYS = ("tier", "plan", "level", "package")
_DURATION_KEYS = ("duration", "period", "term", "ttl", "days", "hours", "expires_in")
_PATH_KEYS = ("resource", "path", "endpoint", "route")


def solana_memos(payload: Mapping[str, Any]) -> list[str]:
    """Texts of the Memo instructions in an SVM payload's transaction (empty when there is none)."""
    raw = payload.get("transaction")
    if not isinstance(raw, str) or len(raw) > MAX_TX_B64:
        return []
    try:
        tx = VersionedTransaction.from_bytes(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error):
        return []
    msg = tx.message
    keys = msg.account_keys
    out = []
    for ix in msg.instructions:
        if ix.program_id_index < len(keys) and keys[ix.program_id_index] in MEMO_PROGRAMS:
            text = _printable(bytes(ix.data))
            if text:
                out.append(text)
    return out


def _printable(data: bytes) -> str | None:
    data = data.rstrip(b"\x00")
    if not data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def _hex_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) > 2 + 2048:
        return None
    try:
        return _printable(bytes.fromhex(value[2:]).lstrip(b"\x00"))
    except ValueError:
        return None


def evm_memos(payload: Mapping[str, Any], extensions: Mapping[str, Any]) -> list[str]:
    """Memo-like texts of an EVM payload: ``memo``, a printable nonce, a Permit2 witness ``extra``."""
    out = []
    for value in (payload.get("memo"), extensions.get("memo")):
        if isinstance(value, str) and value:
            out.append(value[:512])
    auth = payload.get("authorization")
    if isinstance(auth, Mapping):
        text = _hex_text(auth.get("nonce"))
        if text and len(text) >= 3:
            out.append(text)
    permit = payload.get("permit2Authorization")
    if isinstance(permit, Mapping):
        witness = permit.get("witness")
        if isinstance(witness, Mapping):
            text = _hex_text(witness.get("extra"))
            if text:
                out.append(text)
    return out


def _pairs(text: str) -> dict[str, str]:
    """Key/value pairs in a memo: a JSON object, or ``k=v`` / ``k:v`` separated by ; , & or spaces."""
    text = text.strip()
    if text.startswith("{"):
        try:
            doc = jsonlimits.loads(text)  # the memo is the payer's text: bounded like every untrusted JSON
        except BadRequest:
            doc = None
        if isinstance(doc, dict):
            return {str(k).lower(): str(v) for k, v in doc.items() if isinstance(v, str | int | float)}
    out = {}
    for part in re.split(r"[;,&\s]+", text):
        m = re.match(r"^([A-Za-z_]{2,20})[=:](.{1,100})$", part)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


class _Hints:
    def __init__(self) -> None:
        self.values: dict[str, tuple[str, float]] = {}
        self.sources: list[str] = []

    def offer(self, field: str, value: str | None, confidence: float, source: str) -> None:
        if not value:
            return
        current = self.values.get(field)
        if current is None or confidence > current[1]:
            self.values[field] = (value[:100], confidence)
        if source not in self.sources:
            self.sources.append(source)

    def from_pairs(self, pairs: Mapping[str, str], confidence: float, source: str) -> None:
        for keys, field in ((_TIER_KEYS, "tier"), (_DURATION_KEYS, "duration"), (_PATH_KEYS, "resource_path")):
            for k in keys:
                if k in pairs:
                    self.offer(field, pairs[k], confidence, source)
                    break

    def from_words(self, text: str, confidence: float, source: str) -> None:
        m = _TIER_WORD.search(text)
        if m:
            self.offer("tier", m.group(1).lower(), confidence, source)
        m = _DURATION.search(text)
        if m:
            self.offer("duration", m.group(1).lower().replace(" ", ""), confidence, source)


@lru_cache(maxsize=4096)
def _url_parts(resource: str) -> tuple[str, Mapping[str, str]]:
    """The path and the (lower-cased) query parameters of a resource URL; memoised, as every payment for the same
    resource parses the same URL (the mapping is shared: read-only)."""
    parts = urlsplit(resource)
    query = {k.lower(): v[0] for k, v in parse_qs(parts.query).items() if v}
    return parts.path, MappingProxyType(query)


def infer_intent(ctx: RiskContext) -> Intent:
    """Hints from memos, requirements extra and the resource URL."""
    hints = _Hints()
    memos = solana_memos(ctx.payload) if ctx.network.startswith("solana:") else []
    memos += evm_memos(ctx.payload, ctx.extra.get("extensions") or {}) if ctx.network.startswith("eip155:") else []
    for memo in memos:
        pairs = _pairs(memo)
        if pairs:
            hints.from_pairs(pairs, 0.9, "memo")
        hints.from_words(memo, 0.6, "memo")
    req_extra = ctx.extra.get("requirements_extra")
    if isinstance(req_extra, Mapping):
        hints.from_pairs(
            {str(k).lower(): str(v) for k, v in req_extra.items() if isinstance(v, str | int)}, 0.9, "extra"
        )
    if ctx.resource:
        path, query = _url_parts(ctx.resource)
        if path:
            hints.offer("resource_path", path, 0.3, "url")
        hints.from_pairs(query, 0.8, "url")
        hints.from_words(path, 0.5, "url")
    if not hints.values:
        return Intent(memo=memos[0][:200] if memos else None, confidence=0.0)
    get = hints.values.get
    confidence = max(c for _, c in hints.values.values())
    return Intent(
        resource_path=(get("resource_path") or (None, 0))[0],
        tier=(get("tier") or (None, 0))[0],
        duration=(get("duration") or (None, 0))[0],
        memo=memos[0][:200] if memos else None,
        sources=tuple(hints.sources),
        confidence=confidence,
    )
