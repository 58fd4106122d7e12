"""The FIX error tree.

``ProtocolError`` is the root.  ``LocalProtocolError`` means numbex's own code
used the API wrongly (sending on a session that has no store, an invalid
field in an outgoing body); it is a bug in the caller.  ``RemoteProtocolError``
means the peer's bytes broke a rule; it carries what the session needs to
answer with a Reject (35=3): the SessionRejectReason (373), the offending tag
(371) and a text.  The decoder and the session never let any other exception
escape on any input; the session turns every ``RemoteProtocolError`` into a
Reject, a Logout or a disconnect event.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every FIX protocol error raised by ``numbex.protocol.fix``."""


class LocalProtocolError(ProtocolError):
    """numbex itself misused the FIX API (a programming error, never peer input)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that breaks the FIX 4.4 rules.

    Parameters
    ----------
    reason : int
        SessionRejectReason (373) to report, e.g. 1 for "required tag missing".
    text : str
        Human-readable explanation, sent as Text (58).
    tag : int or None
        RefTagID (371): the tag at fault, when there is one.
    """

    def __init__(self, reason: int, text: str, tag: int | None = None) -> None:
        super().__init__(text)
        self.reason = reason
        self.text = text
        self.tag = tag

    def __repr__(self) -> str:
        return f"RemoteProtocolError(reason={self.reason}, text={self.text!r}, tag={self.tag})"
