"""CSV export of analytics answers: ``?format=csv`` or ``Accept: text/csv``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from aiohttp import web

from x402.errors import BadRequest

CSV_TYPE = "text/csv"


def wants_csv(request: web.Request) -> bool:
    """True when the caller asked for CSV (``format`` wins over ``Accept``)."""
    fmt = request.query.get("format")
    if fmt is not None:
        if fmt not in ("json", "csv"):
            raise BadRequest("format must be json or csv", code="invalid_query", field="format")
        return fmt == "csv"
    accept = request.headers.get("Accept", "")
    return CSV_TYPE in accept and "application/json" not in accept


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # a volume array: network:asset=amount, separated by spaces
        return " ".join(f"{v['network']}:{v['asset']}={v['amount']}" for v in value)
    text = str(value)
    # a spreadsheet would run a cell starting with one of these as a formula (CSV injection)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_response(name: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> web.Response:
    """A CSV attachment: one header row of ``columns`` (the JSON field names), then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    resp = web.Response(text=out.getvalue(), content_type=CSV_TYPE, charset="utf-8")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    return resp
