"""The log scrubber: secret-shaped values go wherever they sit (messages, nested fields, exception text)."""

from __future__ import annotations

import logging
import secrets
import sys

from aiohttp.http_exceptions import BadHttpMessage

from x402.errors import BadRequest
from x402.logs import ScrubFilter, _redact, scrub
from x402.middleware import _render

KEY = "x402_live_abcdefghij_" + secrets.token_urlsafe(32)
SIGNATURE = "0x" + secrets.token_hex(65)
TX = "0x" + secrets.token_hex(32)
ADDRESS = "0x" + secrets.token_hex(20)


def test_scrub_removes_secrets_and_keeps_what_debugging_needs() -> None:
    text = (
        f"key {KEY} sig {SIGNATURE} bare {SIGNATURE[2:]} whsec_{secrets.token_urlsafe(32)} "
        f"Authorization: Bearer op-token-123 X-API-Key: {KEY[:-1]} tx {TX} to {ADDRESS}"
    )
    out = scrub(text)
    for secret in (KEY, KEY.rsplit("_", 1)[1], SIGNATURE[2:], "op-token-123", "whsec_" + text.split("whsec_")[1][:20]):
        assert secret not in out
    # the public key prefix, transaction hashes and addresses stay readable
    assert "x402_live_abcdefghij_[redacted]" in out
    assert TX in out
    assert ADDRESS in out


def test_structlog_events_are_scrubbed_by_name_and_by_shape() -> None:
    event = {
        "event": f"paying with {KEY}",
        "signature": "anything",
        "payload": {"signature": SIGNATURE, "authorization": {"from": ADDRESS}},
        "items": [SIGNATURE, TX],
        "exception": f"Traceback ...\nValueError: bad header {KEY}",
    }
    out = _redact(None, "info", dict(event))
    rendered = repr(out)
    assert KEY.rsplit("_", 1)[1] not in rendered
    assert SIGNATURE[2:] not in rendered
    assert out["signature"] == "[redacted]"
    assert out["payload"]["signature"] == "[redacted]"
    assert out["payload"]["authorization"] == "[redacted]"
    assert out["items"][1] == TX


def test_stdlib_records_with_parser_errors_are_scrubbed() -> None:
    try:
        raise BadHttpMessage(f"Invalid header value char:\n\n  b'Authorization: Bearer {KEY}\\x01'")
    except BadHttpMessage:
        record = logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s", ("1.2.3.4",), sys.exc_info()
        )
    assert ScrubFilter().filter(record)
    formatted = logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)
    assert KEY.rsplit("_", 1)[1] not in formatted
    assert "Error handling request from 1.2.3.4" in formatted
    assert "BadHttpMessage" in formatted


def test_problem_details_are_scrubbed() -> None:
    resp = _render(BadRequest(f"cannot use {KEY} with {SIGNATURE}", code="invalid_field"), "rid")
    assert isinstance(resp.body, bytes | bytearray)
    body = bytes(resp.body).decode()
    assert KEY.rsplit("_", 1)[1] not in body
    assert SIGNATURE[2:] not in body
    assert "invalid_field" in body
