"""One worker process of ``x402 serve --workers N``: settings from the environment the parent prepared."""

from __future__ import annotations

from chains.registry import load_factories
from x402.logs import configure_logging
from x402.service.devmode import apply_dev_state
from x402.service.server import _stop_event, run, run_app
from x402.service.settings import load_settings


def main() -> int:
    """Serve until SIGTERM/SIGINT."""
    settings = apply_dev_state(load_settings())
    configure_logging(settings.log_level, settings.log_format)
    load_factories()

    async def go() -> int:
        await run_app(settings, _stop_event(), announce=False)
        return 0

    return run(go)


if __name__ == "__main__":
    raise SystemExit(main())
