"""FIX 4.4 for numbex: sans-IO codec, generated dictionary, validation, session.

Modules: ``dictionary`` (generated tag numbers, enums, message layouts),
``codec`` (incremental decoder, header-caching encoder), ``message``
(``FixMessage``), ``validate`` (data-dictionary checks), ``session``
(``FixSession`` state machine), ``store`` (``MessageStore`` interface,
``MemoryStore``), ``directory`` (who may log on), ``events``, ``errors``.
No module here does I/O; the durable store is ``numbex.server.fix_store``.
"""

from numbex.protocol.fix.codec import FixDecoder, FixEncoder, Garbled, checksum, encode_fields, frame
from numbex.protocol.fix.directory import LogonAuthority, LogonRequest, SessionDirectory
from numbex.protocol.fix.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from numbex.protocol.fix.events import (
    ApplicationMessage, Disconnect, Event, GarbledMessage, MessageRejected, RejectReceived,
    SessionEstablished,
)
from numbex.protocol.fix.message import FieldMap, FixMessage
from numbex.protocol.fix.session import FixSession, SessionSettings
from numbex.protocol.fix.states import SessionState
from numbex.protocol.fix.store import MemoryStore, MessageStore, StoredMessage
from numbex.protocol.fix.validate import MessageValidator

__all__ = [
    "ApplicationMessage", "Disconnect", "Event", "FieldMap", "FixDecoder", "FixEncoder", "FixMessage",
    "FixSession", "Garbled", "GarbledMessage", "LocalProtocolError", "LogonAuthority", "LogonRequest",
    "MemoryStore", "MessageRejected", "MessageStore", "MessageValidator", "ProtocolError", "RejectReceived",
    "RemoteProtocolError", "SessionDirectory", "SessionEstablished", "SessionSettings", "SessionState",
    "StoredMessage", "checksum", "encode_fields", "frame",
]
