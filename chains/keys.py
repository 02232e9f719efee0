"""Wallet key kinds: how a chain family makes, imports and signs with an agent wallet's key.

``wallets/`` knows no chain: it asks a ``KeyKinds`` table for the kind owning a network (to pay) or a name (to
create a wallet). EVM and Solana are built in (``chains/evm/keys.py``, ``chains/solana/keys.py``); a chain adapter
adds its own by having a ``wallet_key_kind()`` method (``KeyKindSource``), so a third-party chain brings its key
kind with its adapter (docs/architecture.md, "Adding a chain").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from x402.client.signer import PaymentSigner
from x402.errors import ValidationFailed
from x402.wire.models import PaymentRequirements


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A fresh or imported key: its public address and its secret (held only until it is sealed)."""

    address: str
    secret: bytes = field(repr=False)


class KeyKind(Protocol):
    """One chain family's wallet keys."""

    #: the tag a sealed key is stored under (``wallet_keys.chain``) and the key of ``Wallet.addresses``
    name: str
    #: the name of the address in API answers (``addresses.<label>``)
    label: str
    #: names a caller may use for this kind when creating a wallet (``name`` and ``label`` always work)
    aliases: Sequence[str]

    def owns(self, network: str) -> bool:
        """True for the CAIP-2 networks this kind's keys pay on."""
        ...

    def generate(self) -> KeyPair:
        """A fresh random key."""
        ...

    def imported(self, text: str) -> KeyPair:
        """A key given by the caller in this kind's text form; raises ValueError (never echoing ``text``)."""
        ...

    def can_pay(self, offer: PaymentRequirements) -> bool:
        """True when a key of this kind can sign a payment for ``offer``."""
        ...

    def signer(self, secret: bytes) -> PaymentSigner:
        """A payment signer holding ``secret`` in memory only."""
        ...


@runtime_checkable
class KeyKindSource(Protocol):
    """A chain adapter that brings the key kind of its family (how a plugin chain gets agent wallets)."""

    def wallet_key_kind(self) -> KeyKind:
        """The key kind of this adapter's networks."""
        ...


class KeyKinds:
    """The key kinds a process knows, found by name / alias (creating a wallet) or by network (paying)."""

    def __init__(self, kinds: Iterable[KeyKind]) -> None:
        self._kinds: dict[str, KeyKind] = {}
        for kind in kinds:
            self._kinds[kind.name] = kind

    def with_sources(self, sources: Iterable[object]) -> KeyKinds:
        """These kinds plus the kind of every ``KeyKindSource`` among ``sources`` (e.g. the chain adapters)."""
        return KeyKinds([*self, *(s.wallet_key_kind() for s in sources if isinstance(s, KeyKindSource))])

    def __iter__(self) -> Iterator[KeyKind]:
        return iter(self._kinds.values())

    def names(self) -> list[str]:
        """The API names of the known kinds (for error messages)."""
        return [k.label for k in self]

    def named(self, name: str) -> KeyKind:
        """The kind called ``name`` (its name, label or an alias); 400 ``invalid_chain`` otherwise."""
        for kind in self:
            if name in (kind.name, kind.label, *kind.aliases):
                return kind
        raise ValidationFailed(f"unknown chain {name!r}: use {' and/or '.join(self.names())}", code="invalid_chain")

    def get(self, name: str) -> KeyKind | None:
        """The kind stored under ``name``, or None."""
        return self._kinds.get(name)

    def for_network(self, network: str) -> KeyKind | None:
        """The kind whose keys pay on ``network``, or None."""
        return next((kind for kind in self if kind.owns(network)), None)
