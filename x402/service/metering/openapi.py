"""OpenAPI of metering: ``/v1/events`` and its schemas."""

from __future__ import annotations

from typing import Any, Final

from x402.service.metering.ingest import ID_PATTERN, MAX_BATCH, MAX_VALUE, METER_PATTERN

_PROBLEM: Final = {"$ref": "#/components/responses/Problem"}
_KEYED: Final[list[dict[str, list[str]]]] = [{"bearer": []}, {"apiKey": []}]
_STR: Final = {"type": "string"}


def _obj(props: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if closed:
        out["additionalProperties"] = False
    return out


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _op(summary: str, ok: dict[str, Any], *, body: dict[str, Any] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _json(ok)}}
    for code in ("400", "401", "403", "422", "429"):
        responses[code] = _PROBLEM
    op: dict[str, Any] = {"summary": summary, "tags": ["metering"], "security": _KEYED, "responses": responses}
    if body is not None:
        op["requestBody"] = {"required": False, "content": _json(body)}
    return op


#: One usage event as documented; the batch schema accepts any item, since a bad event gets its own error in the
#: 200 answer instead of failing the batch.
USAGE_EVENT: Final = _obj(
    {
        "id": {"type": "string", "pattern": ID_PATTERN, "description": "idempotency key, unique per tenant"},
        "customer": {"type": "string", "pattern": ID_PATTERN},
        "meter": {"type": "string", "pattern": METER_PATTERN},
        "value": {"type": "integer", "minimum": 0, "maximum": MAX_VALUE, "default": 1},
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": "when it happened (default now); within the late window, at most 5 minutes ahead",
        },
        "properties": {"type": "object"},
    },
    ("id", "customer", "meter"),
    closed=True,
)


def paths() -> dict[str, dict[str, Any]]:
    """The metering operations."""
    batch = _obj(
        {
            "events": {
                "type": "array",
                "maxItems": MAX_BATCH,
                "items": {"description": "a UsageEvent; an invalid one is reported in `errors`"},
            }
        },
        ("events",),
        closed=True,
    )
    answer = _obj(
        {
            "accepted": {"type": "array", "items": _STR, "description": "event ids stored by this call"},
            "duplicates": {"type": "array", "items": _STR, "description": "ids already stored (counted once)"},
            "errors": {
                "type": "array",
                "items": _obj(
                    {
                        "index": {"type": "integer"},
                        "id": {"type": ["string", "null"]},
                        "code": _STR,
                        "detail": _STR,
                    },
                    ("index", "id", "code", "detail"),
                ),
            },
        },
        ("accepted", "duplicates", "errors"),
    )
    return {
        "/v1/events": {
            "post": _op(
                f"Report up to {MAX_BATCH} usage events (idempotent by id; bad events get per-event errors)",
                answer,
                body=batch,
            )
        }
    }


def schemas() -> dict[str, dict[str, Any]]:
    """components/schemas entries."""
    return {"UsageEvent": USAGE_EVENT}
