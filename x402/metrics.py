"""Prometheus metrics, one registry per app so several apps in one process do not collide."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


@dataclass
class Metrics:
    """The service's metrics."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    payments: Counter

    @classmethod
    def create(cls) -> Metrics:
        """A fresh registry with every metric declared."""
        reg = CollectorRegistry()
        return cls(
            registry=reg,
            requests=Counter(
                "x402_http_requests_total",
                "HTTP requests by route and status",
                ["method", "route", "status"],
                registry=reg,
            ),
            latency=Histogram(
                "x402_http_request_duration_seconds",
                "HTTP request latency by route",
                ["method", "route"],
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                registry=reg,
            ),
            payments=Counter(
                "x402_payments_total", "Verify and settle outcomes", ["op", "network", "outcome"], registry=reg
            ),
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
