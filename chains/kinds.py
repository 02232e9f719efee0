"""The ``/supported`` kinds of an ``exact`` adapter: every network under v2, and under v1 where v1 names it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from x402.wire.models import SupportedKind
from x402.wire.networks import to_v1_name


def exact_kinds(networks: Iterable[str], extra: Mapping[str, Any] | None = None) -> list[SupportedKind]:
    """v2 then (where a v1 name exists) v1 ``exact`` kinds per network, each with its own copy of ``extra``."""
    kinds: list[SupportedKind] = []
    for network in networks:
        names = [(2, network)]
        v1 = to_v1_name(network)
        if v1 is not None and v1 != network:
            names.append((1, v1))
        for version, name in names:
            kind = SupportedKind(x402_version=version, scheme="exact", network=name)
            if extra is not None:
                kind.extra = dict(extra)
            kinds.append(kind)
    return kinds
