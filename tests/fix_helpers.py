"""Shared helpers for the FIX tests: a ConnectionPair of two sans-IO sessions
wired together in memory, and a scripted counterparty that writes raw bytes.

Import with ``sys.path.insert(0, str(Path(__file__).resolve().parents[1]))``.
"""

from __future__ import annotations

import calendar
import time

from numbex.protocol.fix import (
    Disconnect, FixDecoder, FixEncoder, FixMessage, FixSession, MemoryStore, SessionDirectory,
    SessionSettings, frame,
)
from numbex.protocol.fix.timestamps import UtcTimestampFormatter

NANOS = 1_000_000_000
#: 2024-03-01 12:00:00 UTC
T0 = calendar.timegm((2024, 3, 1, 12, 0, 0, 0, 0, 0)) * NANOS
CLIENT = "CLIENT1"
EXCHANGE = "NUMBEX"
PASSWORD = "secret"


def timestamp(now_ns: int) -> bytes:
    return UtcTimestampFormatter().format(now_ns)


def decode_all(data: bytes) -> list[FixMessage]:
    """Every message in ``data`` (asserting nothing garbled)."""
    decoder = FixDecoder()
    decoder.receive_data(data)
    messages = []
    while (item := decoder.next_message()) is not None:
        assert isinstance(item, FixMessage), item
        messages.append(item)
    assert decoder.buffered == 0
    return messages


def drain(session: FixSession) -> list:
    events = []
    for _ in range(100_000):
        event = session.next_event()
        if event is None:
            return events
        events.append(event)
    raise AssertionError("next_event() did not run dry")


def new_order_body(cl_ord_id: str = "ORDER1", transact_time: bytes = b"20240301-12:00:00.000") -> bytes:
    return (b"11=%s\x0121=1\x0155=TEST\x0154=1\x0160=%s\x0138=100\x0140=2\x0144=101.25\x0159=0\x01"
            % (cl_ord_id.encode(), transact_time))


def execution_report_body(cl_ord_id: str = "ORDER1", exec_id: str = "E1") -> bytes:
    return (b"37=1\x0111=%s\x0117=%s\x01150=0\x0139=0\x0155=TEST\x0154=1\x0138=100\x01"
            b"151=100\x0114=0\x016=0\x01" % (cl_ord_id.encode(), exec_id.encode()))


class ConnectionPair:
    """numbex's acceptor and a client initiator connected back to back in memory."""

    def __init__(self, now_ns: int = T0, acceptor_settings: dict | None = None,
                 initiator_settings: dict | None = None, passwords: dict | None = None,
                 client_store: MemoryStore | None = None, exchange_stores: dict | None = None) -> None:
        self.now = now_ns
        self.exchange_stores = exchange_stores if exchange_stores is not None else {}
        self.directory = SessionDirectory(
            passwords if passwords is not None else {CLIENT: PASSWORD},
            lambda comp_id: self.exchange_stores.setdefault(comp_id, MemoryStore()))
        self.client_store = client_store if client_store is not None else MemoryStore()
        self.acceptor = FixSession(SessionSettings(EXCHANGE, **(acceptor_settings or {})), now_ns,
                                   authority=self.directory)
        options = {"initiator": True, "target_comp_id": EXCHANGE, "password": PASSWORD}
        options.update(initiator_settings or {})
        self.initiator = FixSession(SessionSettings(CLIENT, **options), now_ns, store=self.client_store)
        self.acceptor_events: list = []
        self.initiator_events: list = []
        self.to_acceptor: list[FixMessage] = []
        self.to_initiator: list[FixMessage] = []

    def pump(self) -> None:
        """Move bytes both ways until neither side has anything more to say."""
        for _ in range(1000):
            moved = False
            for source, target, log, events in (
                (self.initiator, self.acceptor, self.to_acceptor, self.acceptor_events),
                (self.acceptor, self.initiator, self.to_initiator, self.initiator_events),
            ):
                data = source.data_to_send()
                if data:
                    moved = True
                    log.extend(decode_all(data))
                    target.receive_data(data, self.now)
                events.extend(drain(target))
            if not moved:
                return
        raise AssertionError("sessions kept talking")

    def deliver(self, data: bytes, to_acceptor: bool) -> None:
        """Hand bytes returned by ``send`` to the other side and pump."""
        log = self.to_acceptor if to_acceptor else self.to_initiator
        log.extend(decode_all(data))
        target = self.acceptor if to_acceptor else self.initiator
        target.receive_data(data, self.now)
        (self.acceptor_events if to_acceptor else self.initiator_events).extend(drain(target))
        self.pump()

    def logon(self) -> None:
        self.initiator.logon(self.now)
        self.pump()

    def advance(self, seconds: float) -> None:
        """Move time forward in 100 ms ticks, firing timers on both sides."""
        steps = max(1, int(seconds * 10))
        for _ in range(steps):
            self.now += int(seconds * NANOS) // steps
            self.acceptor.on_timer(self.now)
            self.initiator.on_timer(self.now)
            self.pump()

    def disconnects(self, events: list) -> list[Disconnect]:
        return [event for event in events if isinstance(event, Disconnect)]


