"""``POST /v1/resources/validate``: check a listing the way a crawl would, without storing anything.

Five checks, in order, each ``{"ok": bool, "reason"?: str, "detail"?: str}``; a check after a failed one is
``{"ok": false, "reason": "skipped"}``:

* ``reachable``: the URL answered at all (refused or private addresses fail here, through the SSRF guard).
* ``answers402``: the answer was HTTP 402.
* ``parses``: a v2 ``PAYMENT-REQUIRED`` header or an x402 JSON body with atomic ``accepts``.
* ``bazaar``: the bazaar extension is present and its ``info`` has the shape the spec requires (the reason is
  the one a facilitator would answer in ``EXTENSION-RESPONSES``).
* ``ownership``: the origin's ``/.well-known/x402`` (or ``/openapi.json``) carries a proof signed by every payTo.
"""

from __future__ import annotations

import re
from typing import Any, Final

from yarl import URL

from x402.errors import BadRequest
from x402.service.registry.bazaar import BazaarRejected, validate_info
from x402.service.registry.crawl import discover
from x402.service.registry.models import METHODS, check_http_url, summarize
from x402.service.registry.outbound import Outbound, OutboundFailed
from x402.service.registry.probe import ProbeResult, probe
from x402.service.registry.proofs import proven_pay_tos

_BAD_PERCENT: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
CHECKS: Final = ("reachable", "answers402", "parses", "bazaar", "ownership")
_SKIPPED: Final = {"ok": False, "reason": "skipped"}


def _check(ok: bool, reason: str | None = None, detail: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": ok}
    if reason:
        out["reason"] = reason
    if detail:
        out["detail"] = detail
    return out


def parse_request(body: object) -> tuple[str, str]:
    """``(url, method)`` of a validate request; raises BadRequest."""
    if not isinstance(body, dict):
        raise BadRequest("expected a JSON object with url", code="invalid_body")
    url = check_http_url(body.get("url"))
    if url.count("#") > 1 or _BAD_PERCENT.search(url):
        # RFC 3986: one fragment, percent signs start an escape (what the document's "uri" format promises)
        raise BadRequest("url is not a valid URI (a second '#' or a bad %-escape)", code="invalid_url")
    method = body.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise BadRequest(f"method must be one of {sorted(METHODS)}", code="invalid_method")
    return url, method.upper()


def _probe_checks(result: ProbeResult) -> dict[str, dict[str, Any]]:
    reason = result.reason
    checks: dict[str, dict[str, Any]] = {}
    if reason == "unreachable":
        return {"reachable": _check(False, "unreachable", result.detail)}
    checks["reachable"] = _check(True, detail=None if result.http_status is None else f"HTTP {result.http_status}")
    if reason in ("server_error", "not_402"):
        checks["answers402"] = _check(False, reason, result.detail)
        return checks
    checks["answers402"] = _check(True)
    if reason in ("invalid_402", "empty_accepts", "decimal_amount"):
        checks["parses"] = _check(False, reason, result.detail)
        return checks
    checks["parses"] = _check(True, detail=f"x402 v{result.x402_version} in the {result.transport}")
    return checks


def _bazaar_check(result: ProbeResult) -> dict[str, Any]:
    ext = result.extensions.get("bazaar")
    if ext is None:
        if result.x402_version == 1 and result.reason is None:
            return _check(True, detail="v1 outputSchema.input")
        return _check(False, "missing_bazaar_extension", "the 402 declares no extensions.bazaar")
    try:
        validate_info(ext)
    except BazaarRejected as exc:
        return _check(False, exc.reason, "extensions.bazaar does not have the shape the bazaar spec requires")
    return _check(True)


async def _ownership_check(outbound: Outbound, result: ProbeResult) -> dict[str, Any]:
    origin = str(URL(result.url).origin())
    try:
        found = await discover(outbound, origin)
    except (OutboundFailed, BadRequest) as exc:
        return _check(False, "discovery_unreachable", getattr(exc, "detail", str(exc)))
    if not found.proofs:
        where = "/.well-known/x402" if found.sources.get("wellKnown") else "no /.well-known/x402 document"
        return _check(False, "no_ownership_proof", f"{where}: no ownershipProofs")
    pay_tos = summarize(result.accepts, result.x402_version or 2).pay_to
    proven = proven_pay_tos(found.proofs, origin, pay_tos)
    missing = [p for p in pay_tos if p not in proven]
    if missing:
        return _check(False, "invalid_ownership_proof", f"no proof signed by payTo {', '.join(missing)} of {origin}")
    return {"ok": True, "proven": proven}


async def validate_listing(outbound: Outbound, url: str, method: str) -> dict[str, Any]:
    """The validation report of ``url`` (``valid`` when every check passed); never raises for remote failures."""
    result = await probe(outbound, url, method)
    checks = _probe_checks(result)
    if "parses" in checks and checks["parses"]["ok"]:
        checks["bazaar"] = _bazaar_check(result)
        checks["ownership"] = await _ownership_check(outbound, result)
    report = {name: checks.get(name, _SKIPPED) for name in CHECKS}
    body: dict[str, Any] = {
        "url": url,
        "method": method,
        "valid": all(c["ok"] for c in report.values()),
        "checks": report,
    }
    if result.http_status is not None:
        body["httpStatus"] = result.http_status
    return body
