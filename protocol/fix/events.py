"""Events a ``FixSession`` hands to its owner through ``next_event()``.

Admin traffic (Heartbeat, TestRequest, ResendRequest, SequenceReset, the
Logon/Logout handshakes, Rejects numbex sends) is handled inside the session;
the owner sees only what it must act on or may want to log.  Events are
plain slotted dataclasses (not frozen: a frozen one costs three times as much
to build, and one is built per application message); treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass

from numbex.protocol.fix.message import FixMessage


@dataclass(slots=True)
class SessionEstablished:
    """Logon completed: application messages may flow.

    ``comp_id`` is the counterparty's CompID; ``reset`` is True when both
    sides restarted their sequence numbers at 1 (ResetSeqNumFlag).
    """

    comp_id: str
    heartbeat_seconds: int
    reset: bool


@dataclass(slots=True)
class ApplicationMessage:
    """A validated, in-sequence application message for the owner to process.

    ``possible_duplicate`` is True when it came with PossDupFlag(43)=Y (a
    resend of a message numbex may already have seen).
    """

    message: FixMessage
    seq_num: int
    possible_duplicate: bool


@dataclass(slots=True)
class MessageRejected:
    """numbex rejected an incoming message (Reject 35=3, or BusinessMessageReject 35=j
    when ``business`` is True); for logs and counters."""

    ref_seq_num: int
    ref_msg_type: bytes
    reason: int
    ref_tag: int | None
    text: str
    business: bool


@dataclass(slots=True)
class RejectReceived:
    """The counterparty rejected one of numbex's messages (Reject 35=3)."""

    message: FixMessage


@dataclass(slots=True)
class GarbledMessage:
    """Bytes the decoder dropped (bad BodyLength/CheckSum/framing); no sequence number used."""

    reason: str
    size: int


@dataclass(slots=True)
class Disconnect:
    """Write out ``data_to_send()`` then close the connection.  Always the last event."""

    reason: str


Event = (SessionEstablished | ApplicationMessage | MessageRejected | RejectReceived | GarbledMessage
         | Disconnect)