class ScriptedClient:
    """A counterparty that writes exactly the bytes a test asks for."""

    def __init__(self, sender: str = CLIENT, target: str = EXCHANGE) -> None:
        self.encoder = FixEncoder(sender, target)
        self.seq_num = 1

    def message(self, msg_type: bytes, body: bytes = b"", seq_num: int | None = None, now_ns: int = T0,
                poss_dup: bool = False, orig_sending_time: bytes | None = None) -> bytes:
        if seq_num is None:
            seq_num = self.seq_num
            self.seq_num += 1
        sending_time = timestamp(now_ns)
        if poss_dup:
            return self.encoder.encode_possible_duplicate(
                msg_type, seq_num, sending_time, orig_sending_time or sending_time, body)
        return self.encoder.encode(msg_type, seq_num, sending_time, body)

    def logon(self, heartbeat: int = 30, reset: bool = False, password: str = PASSWORD,
              seq_num: int | None = None, now_ns: int = T0) -> bytes:
        body = b"98=0\x01108=%d\x01" % heartbeat
        if reset:
            body += b"141=Y\x01"
        if password:
            body += b"554=" + password.encode() + b"\x01"
        return self.message(b"A", body, seq_num=seq_num, now_ns=now_ns)


def raw_frame(payload: bytes) -> bytes:
    """A correctly framed message around arbitrary fields (for malformed-content tests)."""
    return frame(payload)


class Acceptor:
    """numbex's acceptor session driven by a ``ScriptedClient``."""

    def __init__(self, now_ns: int = T0, passwords: dict | None = None, settings: dict | None = None,
                 stores: dict | None = None) -> None:
        self.now = now_ns
        self.stores = stores if stores is not None else {}
        self.directory = SessionDirectory(
            passwords if passwords is not None else {CLIENT: PASSWORD},
            lambda comp_id: self.stores.setdefault(comp_id, MemoryStore()))
        self.session = FixSession(SessionSettings(EXCHANGE, **(settings or {})), now_ns,
                                  authority=self.directory)
        self.client = ScriptedClient()

    def feed(self, data: bytes, now_ns: int | None = None) -> tuple[list, list[FixMessage]]:
        """Bytes in; (events, decoded messages numbex wrote) out."""
        self.session.receive_data(data, self.now if now_ns is None else now_ns)
        events = drain(self.session)
        return events, decode_all(self.session.data_to_send())

    def logged_on(self, **logon: object) -> tuple[list, list[FixMessage]]:
        result = self.feed(self.client.logon(**logon))
        assert self.session.state.name == "ACTIVE", result
        return result


def wall_clock_ns() -> int:
    return time.time_ns()
