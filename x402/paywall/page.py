"""The small HTML paywall page browsers get with a 402 (same ``PAYMENT-REQUIRED`` header as API clients)."""

from __future__ import annotations

import html
import json
from typing import Any, Final

from x402.wire.models import PaymentRequirements

# Inline (not a package-data file) so rendering never touches the filesystem inside the event loop.
_TEMPLATE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Payment required</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #222; }}
h1 {{ font-size: 1.4rem; }}
table {{ border-collapse: collapse; width: 100%; margin: 1rem 0; }}
td, th {{ border: 1px solid #ddd; padding: .4rem .6rem; text-align: left; font-size: .9rem; word-break: break-all; }}
code {{ background: #f4f4f4; padding: 0 .2rem; }}
</style>
</head>
<body>
<h1>Payment required</h1>
<p>{description}</p>
<p>This resource is paid with <a href="https://x402.org">x402</a>. Pay with an x402 client or wallet: it reads
the <code>PAYMENT-REQUIRED</code> response header and retries with a signed <code>PAYMENT-SIGNATURE</code>.</p>
<table>
<tr><th>Amount (atomic units)</th><th>Asset</th><th>Network</th><th>Pay to</th></tr>
{rows}
</table>
<p><small>Resource: {url}</small></p>
<script type="application/json" id="x402-payment-required">{data}</script>
</body>
</html>
"""


def render_page(accepts: list[PaymentRequirements], url: str, description: str, required_json: Any) -> bytes:
    """The HTML paywall for a route's offers; ``required_json`` is the ``PaymentRequired`` as plain JSON."""
    rows = "\n".join(
        f"<tr><td>{html.escape(r.amount)}</td><td>{html.escape(r.asset)}</td><td>{html.escape(r.network)}</td><td>{html.escape(r.pay_to)}</td></tr>"
        for r in accepts
    )
    # "</" inside a <script> element would end it early: escape "<" in the embedded JSON
    data = json.dumps(required_json, separators=(",", ":")).replace("<", "\\u003c")
    return _TEMPLATE.format(
        description=html.escape(description) or "Payment required.", rows=rows, url=html.escape(url), data=data
    ).encode("utf-8")
