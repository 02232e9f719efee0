"""Prometheus metrics, one registry per app so several apps in one process do not collide."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


@dataclass
class Metrics:
    """The service's metrics."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    payments: Counter
    signer_out_of_gas: Counter
    nonce_repairs: Counter
    settlements_stuck: Gauge
    oldest_open_settlement: Gauge
    signer_nonce: Gauge
    records_dead_lettered: Counter
    events_dead_lettered: Counter
    #: label children already looked up (``labels()`` hashes and validates its arguments on every call)
    _children: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    def count_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request and observe its latency."""
        key = ("http", method, route, status)
        pair = self._children.get(key)
        if pair is None:
            pair = self._children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        pair[0].inc()
        pair[1].observe(seconds)

    def count_payment(self, op: str, network: str, outcome: str) -> None:
        """Count one verify / settle outcome."""
        key = ("payment", op, network, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.payments.labels(op, network, outcome)
        child.inc()

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
            signer_out_of_gas=Counter(
                "x402_signer_out_of_gas_total",
                "Settlement transactions a facilitator signer could not pay gas for",
                ["network", "signer"],
                registry=reg,
            ),
            nonce_repairs=Counter(
                "x402_nonce_repairs_total",
                "Signer nonce lane repairs: reuse of a dead nonce, fill, rebroadcast, gas bump",
                ["network", "action"],
                registry=reg,
            ),
            settlements_stuck=Gauge(
                "x402_settlement_stuck",
                "Open settlements older than X402_SETTLE_STUCK_AFTER, by the reason they are still open",
                ["network", "reason"],
                registry=reg,
            ),
            oldest_open_settlement=Gauge(
                "x402_settlement_oldest_pending_seconds",
                "Age of the oldest open (submitted or pending) settlement",
                ["network"],
                registry=reg,
            ),
            signer_nonce=Gauge(
                "x402_signer_nonce",
                "A signer lane's nonce: mined and pending on chain, next free per journal",
                ["network", "signer", "source"],
                registry=reg,
            ),
            records_dead_lettered=Counter(
                "x402_payment_records_dead_lettered_total",
                "Payment records whose batch could not be written and went to the dead-letter table",
                registry=reg,
            ),
            events_dead_lettered=Counter(
                "x402_provider_events_dead_lettered_total",
                "Provider events whose batch could not be written and went to the dead-letter table",
                registry=reg,
            ),
        )

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
