"""Failover across several RPC URLs with a circuit breaker per URL, shared by every chain's RPC pool."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

BREAKER_THRESHOLD: Final = 3
BREAKER_COOLDOWN: Final = 10.0

E = TypeVar("E")
T = TypeVar("T")


class CircuitBreaker:
    """One URL's breaker: closed below ``threshold`` failures in a row, then open for ``cooldown``, then half-open."""

    __slots__ = ("cooldown", "failures", "open_until", "threshold", "trial")

    def __init__(self, threshold: int = BREAKER_THRESHOLD, cooldown: float = BREAKER_COOLDOWN) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.open_until = 0.0
        self.trial = False

    def available(self, now: float) -> bool:
        """Closed, or half-open with no trial request under way."""
        if self.failures < self.threshold:
            return True
        # Half-open: after the cool-down exactly one request at a time may try the URL.
        return now >= self.open_until and not self.trial

    def failed(self, now: float) -> None:
        """Count a failure; the threshold-th in a row opens the breaker for ``cooldown``."""
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = now + self.cooldown

    def succeeded(self) -> None:
        """Close the breaker."""
        self.failures = 0
        self.open_until = 0.0

    def state(self, now: float) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self.failures < self.threshold:
            return "closed"
        return "open" if now < self.open_until else "half-open"


class NoEndpointAnswered(Exception):
    """Every URL failed or had its breaker open; ``tried`` counts the URLs actually tried."""

    def __init__(self, tried: int, last: BaseException | None) -> None:
        super().__init__(f"{tried} tried, last failure: {type(last).__name__ if last else None}")
        self.tried = tried
        self.last = last

    def describe(self) -> str:
        """A short reason for the caller's ChainUnavailable message (never a URL: they may hold API keys)."""
        if self.tried == 0:
            return "all circuit breakers open"
        return str(self.last) or type(self.last).__name__


async def first_answer(
    endpoints: Sequence[tuple[CircuitBreaker, E]],
    attempt: Callable[[E], Awaitable[T]],
    transient: tuple[type[BaseException], ...],
    on_failure: Callable[[int, BaseException], None] | None = None,
) -> T:
    """``attempt`` on each endpoint in order whose breaker lets it through; ``transient`` errors fail over.

    Any other exception (the endpoint answered, with a refusal) propagates and counts as a success for the breaker.
    """
    last: BaseException | None = None
    tried = 0
    for index, (breaker, endpoint) in enumerate(endpoints):
        if not breaker.available(time.monotonic()):
            continue
        tried += 1
        half_open = breaker.failures >= breaker.threshold
        if half_open:
            breaker.trial = True
        try:
            result = await attempt(endpoint)
        except transient as exc:
            breaker.failed(time.monotonic())
            last = exc
            if on_failure is not None:
                on_failure(index, exc)
            continue
        except Exception:
            breaker.succeeded()  # the endpoint answered (with a refusal the caller interprets)
            raise
        finally:
            if half_open:
                breaker.trial = False
        breaker.succeeded()
        return result
    raise NoEndpointAnswered(tried, last)
