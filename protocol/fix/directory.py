"""Who may log on: the acceptor's logon authority.

An acceptor session asks its ``LogonAuthority`` once per Logon, after the
Logon has been validated and before anything in it (ResetSeqNumFlag above
all) touches a store.  The authority either refuses with a reason, sent as
the Logout text, or grants the counterparty's ``MessageStore`` and marks the
CompID live; the session calls ``release`` when it ends, whichever way.

``SessionDirectory`` is the standard authority: configured CompIDs with an
optional password each, stores opened on first use by a callable (the
gateway passes ``FileStore.open`` with its data directory), one live
session per CompID.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from numbex.protocol.fix.store import MessageStore


@dataclass(frozen=True, slots=True)
class LogonRequest:
    """What a validated Logon asks for."""

    sender_comp_id: str
    target_comp_id: str
    username: str | None
    password: str | None
    heartbeat_seconds: int
    reset_requested: bool


class LogonAuthority(Protocol):
    def authorize(self, request: LogonRequest) -> MessageStore | str:
        """The counterparty's store (logon granted, CompID now live) or the refusal text."""

    def release(self, comp_id: str) -> None:
        """The session of ``comp_id`` ended; it may log on again."""


class SessionDirectory:
    """Configured sessions: CompID -> password (``""`` for none).

    Parameters
    ----------
    passwords : Mapping[str, str]
        Counterparty CompIDs allowed to log on, each with its Password (554),
        or ``""`` when none is required.
    open_store : Callable[[str], MessageStore]
        Opens the store of a CompID; called once per CompID, the store is kept.
    """

    def __init__(self, passwords: Mapping[str, str], open_store: Callable[[str], MessageStore]) -> None:
        self._passwords = dict(passwords)
        self._open_store = open_store
        self._stores: dict[str, MessageStore] = {}
        self._live: set[str] = set()

    def authorize(self, request: LogonRequest) -> MessageStore | str:
        comp_id = request.sender_comp_id
        expected = self._passwords.get(comp_id)
        if expected is None:
            return f"Unknown SenderCompID {comp_id}"
        if expected and not hmac.compare_digest((request.password or "").encode(), expected.encode()):
            return "Invalid password"
        if comp_id in self._live:
            return f"Session {comp_id} is already logged on"
        store = self.store(comp_id)
        self._live.add(comp_id)
        return store

    def release(self, comp_id: str) -> None:
        self._live.discard(comp_id)

    def is_live(self, comp_id: str) -> bool:
        """True while a session of ``comp_id`` is logged on."""
        return comp_id in self._live

    def store(self, comp_id: str) -> MessageStore:
        """The store of a configured CompID (opened on first use)."""
        if comp_id not in self._passwords:
            raise KeyError(comp_id)
        store = self._stores.get(comp_id)
        if store is None:
            store = self._stores[comp_id] = self._open_store(comp_id)
        return store

    def stores(self) -> list[MessageStore]:
        """Every store opened so far (the gateway syncs them at batch end)."""
        return list(self._stores.values())
