"""The FIX 4.4 session layer, sans-IO: one ``FixSession`` per TCP connection.

The owner (the gateway, or a test) moves bytes and time in and out::

    session.receive_data(data, now_ns)      # bytes from the socket
    while (event := session.next_event()) is not None:
        ...                                 # ApplicationMessage, Disconnect, ...
    socket.send(session.data_to_send())     # admin replies, resends
    socket.send(session.send(b"8", body))   # an application message
    session.on_timer(now_ns)                # heartbeats, test requests, timeouts

Bytes returned by ``send`` and ``data_to_send`` must be written in the order
returned (``send`` prepends anything the session queued first).  After a
``Disconnect`` event, write ``data_to_send()`` and close.  Nothing here reads
a clock or touches a socket or a file: time arrives as ``now_ns`` and the
``MessageStore`` is injected.

Acceptor (numbex): the first message must be a Logon; it is validated,
authorised by the ``LogonAuthority`` (which supplies the store) and only then
may ResetSeqNumFlag reset anything.  Initiator (tests, load generator): the
store is given up front and ``logon()`` starts the handshake.

State changes all go through the one table ``states.TRANSITIONS``; what each
message type does in an established session is ``states.ADMIN_HANDLERS``
(anything else is application; handlers live in ``session_handlers``).
Sequence-number handling, resends and rejects follow FIX 4.4 Volume 2 and
QuickFIX's behaviour, detailed in docs/FIX.md.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from numbex.protocol.fix import admin
from numbex.protocol.fix.codec import FixDecoder, FixEncoder, Garbled, encode_fields
from numbex.protocol.fix.directory import LogonAuthority
from numbex.protocol.fix.errors import LocalProtocolError
from numbex.protocol.fix.events import Disconnect, Event, GarbledMessage
from numbex.protocol.fix.message import FixMessage
from numbex.protocol.fix.session_handlers import SessionHandlers
from numbex.protocol.fix.states import (
    ACTIVE, ADMIN_HANDLERS, AWAITING_LOGON, DISCONNECTED, LOGOUT_SENT, NANOS, TRANSITIONS,
    SessionState,
)
from numbex.protocol.fix.store import MessageStore
from numbex.protocol.fix.timestamps import UtcTimestampFormatter
from numbex.protocol.fix.validate import MessageValidator

@dataclass(frozen=True)
class SessionSettings:
    """Configuration of one session endpoint.

    Parameters
    ----------
    comp_id : str
        This side's CompID (SenderCompID of what it sends), e.g. ``"NUMBEX"``.
    initiator : bool
        False for numbex's acceptor side; True for the client side.
    target_comp_id : str
        Initiator: the acceptor's CompID.  Acceptor: learnt from the Logon.
    heartbeat_seconds : int
        Initiator: HeartBtInt (108) to propose.
    heartbeat_seconds_max : int
        Acceptor: highest HeartBtInt accepted (0 is accepted: no heartbeats).
    logon_timeout_seconds, logout_timeout_seconds : float
        How long to wait for a Logon, and for the Logout confirming numbex's.
    test_request_delay : float
        Silence, in heartbeat intervals, before a TestRequest; twice that, disconnect.
    max_sending_time_skew_seconds : float
        SendingTime (52) further than this from ``now_ns`` is rejected (reason 10).
    max_queued_messages : int
        Messages held while waiting for a resend; more is a fatal Logout.
    max_message_bytes : int
        Largest BodyLength buffered by the decoder.
    application_msg_types : frozenset[bytes] or None
        Application MsgTypes delivered to the owner; any other valid one gets a
        BusinessMessageReject.  Default: D F G H q (acceptor), 8 9 r j (initiator).
    username, password : str
        Initiator: Username (553) and Password (554) of its Logon.
    reset_on_logon : bool
        Initiator: send ResetSeqNumFlag(141)=Y and start both sides at 1.
    """

    comp_id: str
    initiator: bool = False
    target_comp_id: str = ""
    heartbeat_seconds: int = 30
    heartbeat_seconds_max: int = 300
    logon_timeout_seconds: float = 10.0
    logout_timeout_seconds: float = 2.0
    test_request_delay: float = 1.2
    max_sending_time_skew_seconds: float = 120.0
    max_queued_messages: int = 10_000
    max_message_bytes: int = 1 << 16
    application_msg_types: frozenset[bytes] | None = None
    username: str = ""
    password: str = ""
    reset_on_logon: bool = False

    def accepted_types(self) -> frozenset[bytes]:
        if self.application_msg_types is not None:
            return frozenset(self.application_msg_types)
        if self.initiator:
            return frozenset((b"8", b"9", b"r", b"j"))
        return frozenset((b"D", b"F", b"G", b"H", b"q"))


class FixSession(SessionHandlers):
    """One FIX 4.4 session over one connection (sans-IO).

    Parameters
    ----------
    settings : SessionSettings
    now_ns : int
        Creation time (connection accepted / opened); starts the logon timeout.
    store : MessageStore or None
        Initiator: required.  Acceptor: supplied by ``authority`` at logon.
    authority : LogonAuthority or None
        Acceptor: required; decides who may log on and supplies the store.
    validator : MessageValidator or None
        Shared validator (one per thread is enough); built when omitted.
    """

    def __init__(self, settings: SessionSettings, now_ns: int, *, store: MessageStore | None = None,
                 authority: LogonAuthority | None = None, validator: MessageValidator | None = None) -> None:
        if settings.initiator and (store is None or not settings.target_comp_id):
            raise LocalProtocolError("an initiator needs a store and a target_comp_id")
        if not settings.initiator and authority is None:
            raise LocalProtocolError("an acceptor needs a logon authority")
        self.settings = settings
        self._authority = authority
        self._store = store
        self._validator = validator or MessageValidator()
        self._epoch_second = self._validator.timestamps.epoch_second
        self._decoder = FixDecoder(settings.max_message_bytes)
        self._formatter = UtcTimestampFormatter()
        self._application_types = settings.accepted_types()
        self._admin_handlers = {msg_type: getattr(self, name) for msg_type, name in ADMIN_HANDLERS.items()}
        self._state = AWAITING_LOGON
        self._events: deque[Event] = deque()
        self._outbox: list[bytes] = []
        self._now = now_ns
        self._state_since = now_ns
        self._last_received = now_ns
        self._last_sent = now_ns
        self._heartbeat_ns = 0
        self._heartbeat_seconds = settings.heartbeat_seconds if settings.initiator else 0
        self._test_request_id: bytes | None = None
        self._test_request_count = 0
        self._max_skew_ns = int(settings.max_sending_time_skew_seconds * NANOS)
        self._queue: dict[int, FixMessage | None] = {}
        self._resend_end = 0
        self._comp_id = settings.target_comp_id      # counterparty CompID
        self._own_key = settings.comp_id.encode("ascii")
        self._peer_key = self._comp_id.encode("ascii")
        self._encoder: FixEncoder | None = None
        self._live = False                            # authority granted a logon (release owed)
        self._next_sender = 1
        self._next_target = 1
        if store is not None:
            self._bind(store, self._comp_id)

    # ------------------------------------------------------------ properties

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def comp_id(self) -> str:
        """The counterparty's CompID ("" until an acceptor has seen a valid Logon)."""
        return self._comp_id

    @property
    def heartbeat_seconds(self) -> int:
        """Negotiated HeartBtInt (0: no heartbeats)."""
        return self._heartbeat_seconds

    @property
    def next_sender_seq_num(self) -> int:
        return self._next_sender

    @property
    def next_target_seq_num(self) -> int:
        return self._next_target

    @property
    def store(self) -> MessageStore | None:
        return self._store

    # ------------------------------------------------------------ owner API

    def receive_data(self, data: bytes, now_ns: int | None = None) -> None:
        """Bytes from the connection.  ``now_ns`` (receive time) defaults to the last time seen."""
        if now_ns is not None:
            self._now = now_ns
        if self._state is not DISCONNECTED:
            self._decoder.receive_data(data)

    def next_event(self) -> Event | None:
        """The next event, or None when more data (or time) is needed."""
        events = self._events
        while not events:
            if self._state is DISCONNECTED:
                return None
            item = self._decoder.next_message()
            if item is None:
                return None
            if type(item) is Garbled:
                events.append(GarbledMessage(item.reason, item.size))
            else:
                self._on_message(item)
        return events.popleft()

    def data_to_send(self) -> bytes:
        """Bytes the session queued (admin replies, resends); write them before anything later."""
        if not self._outbox:
            return b""
        data = b"".join(self._outbox)
        self._outbox.clear()
        return data

    def send(self, msg_type: bytes, body: bytes | list[tuple[int, object]],
             now_ns: int | None = None) -> bytes:
        """Send an application message; returns the bytes to write (queued bytes first).

        ``body`` is the SOH-terminated fields after the header, or (tag, value)
        pairs.  The message is stored for resend.  When the session is not
        logged on but has a store, the message is stored (and so resent after
        the next Logon) and nothing is returned to write.

        Raises
        ------
        LocalProtocolError
            ``msg_type`` is an admin type, or the session has no store yet.
        """
        if now_ns is not None:
            self._now = now_ns
        if msg_type in admin.ADMIN_MSG_TYPES:
            raise LocalProtocolError(f"admin message {msg_type!r} is sent by the session itself")
        if type(body) is not bytes:
            body = encode_fields(body)
        if self._store is None:
            raise LocalProtocolError("the session has no store before a counterparty has logged on")
        seq_num = self._next_sender
        sending_time = self._formatter.format(self._now)
        self._store.store_sent(seq_num, msg_type, sending_time, body)
        self._next_sender = seq_num + 1
        if self._state is not ACTIVE:
            return self.data_to_send()
        data = self._encoder.encode(msg_type, seq_num, sending_time, body)
        self._last_sent = self._now
        if self._outbox:
            self._outbox.append(data)
            return self.data_to_send()
        return data

    def on_timer(self, now_ns: int) -> None:
        """Advance time: heartbeats, test requests, logon/logout/heartbeat timeouts."""
        self._now = now_ns
        state = self._state
        if state is ACTIVE:
            heartbeat = self._heartbeat_ns
            if not heartbeat:
                return
            silence = now_ns - self._last_received
            allowed = int(heartbeat * self.settings.test_request_delay)
            if self._test_request_id is not None and silence >= 2 * allowed:
                self._fatal(f"No message received for {silence / NANOS:.1f}s after a TestRequest")
                return
            if self._test_request_id is None and silence >= allowed:
                self._test_request_count += 1
                self._test_request_id = b"TEST%d" % self._test_request_count
                self._send_admin(admin.TEST_REQUEST, admin.test_request_body(self._test_request_id))
            if now_ns - self._last_sent >= heartbeat:
                self._send_admin(admin.HEARTBEAT, b"")
        elif state is LOGOUT_SENT:
            if now_ns - self._state_since >= self.settings.logout_timeout_seconds * NANOS:
                self._disconnect("Logout not confirmed in time")
        elif state is not DISCONNECTED:
            if now_ns - self._state_since >= self.settings.logon_timeout_seconds * NANOS:
                self._disconnect("Logon not completed in time")

    def logon(self, now_ns: int | None = None) -> None:
        """Initiator: queue the Logon (ResetSeqNumFlag per settings)."""
        if now_ns is not None:
            self._now = now_ns
        if not self.settings.initiator or self._state is not AWAITING_LOGON:
            raise LocalProtocolError("logon() is for an initiator that has not logged on")
        reset = self.settings.reset_on_logon
        if reset:
            self._store.reset()
            self._next_sender = self._next_target = 1
        self._heartbeat_ns = 0
        self._send_admin(admin.LOGON, admin.logon_body(
            self.settings.heartbeat_seconds, reset, self.settings.username, self.settings.password))
        self._transition("send_logon")

    def logout(self, text: str = "", now_ns: int | None = None) -> None:
        """Start the Logout handshake (or just disconnect when not logged on)."""
        if now_ns is not None:
            self._now = now_ns
        if self._state is ACTIVE:
            self._start_logout(text)
        elif self._state is not LOGOUT_SENT and self._state is not DISCONNECTED:
            self._disconnect(text or "Logout before logon")

    def connection_lost(self, now_ns: int | None = None) -> None:
        """The transport closed; ends the session (a Disconnect event follows)."""
        if now_ns is not None:
            self._now = now_ns
        if self._state is not DISCONNECTED:
            self._disconnect("Connection lost")

    # ------------------------------------------------------------ internals used by the handlers

    def _transition(self, trigger: str) -> None:
        new_state = TRANSITIONS.get((self._state, trigger))
        if new_state is None:
            raise LocalProtocolError(f"no transition from {self._state.name} on {trigger!r}")
        self._state = new_state
        self._state_since = self._now

    def _bind(self, store: MessageStore, comp_id: str) -> None:
        self._store = store
        self._comp_id = comp_id
        self._peer_key = comp_id.encode("ascii")
        self._encoder = FixEncoder(self.settings.comp_id, comp_id)
        self._next_sender = store.next_sender_seq_num
        self._next_target = store.next_target_seq_num

    def _send_admin(self, msg_type: bytes, body: bytes) -> None:
        seq_num = self._next_sender
        self._outbox.append(self._encoder.encode(msg_type, seq_num, self._formatter.format(self._now), body))
        self._next_sender = seq_num + 1
        self._store.set_next_sender_seq_num(seq_num + 1)
        self._last_sent = self._now

    def _start_logout(self, text: str) -> None:
        if self._state is ACTIVE:
            self._send_admin(admin.LOGOUT, admin.logout_body(text))
            self._transition("send_logout")

    def _fatal(self, text: str) -> None:
        """Logout with ``text`` (when a store is bound) and disconnect at once."""
        if self._encoder is not None and self._state is not DISCONNECTED:
            self._send_admin(admin.LOGOUT, admin.logout_body(text))
        self._disconnect(text)

    def _disconnect(self, reason: str, trigger: str = "fail") -> None:
        if self._state is DISCONNECTED:
            return
        self._transition(trigger)
        self._queue.clear()
        if self._live:
            self._live = False
            self._authority.release(self._comp_id)
        self._events.append(Disconnect(reason))
