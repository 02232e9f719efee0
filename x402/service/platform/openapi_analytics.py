"""OpenAPI operations of the analytics API (``x402/service/analytics/``): JSON and CSV answers, exact shapes."""

from __future__ import annotations

from typing import Any

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_KEYED: list[dict[str, list[str]]] = [{"bearer": []}, {"apiKey": []}]
_INT: dict[str, Any] = {"type": "integer", "minimum": 0}
_ATOMIC: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+$", "description": "atomic units of the asset"}
_USD: dict[str, Any] = {
    "type": "string",
    "pattern": "^[0-9]+(\\.[0-9]+)?$",
    "description": "US dollars of the USD stablecoins among the volume (USDC, USDT0, MegaUSD at their decimals); "
    "other assets, EURC included, are not converted",
}
_MS: dict[str, Any] = {
    "type": ["number", "null"],
    "description": "nearest-rank percentile in ms (exact to 1 ms below 100 ms, then within 2 %); null: no call",
}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_NULL_TIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
_VOLUME: dict[str, Any] = {
    "type": "array",
    "description": "succeeded volume per network and asset",
    "items": {
        "type": "object",
        "required": ["network", "asset", "amount"],
        "additionalProperties": False,
        "properties": {"network": {"type": "string"}, "asset": {"type": "string"}, "amount": _ATOMIC},
    },
}


def _obj(props: dict[str, Any], desc: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "required": sorted(props),
        "additionalProperties": False,
        "properties": props,
    }
    if desc:
        out["description"] = desc
    return out


def _listing(key: str, item: dict[str, Any], desc: str = "", **summary: Any) -> dict[str, Any]:
    """A breakdown answer: the window, summary figures, and the rows under ``key``."""
    rows: dict[str, Any] = {"type": "array", "items": item}
    if desc:
        rows["description"] = desc
    return _obj({**_WINDOW, **summary, key: rows})


def _q(name: str, desc: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}


_FROM = _q("from", "window start (ISO 8601, UTC when no offset), rounded down to a bucket / UTC hour", _TIME)
_TO = _q("to", "window end, exclusive (default now), rounded up to a bucket / UTC hour", _TIME)
_TZ = _q(
    "tz",
    "IANA time zone name (default UTC): buckets are calendar hours, days (a DST day has 23 or 25 hours) and ISO "
    "weeks from Monday in this zone",
    {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_+\\-]*(/[A-Za-z0-9_+\\-]+){0,2}$", "maxLength": 64},
)
_FORMAT = _q("format", "csv for a CSV attachment (also: Accept: text/csv)", {"type": "string", "enum": ["json", "csv"]})
_LIMIT = _q("limit", "most rows (default 100)", {"type": "integer", "minimum": 1, "maximum": 1000})
_WINDOW = {"from": _TIME, "to": _TIME}

POINT = _obj(
    {
        "bucket": {"type": "string", "format": "date-time", "description": "bucket start with the zone's offset"},
        "count": {**_INT, "description": "payments: settle and verify-tx outcomes, and invalid verifies"},
        "succeeded": _INT,
        "failed": _INT,
        "uniquePayers": {**_INT, "description": "distinct payers of succeeded payments"},
        "volume": _VOLUME,
        "usd": _USD,
        "verifyP50Ms": _MS,
        "verifyP95Ms": _MS,
        "settleP50Ms": _MS,
        "settleP95Ms": _MS,
    }
)
TIMESERIES = _obj(
    {
        "interval": {"type": "string", "enum": ["hour", "day", "week"]},
        "tz": {"type": "string"},
        "from": _TIME,
        "to": _TIME,
        "points": {"type": "array", "items": POINT, "description": "every bucket of the window, gaps filled"},
    }
)


