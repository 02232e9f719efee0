"""One problem+json builder (x402.errors): the error middleware, aiohttp's refusals and the paywall all use it."""

from __future__ import annotations

import json
from pathlib import Path

from x402.errors import PROBLEM_JSON, BadRequest, problem_document, problem_response
from x402.paywall.responses import problem as paywall_problem

ROOT = Path(__file__).resolve().parents[2]


def test_the_document_and_the_response() -> None:
    doc = problem_document(409, "payment_in_progress", "busy", extra={"retryAfter": 2})
    assert doc == {
        "type": "https://x402.dev/problems/payment_in_progress",
        "title": "Payment in progress",
        "status": 409,
        "code": "payment_in_progress",
        "detail": "busy",
        "retryAfter": 2,
    }
    resp = problem_response(409, "payment_in_progress", "busy", request_id="r1", extra={"retryAfter": 2})
    assert resp.status == 409
    assert resp.content_type == PROBLEM_JSON
    assert isinstance(resp.body, bytes)
    assert json.loads(resp.body) == {**doc, "requestId": "r1"}


def test_errors_and_the_paywall_share_the_shape() -> None:
    err = BadRequest("no", code="invalid_thing", field="x")
    assert err.to_problem() == problem_document(400, "invalid_thing", "no", title="Bad request", extra={"field": "x"})
    resp = paywall_problem(503, "facilitator_unavailable", "down", dependency="facilitator")
    assert resp.content_type == PROBLEM_JSON
    assert resp.headers["Cache-Control"] == "no-store"
    assert isinstance(resp.body, bytes)
    assert json.loads(resp.body) == problem_document(
        503, "facilitator_unavailable", "down", extra={"dependency": "facilitator"}
    )


def test_problem_documents_are_built_in_one_place() -> None:
    # the OpenAPI document names the media type to describe answers; nothing else spells it or builds the type URL
    allowed = {"x402/errors.py", "x402/service/platform/openapi.py"}
    found = []
    for pkg in ("x402", "wallets", "chains", "risk"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            text = path.read_text()
            if rel not in allowed and ('"application/problem+json"' in text or "x402.dev/problems/" in text):
                found.append(rel)
    assert found == []


def test_extra_members_named_like_the_standard_ones_still_render() -> None:
    # e.g. ApprovalInvalid(..., status="pending"): the extra members are data, never keyword arguments
    err = BadRequest("the approval is pending", code="approval_invalid", status="pending")
    resp = problem_response(err.status, err.code, err.detail, title=err.title, extra=err.extra)
    assert resp.status == 400
    assert isinstance(resp.body, bytes)
    assert json.loads(resp.body)["status"] == "pending"
