"""How a ``FixSession`` handles each incoming message (mixed into ``FixSession``).

Order of checks for a message of an established session (FIX 4.4 Vol. 2):

1. MsgSeqNum(34) missing or not a positive number: Logout and disconnect.
2. SenderCompID/TargetCompID wrong: Reject (9), then Logout.
3. SendingTime(52) further than the allowed skew from now: Reject (10), then Logout.
4. Sequence: equal to expected -> processed; higher -> held in a queue and one
   ResendRequest(expected, 0) sent for the gap (none while one is outstanding);
   lower with PossDupFlag=Y -> dropped as a duplicate (OrigSendingTime checked);
   lower without it -> Logout "MsgSeqNum too low, expecting X but received Y".
   A SequenceReset in Reset mode is processed whatever its MsgSeqNum; a Logout
   or a valid ResendRequest that is too high is acted on at once.
5. Processing in sequence: dictionary validation (Reject with 373/371 and the
   sequence number used up), OrigSendingTime for PossDupFlag=Y, then the admin
   handler, or delivery to the owner, or a BusinessMessageReject for a valid
   MsgType numbex does not take.
"""

from __future__ import annotations

from numbex.protocol.fix import admin
from numbex.protocol.fix.codec import FixEncoder
from numbex.protocol.fix.directory import LogonRequest
from numbex.protocol.fix.errors import RemoteProtocolError
from numbex.protocol.fix.events import (
    ApplicationMessage, MessageRejected, RejectReceived, SessionEstablished,
)
from numbex.protocol.fix.message import FixMessage
from numbex.protocol.fix.states import ACTIVE, AWAITING_LOGON, DISCONNECTED, LOGOUT_SENT, NANOS
from numbex.protocol.fix.validate import (
    COMP_ID_PROBLEM, INCORRECT_DATA_FORMAT, REQUIRED_TAG_MISSING, SENDING_TIME_ACCURACY, VALUE_INCORRECT,
)


def _seq_num(values: dict[bytes, bytes]) -> int | None:
    raw = values.get(b"34")
    if raw is None or not raw.isdigit() or len(raw) > 18:
        return None
    seq_num = int(raw)
    return seq_num if seq_num > 0 else None


def _text(value: bytes | None) -> str:
    return value.decode("ascii", "replace") if value else ""


