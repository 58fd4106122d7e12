"""What a FIX session persists, as an interface, plus an in-memory store.

A session keeps its next sender and target MsgSeqNum and every application
message it sent (for ResendRequest) in a ``MessageStore``.  The durable
implementation is ``numbex.server.fix_store.FileStore`` (file I/O lives in
``server/``); ``MemoryStore`` here serves tests and the load generator.

A message for a counterparty that is not connected can be stored without a
session: take ``next_sender_seq_num``, call ``store_sent`` with it; the
counterparty gets it by ResendRequest after its next Logon.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol


class StoredMessage(NamedTuple):
    """An application message as sent: enough to resend it with PossDupFlag=Y."""

    seq_num: int
    msg_type: bytes
    sending_time: bytes
    body: bytes


class MessageStore(Protocol):
    """Sequence numbers and sent application messages of one FIX session."""

    @property
    def next_sender_seq_num(self) -> int:
        """MsgSeqNum of the next message this side sends."""

    @property
    def next_target_seq_num(self) -> int:
        """MsgSeqNum expected on the next message from the counterparty."""

    def set_next_sender_seq_num(self, value: int) -> None:
        """Record that ``value`` is the next outgoing MsgSeqNum (admin message sent)."""

    def set_next_target_seq_num(self, value: int) -> None:
        """Record that ``value`` is the next expected incoming MsgSeqNum."""

    def store_sent(self, seq_num: int, msg_type: bytes, sending_time: bytes, body: bytes) -> None:
        """Keep an application message for resend; the next sender number becomes ``seq_num + 1``."""

    def sent_messages(self, begin: int, end: int) -> Iterable[StoredMessage]:
        """Stored application messages with ``begin <= seq_num <= end``, ascending."""

    def reset(self) -> None:
        """Both sequence numbers back to 1 and every stored message dropped."""


class MemoryStore:
    """A ``MessageStore`` in memory: nothing survives the process."""

    def __init__(self) -> None:
        self._next_sender = 1
        self._next_target = 1
        self._messages: dict[int, StoredMessage] = {}

    @property
    def next_sender_seq_num(self) -> int:
        return self._next_sender

    @property
    def next_target_seq_num(self) -> int:
        return self._next_target

    def set_next_sender_seq_num(self, value: int) -> None:
        self._next_sender = value

    def set_next_target_seq_num(self, value: int) -> None:
        self._next_target = value

    def store_sent(self, seq_num: int, msg_type: bytes, sending_time: bytes, body: bytes) -> None:
        self._messages[seq_num] = StoredMessage(seq_num, msg_type, sending_time, body)
        self._next_sender = seq_num + 1

    def sent_messages(self, begin: int, end: int) -> list[StoredMessage]:
        if end - begin < len(self._messages):
            found = (self._messages.get(seq_num) for seq_num in range(begin, end + 1))
            return [message for message in found if message is not None]
        return sorted(
            (message for seq_num, message in self._messages.items() if begin <= seq_num <= end),
        )

    def reset(self) -> None:
        self._next_sender = 1
        self._next_target = 1
        self._messages.clear()
