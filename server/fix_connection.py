"""One FIX connection of the gateway: its session, its outbound bytes, its transport handle.

The gateway core (:mod:`numbex.server.fix_gateway`) fills ``output`` during a
batch; the I/O loop that owns the transport writes it once per batch and keeps
what the socket would not take in ``backlog``.  ``backlog`` is bounded by
``gateway.outbound_buffer_bytes``: a client that stops reading is
disconnected, it never blocks the gateway.
"""

from __future__ import annotations

from numbex.protocol.fix import FixSession


class FixConnection:
    """Per-connection state shared by the core and the I/O loop.

    Attributes
    ----------
    session : FixSession
        The sans-IO FIX session of this connection.
    context : SessionContext or None
        The configured session once logged on.
    handle : object
        The I/O loop's transport (a socket, an asyncio transport).
    output : list[bytes]
        Bytes produced in the current batch, in order.
    backlog : bytearray
        Bytes the transport has not accepted yet (poll loop).
    closing : bool
        The session ended: write ``output`` then close.
    closed : bool
        The transport is closed; nothing more is written.
    """

    __slots__ = ("session", "context", "handle", "output", "backlog", "closing", "closed", "queued",
                 "received", "peer", "bytes_in", "bytes_out")

    def __init__(self, session: FixSession, handle=None, peer: str = "") -> None:
        self.session = session
        self.context = None
        self.handle = handle
        self.output: list[bytes] = []
        self.backlog = bytearray()
        self.closing = False
        self.closed = False
        self.queued = False          # listed in the core's output list this batch
        self.received = False        # listed in the core's received list this batch
        self.peer = peer
        self.bytes_in = 0
        self.bytes_out = 0

    def take_output(self) -> bytes:
        """The batch's bytes, joined (empty when none)."""
        output = self.output
        if not output:
            return b""
        data = output[0] if len(output) == 1 else b"".join(output)
        output.clear()
        return data

    def __repr__(self) -> str:
        comp_id = self.context.comp_id if self.context is not None else "-"
        return f"FixConnection({self.peer or '?'}, {comp_id}, {self.session.state.name})"