class SessionHandlers:
    """Message handling for ``FixSession``; uses the attributes ``FixSession`` sets up."""

    # ------------------------------------------------------------ dispatch by state

    def _on_message(self, message: FixMessage) -> None:
        self._last_received = self._now
        self._test_request_id = None
        state = self._state
        if state is ACTIVE or state is LOGOUT_SENT:
            self._on_sequenced(message)
        elif state is AWAITING_LOGON:
            if self.settings.initiator:
                self._disconnect("Message received before Logon was sent")
            else:
                self._on_first_message(message)
        else:
            self._on_logon_reply(message)

    # ------------------------------------------------------------ logon

    def _on_first_message(self, message: FixMessage) -> None:
        """Acceptor: validate, authorise, and only then apply ResetSeqNumFlag."""
        values = message.values
        if message.msg_type != admin.LOGON:
            self._refuse(message, "First message is not a Logon")
            return
        try:
            self._validator.validate(message)
        except RemoteProtocolError as error:
            tag = f" ({error.tag})" if error.tag is not None else ""
            self._refuse(message, f"Invalid Logon: {error.text}{tag}")
            return
        seq_num = _seq_num(values)
        if seq_num is None:
            self._refuse(message, "MsgSeqNum(34) missing or invalid")
            return
        if values[b"56"] != self._own_key:
            self._refuse(message, f"CompID problem: TargetCompID must be {self.settings.comp_id}")
            return
        if values[b"98"] != b"0":
            self._refuse(message, "EncryptMethod(98) must be 0")
            return
        heartbeat = int(values[b"108"])
        maximum = self.settings.heartbeat_seconds_max
        if not 0 <= heartbeat <= maximum:
            self._refuse(message, f"HeartBtInt(108) must be between 0 and {maximum}")
            return
        if not self._sending_time_ok(values):
            self._refuse(message, "SendingTime accuracy problem")
            return
        sender = values[b"49"]
        if not (sender.isascii() and sender.decode("ascii").isprintable() and b"=" not in sender):
            self._disconnect("CompID problem: SenderCompID is not printable ASCII")
            return
        comp_id = sender.decode("ascii")
        reset = values.get(b"141") == b"Y"
        username = values.get(b"553")
        password = values.get(b"554")
        grant = self._authority.authorize(LogonRequest(
            comp_id, self.settings.comp_id, None if username is None else _text(username),
            None if password is None else password.decode("utf-8", "replace"), heartbeat, reset))
        if isinstance(grant, str):
            self._refuse(message, grant)
            return
        self._live = True
        self._bind(grant, comp_id)
        if reset:
            if seq_num != 1:
                self._fatal("MsgSeqNum(34) must be 1 when ResetSeqNumFlag(141)=Y")
                return
            grant.reset()
            self._next_sender = self._next_target = 1
        elif seq_num < self._next_target:
            self._fatal(f"MsgSeqNum too low, expecting {self._next_target} but received {seq_num}")
            return
        self._heartbeat_seconds = heartbeat
        self._heartbeat_ns = heartbeat * NANOS
        self._send_admin(admin.LOGON, admin.logon_body(heartbeat, reset))
        self._transition("accept_logon")
        self._events.append(SessionEstablished(comp_id, heartbeat, reset))
        self._after_logon(seq_num)

    def _refuse(self, message: FixMessage, text: str) -> None:
        """Logout an unauthenticated peer without touching any store, then disconnect."""
        sender = message.values.get(b"49")
        if sender and sender.isascii() and b"=" not in sender and sender.decode("ascii").isprintable():
            encoder = FixEncoder(self.settings.comp_id, sender.decode("ascii"))
            self._outbox.append(encoder.encode(
                admin.LOGOUT, 1, self._formatter.format(self._now), admin.logout_body(text)))
        self._disconnect(text)

    def _on_logon_reply(self, message: FixMessage) -> None:
        """Initiator: the acceptor's answer to our Logon."""
        values = message.values
        seq_num = _seq_num(values)
        if message.msg_type == admin.LOGOUT:
            self._disconnect(f"Logon refused: {_text(values.get(b'58'))}", trigger="receive_logout")
            return
        if message.msg_type != admin.LOGON or seq_num is None:
            self._disconnect("First message is not a Logon")
            return
        try:
            self._validator.validate(message)
        except RemoteProtocolError as error:
            self._fatal(f"Invalid Logon: {error.text}")
            return
        if values[b"49"] != self._peer_key or values[b"56"] != self._own_key:
            self._fatal("CompID problem")
            return
        if seq_num < self._next_target:
            self._fatal(f"MsgSeqNum too low, expecting {self._next_target} but received {seq_num}")
            return
        self._heartbeat_ns = self._heartbeat_seconds * NANOS
        self._transition("receive_logon")
        self._events.append(SessionEstablished(self._comp_id, self._heartbeat_seconds,
                                               values.get(b"141") == b"Y"))
        self._after_logon(seq_num)

    def _after_logon(self, seq_num: int) -> None:
        if seq_num > self._next_target:
            self._queue[seq_num] = None
            self._request_resend(seq_num)
        else:
            self._advance_target(seq_num + 1)

    # ------------------------------------------------------------ established session

    def _on_sequenced(self, message: FixMessage) -> None:
        values = message.values
        seq_num = _seq_num(values)
        if seq_num is None:
            self._fatal("MsgSeqNum(34) missing or invalid")
            return
        msg_type = message.msg_type
        expected = self._next_target
        sender = values.get(b"49")
        target = values.get(b"56")
        if ((sender is not None and sender != self._peer_key)
                or (target is not None and target != self._own_key)):
            tag = 49 if sender != self._peer_key else 56
            self._header_fault(seq_num, msg_type, RemoteProtocolError(COMP_ID_PROBLEM, "CompID problem", tag))
            return
        if not self._sending_time_ok(values):
            self._header_fault(seq_num, msg_type, RemoteProtocolError(
                SENDING_TIME_ACCURACY, "SendingTime accuracy problem", 52))
            return
        if seq_num == expected:
            self._process(message, seq_num)
            if self._queue:
                self._drain_queue()
        elif msg_type == admin.SEQUENCE_RESET and values.get(b"123") != b"Y":
            try:
                self._validator.validate(message)
            except RemoteProtocolError as error:
                self._send_reject(seq_num, msg_type, error)
                return
            self._reset_sequence(message, seq_num)
            self._drain_queue()
        elif seq_num > expected:
            self._on_too_high(message, seq_num, msg_type)
        else:
            self._on_too_low(message, seq_num, msg_type)

    def _header_fault(self, seq_num: int, msg_type: bytes | None, error: RemoteProtocolError) -> None:
        self._send_reject(seq_num, msg_type, error)
        if seq_num == self._next_target:
            self._advance_target(seq_num + 1)
        self._start_logout(error.text)

    def _sending_time_ok(self, values: dict[bytes, bytes]) -> bool:
        """False only for a well-formed SendingTime too far from now (malformed: validation's job)."""
        sending_time = values.get(b"52")
        if sending_time is None:
            return True
        second = self._epoch_second(sending_time)
        if second is None:
            return True
        # SendingTime lies in [start, start + 1 s): whole seconds are enough for a skew
        # measured in minutes, giving the sender the benefit of the fraction.
        start = second * NANOS
        return start - self._now <= self._max_skew_ns and self._now - start - NANOS <= self._max_skew_ns

    def _check_orig_sending_time(self, values: dict[bytes, bytes]) -> None:
        original = values.get(b"122")
        if original is None:
            raise RemoteProtocolError(REQUIRED_TAG_MISSING, "Required tag missing", 122)
        original_ns = self._validator.parse_timestamp(original)
        if original_ns is None:
            raise RemoteProtocolError(INCORRECT_DATA_FORMAT, "Incorrect data format for value", 122)
        sent_ns = self._validator.parse_timestamp(values.get(b"52", b""))
        if sent_ns is None or original_ns > sent_ns:
            raise RemoteProtocolError(SENDING_TIME_ACCURACY, "SendingTime accuracy problem", 122)

    def _process(self, message: FixMessage, seq_num: int) -> None:
        """An in-sequence message: validate, then handle or deliver."""
        msg_type = message.msg_type
        values = message.values
        possible_duplicate = values.get(b"43") == b"Y"
        try:
            self._validator.validate(message)
            if possible_duplicate and msg_type != admin.SEQUENCE_RESET:
                self._check_orig_sending_time(values)
        except RemoteProtocolError as error:
            self._send_reject(seq_num, msg_type, error)
            self._advance_target(seq_num + 1)
            if error.reason == SENDING_TIME_ACCURACY:
                self._start_logout(error.text)
            return
        handler = self._admin_handlers.get(msg_type)
        if handler is not None:
            handler(message, seq_num)
            return
        self._next_target = seq_num + 1           # _advance_target, inline on the hot path
        self._store.set_next_target_seq_num(seq_num + 1)
        if msg_type in self._application_types:
            self._events.append(ApplicationMessage(message, seq_num, possible_duplicate))
        else:
            text = "Unsupported Message Type"
            self._send_stored(admin.BUSINESS_MESSAGE_REJECT, admin.business_reject_body(
                seq_num, msg_type, admin.UNSUPPORTED_MESSAGE_TYPE, text))
            self._events.append(MessageRejected(
                seq_num, msg_type, admin.UNSUPPORTED_MESSAGE_TYPE, None, text, True))

    def _on_too_high(self, message: FixMessage, seq_num: int, msg_type: bytes | None) -> None:
        if msg_type == admin.LOGOUT:
            self._on_logout(message, seq_num, in_sequence=False)
            return
        entry: FixMessage | None = message
        if msg_type == admin.RESEND_REQUEST:
            try:
                self._validator.validate(message)
            except RemoteProtocolError:
                pass  # held, and rejected when its turn comes
            else:
                self._on_resend_request(message, seq_num, in_sequence=False)
                entry = None
        if seq_num not in self._queue and len(self._queue) >= self.settings.max_queued_messages:
            self._fatal("Too many messages queued while waiting for a resend")
            return
        self._queue.setdefault(seq_num, entry)
        if self._resend_end < self._next_target:
            self._request_resend(seq_num)

    def _on_too_low(self, message: FixMessage, seq_num: int, msg_type: bytes | None) -> None:
        values = message.values
        if values.get(b"43") != b"Y":
            self._fatal(f"MsgSeqNum too low, expecting {self._next_target} but received {seq_num}")
            return
        if msg_type != admin.SEQUENCE_RESET:
            try:
                self._check_orig_sending_time(values)
            except RemoteProtocolError as error:
                self._send_reject(seq_num, msg_type, error)
                if error.reason == SENDING_TIME_ACCURACY:
                    self._start_logout(error.text)
        # Otherwise a possible duplicate of something already processed: ignored.

    def _drain_queue(self) -> None:
        queue = self._queue
        while queue and self._state is not DISCONNECTED:
            seq_num = self._next_target
            if seq_num in queue:
                message = queue.pop(seq_num)
                if message is None:
                    self._advance_target(seq_num + 1)
                else:
                    self._process(message, seq_num)
                continue
            for stale in [queued for queued in queue if queued < seq_num]:
                del queue[stale]
            if seq_num not in queue:
                break

    def _request_resend(self, seq_num: int) -> None:
        self._send_admin(admin.RESEND_REQUEST, admin.resend_request_body(self._next_target, 0))
        self._resend_end = seq_num - 1

    def _advance_target(self, value: int) -> None:
        self._next_target = value
        self._store.set_next_target_seq_num(value)

    # ------------------------------------------------------------ admin handlers (in sequence)

    def _on_heartbeat(self, message: FixMessage, seq_num: int) -> None:
        self._advance_target(seq_num + 1)

    def _on_test_request(self, message: FixMessage, seq_num: int) -> None:
        self._advance_target(seq_num + 1)
        self._send_admin(admin.HEARTBEAT, admin.heartbeat_body(message.values[b"112"]))

    def _on_reject(self, message: FixMessage, seq_num: int) -> None:
        self._advance_target(seq_num + 1)
        self._events.append(RejectReceived(message))

    def _on_unexpected_logon(self, message: FixMessage, seq_num: int) -> None:
        self._advance_target(seq_num + 1)
        self._fatal("Logon received on an established session")

    def _on_logout(self, message: FixMessage, seq_num: int, in_sequence: bool = True) -> None:
        if in_sequence:
            self._advance_target(seq_num + 1)
        if self._state is ACTIVE:
            self._send_admin(admin.LOGOUT, b"")
            text = _text(message.values.get(b"58"))
            self._disconnect("Logout requested by counterparty" + (f": {text}" if text else ""),
                             trigger="receive_logout")
        else:
            self._disconnect("Logout confirmed", trigger="receive_logout")

    def _on_sequence_reset(self, message: FixMessage, seq_num: int) -> None:
        values = message.values
        if values.get(b"123") != b"Y":
            self._reset_sequence(message, seq_num)
            return
        new_seq_num = int(values[b"36"])
        if new_seq_num <= seq_num:
            self._reject_lower_sequence(seq_num, new_seq_num)
            self._advance_target(seq_num + 1)
        else:
            self._advance_target(new_seq_num)

    def _reset_sequence(self, message: FixMessage, seq_num: int) -> None:
        """SequenceReset in Reset mode: MsgSeqNum ignored; NewSeqNo may only go up."""
        new_seq_num = int(message.values[b"36"])
        if new_seq_num > self._next_target:
            self._advance_target(new_seq_num)
        elif new_seq_num < self._next_target:
            self._reject_lower_sequence(seq_num, new_seq_num)

    def _reject_lower_sequence(self, seq_num: int, new_seq_num: int) -> None:
        text = f"Attempt to lower sequence number, invalid value NewSeqNo(36)={new_seq_num}"
        self._send_reject(seq_num, admin.SEQUENCE_RESET, RemoteProtocolError(VALUE_INCORRECT, text, 36))

    def _on_resend_request(self, message: FixMessage, seq_num: int, in_sequence: bool = True) -> None:
        """Resend stored application messages; admin messages become one GapFill per run."""
        if in_sequence:
            self._advance_target(seq_num + 1)
        values = message.values
        begin = int(values[b"7"])
        end = int(values[b"16"])
        if begin < 1 or (end and end < begin):
            self._send_reject(seq_num, admin.RESEND_REQUEST, RemoteProtocolError(
                VALUE_INCORRECT, "Invalid ResendRequest range", 7 if begin < 1 else 16))
            return
        last = self._next_sender - 1
        if not end or end > last:
            end = last
        if begin > end:
            return
        now = self._formatter.format(self._now)
        encode = self._encoder.encode_possible_duplicate
        outbox = self._outbox
        gap_start = begin
        for stored in self._store.sent_messages(begin, end):
            if stored.seq_num > gap_start:
                outbox.append(encode(admin.SEQUENCE_RESET, gap_start, now, now,
                                     admin.gap_fill_body(stored.seq_num)))
            outbox.append(encode(stored.msg_type, stored.seq_num, now, stored.sending_time, stored.body))
            gap_start = stored.seq_num + 1
        if gap_start <= end:
            outbox.append(encode(admin.SEQUENCE_RESET, gap_start, now, now, admin.gap_fill_body(end + 1)))
        self._last_sent = self._now

    # ------------------------------------------------------------ rejects

    def _send_reject(self, seq_num: int, msg_type: bytes | None, error: RemoteProtocolError) -> None:
        ref_msg_type = msg_type if self._validator.is_known_msg_type(msg_type) else None
        self._send_admin(admin.REJECT, admin.reject_body(
            seq_num, error.reason, error.text, error.tag, ref_msg_type))
        self._events.append(MessageRejected(
            seq_num, msg_type or b"", error.reason, error.tag, error.text, False))

    def _send_stored(self, msg_type: bytes, body: bytes) -> None:
        """An application message the session itself sends (BusinessMessageReject)."""
        seq_num = self._next_sender
        sending_time = self._formatter.format(self._now)
        self._store.store_sent(seq_num, msg_type, sending_time, body)
        self._next_sender = seq_num + 1
        self._outbox.append(self._encoder.encode(msg_type, seq_num, sending_time, body))
        self._last_sent = self._now