_COUNTS = {"count": _INT, "succeeded": _INT, "failed": _INT, "pending": {**_INT, "description": "settlements pending"}}
RESOURCES = _listing(
    "resources",
    _obj(
        {
            "resource": {"type": "string", "description": "URL the payment named ('' when none)"},
            "method": {"type": "string", "description": "HTTP method when known, else ''"},
            "registryId": {"type": ["string", "null"], "format": "uuid"},
            **_COUNTS,
            "volume": _VOLUME,
            "usd": _USD,
        }
    ),
)
NETWORKS = _listing(
    "networks",
    _obj(
        {
            "network": {"type": "string"},
            "asset": {"type": "string"},
            **_COUNTS,
            "amount": _ATOMIC,
            "usd": _USD,
            "uniquePayers": _INT,
        }
    ),
)
PAYERS = _listing(
    "payers",
    _obj(
        {
            "payer": {"type": "string"},
            "count": _INT,
            "succeeded": _INT,
            "failed": _INT,
            "volume": _VOLUME,
            "usd": _USD,
            "firstSeen": {**_NULL_TIME, "description": "first succeeded payment ever"},
            "lastSeen": {**_NULL_TIME, "description": "last succeeded payment ever"},
            "lifetimePayments": _INT,
            "lifetimeValue": _VOLUME,
            "lifetimeUsd": _USD,
        }
    ),
    "top customers: most USD, then most succeeded payments",
    uniquePayers={**_INT, "description": "payers with a succeeded payment in the window"},
    repeatPayers={**_INT, "description": "of those, payers with two or more"},
    repeatRate={"type": "number", "minimum": 0, "maximum": 1},
)
FAILURES = _listing(
    "failures",
    _obj(
        {
            "reason": {"type": "string", "description": "reason code ('' when none was given)"},
            "kind": {"type": "string", "enum": ["verify", "settle", "verify_tx"]},
            "network": {"type": "string"},
            "count": _INT,
            "share": {"type": "number", "minimum": 0, "maximum": 1},
        }
    ),
    failed=_INT,
)
RISK = _listing(
    "outcomes",
    _obj({"recommendation": {"type": "string"}, "level": {"type": "string"}, "count": _INT}),
    assessed=_INT,
    blocked=_INT,
    flags={"type": "array", "items": _obj({"code": {"type": "string"}, "count": _INT})},
)
PAYOUTS = _listing(
    "payouts",
    _obj(
        {
            "payTo": {"type": "string"},
            "network": {"type": "string"},
            "asset": {"type": "string"},
            "settled": _ATOMIC,
            "settledCount": _INT,
            "settledUsd": _USD,
            "pending": _ATOMIC,
            "pendingCount": _INT,
            "fees": {
                **_ATOMIC,
                "description": "gas the facilitator paid: the settlement journal does not record gas, so 0",
            },
        }
    ),
)
_RETENTION = _obj(
    {
        "week": {**_INT, "description": "weeks after the cohort week"},
        "payers": _INT,
        "rate": {"type": "number", "minimum": 0, "maximum": 1},
    }
)
COHORTS = _listing(
    "cohorts",
    _obj(
        {
            "cohort": {
                "type": "string",
                "format": "date-time",
                "description": "ISO week (UTC) of the first succeeded payment",
            },
            "size": _INT,
            "retention": {"type": "array", "items": _RETENTION},
        }
    ),
)
_BREAKDOWNS: dict[str, tuple[str, dict[str, Any]]] = {
    "resources": ("Per paid resource (URL, method, registry id): counts, volume, USD", RESOURCES),
    "networks": ("Per network and asset: counts, volume, USD, unique payers", NETWORKS),
    "payers": ("Top customers: volume, first / last seen, lifetime value; repeat rate", PAYERS),
    "failures": ("Failed payments by reason, kind and network", FAILURES),
    "risk": ("Risk assessments by recommendation and level; flags raised", RISK),
    "payouts": ("Per payTo address and asset: settled, pending, fees", PAYOUTS),
    "cohorts": ("Weekly payer cohorts (first succeeded payment, UTC weeks) and their retention", COHORTS),
}


def _csv_ok(schema: dict[str, Any], desc: str) -> dict[str, Any]:
    return {
        "description": desc,
        "content": {
            "application/json": {"schema": schema},
            "text/csv": {
                "schema": {"type": "string"},
                "example": "bucket,count,...\r\n",
            },
        },
    }


def _operation(summary: str, schema: dict[str, Any], params: list[dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": _csv_ok(schema, "The figures (CSV: one header row, one line per row)")}
    for code in ("400", "401", "403", "429"):
        responses[code] = _PROBLEM
    return {
        "summary": summary,
        "tags": ["analytics"],
        "security": _KEYED,
        "parameters": params,
        "responses": responses,
    }


def analytics_paths() -> dict[str, dict[str, Any]]:
    """Operations keyed by path then method."""
    interval = _q("interval", "bucket size (default day)", {"type": "string", "enum": ["hour", "day", "week"]})
    return {
        "/v1/analytics/timeseries": {
            "get": _operation(
                "Gap-filled time series: counts, volume, USD, unique payers, verify/settle latency percentiles",
                TIMESERIES,
                [interval, _FROM, _TO, _TZ, _FORMAT],
            )
        },
        **{
            f"/v1/analytics/{name}": {"get": _operation(summary, schema, [_FROM, _TO, _LIMIT, _FORMAT])}
            for name, (summary, schema) in _BREAKDOWNS.items()
        },
    }
