"""FIX session states and the one table of transitions between them.

``TRANSITIONS`` maps (state, trigger) to the next state; ``FixSession`` changes
state only through it, so an unlisted pair is a bug (LocalProtocolError).
``ADMIN_HANDLERS`` says which handler an in-sequence admin message of an
established session goes to; every other MsgType is application.
"""

from __future__ import annotations

from enum import IntEnum

from numbex.protocol.fix import admin

NANOS = 1_000_000_000


class SessionState(IntEnum):
    AWAITING_LOGON = 0   # acceptor: waiting for the first message; initiator: logon() not called yet
    LOGON_SENT = 1       # initiator: waiting for the Logon reply
    ACTIVE = 2           # logged on
    LOGOUT_SENT = 3      # numbex sent Logout, waiting for the confirming Logout
    DISCONNECTED = 4     # final: the owner closes the connection


AWAITING_LOGON = SessionState.AWAITING_LOGON
LOGON_SENT = SessionState.LOGON_SENT
ACTIVE = SessionState.ACTIVE
LOGOUT_SENT = SessionState.LOGOUT_SENT
DISCONNECTED = SessionState.DISCONNECTED

#: (state, trigger) -> next state.  Every state change of a session is one of these.
TRANSITIONS: dict[tuple[SessionState, str], SessionState] = {
    (AWAITING_LOGON, "send_logon"): LOGON_SENT,        # initiator sent its Logon
    (AWAITING_LOGON, "accept_logon"): ACTIVE,          # acceptor answered a valid, authorised Logon
    (LOGON_SENT, "receive_logon"): ACTIVE,             # initiator received the Logon reply
    (LOGON_SENT, "receive_logout"): DISCONNECTED,      # initiator's Logon refused
    (ACTIVE, "send_logout"): LOGOUT_SENT,              # numbex starts the Logout handshake
    (ACTIVE, "receive_logout"): DISCONNECTED,          # counterparty started it; answered, then close
    (LOGOUT_SENT, "receive_logout"): DISCONNECTED,     # handshake complete
    (AWAITING_LOGON, "fail"): DISCONNECTED,            # refused logon, timeout, connection lost ...
    (LOGON_SENT, "fail"): DISCONNECTED,
    (ACTIVE, "fail"): DISCONNECTED,
    (LOGOUT_SENT, "fail"): DISCONNECTED,
}

#: MsgType -> handler name, for in-sequence messages of an established session.
ADMIN_HANDLERS: dict[bytes, str] = {
    admin.HEARTBEAT: "_on_heartbeat",
    admin.TEST_REQUEST: "_on_test_request",
    admin.RESEND_REQUEST: "_on_resend_request",
    admin.REJECT: "_on_reject",
    admin.SEQUENCE_RESET: "_on_sequence_reset",
    admin.LOGOUT: "_on_logout",
    admin.LOGON: "_on_unexpected_logon",
}
