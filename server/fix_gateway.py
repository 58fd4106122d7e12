"""The FIX gateway core: sessions, order entry and batching, without any socket.

Both I/O loops (:mod:`numbex.server.poll_gateway`, :mod:`numbex.server.uvloop_gateway`)
are thin shells around :class:`FixGatewayCore`.  One batch is:

1. the loop hands over every connection's received bytes (:meth:`data_received`);
2. :meth:`process` drains each session's events: logons bind the connection to
   its configured session, application messages go to :class:`OrderEntry`
   (which packs COMMAND records), disconnects trigger cancel-on-disconnect;
3. one ``link.submit`` for the whole batch, then the link is polled and its
   events become ExecutionReports etc. in the sessions (stored, sequenced);
4. the store of every connection with bytes to write is synced
   (``FileStore.sync``), and only then the loop writes each connection's bytes
   with one send (:meth:`take_output`); once every store written in the batch is
   synced, the link releases the batch's events (``link.commit``: until then a
   successor of a gateway that died would read them again).  A store written without anything to
   send (an order taken in, whose acknowledgement comes in a later batch; a
   report stored for an offline session) is synced with that later output, or
   by :meth:`on_timer` within 100 ms: one fdatasync per round trip, not two.

A session that is offline still gets its reports: they are stored under its
next sequence numbers and resent when it asks after its next Logon.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from numbex.protocol.fix import (
    ApplicationMessage, Disconnect, FixSession, GarbledMessage, MessageRejected, MessageValidator,
    RejectReceived, SessionDirectory, SessionEstablished, SessionSettings,
)
from numbex.protocol.fix.timestamps import UtcTimestampFormatter
from numbex.server.fix_connection import FixConnection
from numbex.server.fix_orders import OrderEntry
from numbex.server.fix_store import FileStore

NANOS = 1_000_000_000
SHUTDOWN_TEXT = "numbex is shutting down"
"""Text (58) of the Logout every session gets at a clean stop."""

log = logging.getLogger("numbex.gateway")


class FixGatewayCore:
    """Sessions, order entry and batching of one FIX gateway.

    Parameters
    ----------
    config : numbex.config.Config
    link : EngineLink
    now_ns : int
        Start time.
    store_directory : str or Path
        Where each CompID's ``FileStore`` lives (used unless ``store_factory`` is given).
    store_sync : str
        ``FileStore`` sync policy: ``batch`` (default: durable before any byte is
        sent), ``always`` or ``none``.
    store_factory : callable, optional
        ``comp_id -> MessageStore``; replaces the file stores (tests).
    gateway_index, epoch : int
        Addressing (see ``engine_link``).
    **entry_options
        Passed to :class:`OrderEntry` (``batch``, ``recent_orders``, throttle settings).
    """

    def __init__(self, config, link, now_ns: int, *, store_directory: str | Path | None = None,
                 store_sync: str = "batch", store_factory=None, gateway_index: int = 0, epoch: int = 0,
                 **entry_options) -> None:
        if store_factory is None:
            if store_directory is None:
                raise ValueError("FixGatewayCore needs a store_directory or a store_factory")
            directory = Path(store_directory)

            def store_factory(comp_id: str):
                return FileStore.open(directory, comp_id, sync=store_sync)

        fix = config.gateway.fix
        entry_options.setdefault("throttle_logout_excess", fix.throttle_logout_excess)
        entry_options.setdefault("throttle_logout_seconds", fix.throttle_logout_ms / 1000)
        self.config = config
        self.link = link
        self.directory = SessionDirectory({s.comp_id: s.password for s in config.sessions}, store_factory)
        self.settings = SessionSettings(config.exchange.comp_id, heartbeat_seconds_max=fix.heartbeat_seconds_max,
                                        logon_timeout_seconds=fix.logon_timeout_seconds)
        self.validator = MessageValidator()
        self.entry = OrderEntry(config, link, now_ns, gateway_index=gateway_index, epoch=epoch, **entry_options)
        self.connections: set[FixConnection] = set()
        self.counters: Counter[str] = Counter()
        self._received: list[FixConnection] = []
        self._output: list[FixConnection] = []
        self._stores: set = set()
        self._logouts: list[FixConnection] = []
        self._formatter = UtcTimestampFormatter()

    # ------------------------------------------------------------ transport events

    def open_connection(self, handle, now_ns: int, peer: str = "") -> FixConnection:
        """A transport was accepted: a new acceptor session waits for its Logon."""
        session = FixSession(self.settings, now_ns, authority=self.directory, validator=self.validator)
        connection = FixConnection(session, handle, peer)
        self.connections.add(connection)
        self.counters["connections"] += 1
        return connection

    def data_received(self, connection: FixConnection, data, now_ns: int) -> None:
        """Bytes from the transport; handled at the next :meth:`process`."""
        if connection.closed:
            return
        connection.bytes_in += len(data)
        connection.session.receive_data(data, now_ns)
        if not connection.received:
            connection.received = True
            self._received.append(connection)

    def connection_lost(self, connection: FixConnection, now_ns: int) -> None:
        """The transport closed (peer, error, or dropped by the loop); ends the session at once."""
        if connection.closed:
            return
        connection.closed = True
        connection.session.connection_lost(now_ns)
        self._drain(connection, now_ns)
        self.connections.discard(connection)

    def closed(self, connection: FixConnection) -> None:
        """The loop closed the transport of a session that had ended (after writing its bytes)."""
        connection.closed = True
        self.connections.discard(connection)

    # ------------------------------------------------------------ batches

    def process(self, now_ns: int) -> int:
        """Run one batch (see the module docstring); returns the work done (0: idle)."""
        entry = self.entry
        entry.begin_batch()
        work = 0
        received = self._received
        if received:
            for connection in received:
                connection.received = False
                work += self._drain(connection, now_ns)
            received.clear()
        work += entry.flush()
        work += entry.poll()
        work += entry.answer_status_requests()
        if entry.dirty:
            self._deliver(now_ns)
        if self._logouts:
            self._logout_abusers(now_ns)
        stores = self._stores
        if stores and self._output:
            for connection in self._output:        # durable before any of the batch's bytes is written
                store = connection.session.store
                if store in stores:
                    stores.discard(store)
                    _sync(store)
        link = self.link
        if link.held:                              # the events' replies are durable: release them
            if stores:
                self.sync_stores()
            link.commit()
        return work

    def on_timer(self, now_ns: int) -> None:
        """Heartbeats, test requests and timeouts of every session (call every ~100 ms); then
        every store written since its last sync (input only, or for an offline session) is synced."""
        for connection in list(self.connections):
            if not connection.closed:
                connection.session.on_timer(now_ns)
                self._drain(connection, now_ns)
        self.sync_stores()

    def sync_stores(self) -> None:
        """Sync every store written since its last sync."""
        stores = self._stores
        for store in stores:
            _sync(store)
        stores.clear()

    def logout_all(self, now_ns: int, text: str) -> int:
        """Start the Logout handshake on every open connection (a clean stop).

        A logged-on session sends Logout and waits for the reply; a connection still
        logging on is disconnected.  Returns the connections asked to log out.
        """
        count = 0
        for connection in list(self.connections):
            if connection.closed or connection.closing:
                continue
            connection.session.logout(text, now_ns)
            self._drain(connection, now_ns)
            count += 1
        self.counters["shutdown_logouts"] += count
        return count

    def take_output(self) -> list[FixConnection]:
        """Connections with bytes to write or to close after this batch."""
        output = self._output
        if not output:
            return output
        self._output = []
        for connection in output:
            connection.queued = False
        return output

    def close(self) -> None:
        """Sync and close every store (after the loop has stopped)."""
        self.sync_stores()
        for store in self.directory.stores():
            close = getattr(store, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------ internals

    def _drain(self, connection: FixConnection, now_ns: int) -> int:
        session = connection.session
        entry = self.entry
        count = 0
        while (event := session.next_event()) is not None:
            count += 1
            kind = type(event)
            if kind is ApplicationMessage:
                try:
                    entry.on_message(connection.context, event.message, event.seq_num, now_ns)
                except Exception:  # noqa: BLE001 - one bad message must not stop every other session
                    self.counters["internal_errors"] += 1
                    log.exception("order entry failed on %r", event.message)
                    entry.business_reject(connection.context, event.seq_num, event.message.msg_type,
                                          "internal error")
            elif kind is SessionEstablished:
                context = entry.context(event.comp_id)
                context.connection = connection
                connection.context = context
                self.counters["logons"] += 1
            elif kind is Disconnect:
                self._on_disconnect(connection)
            elif kind is MessageRejected:
                self.counters["business_rejects" if event.business else "session_rejects"] += 1
            elif kind is RejectReceived:
                self.counters["rejects_received"] += 1
            elif kind is GarbledMessage:
                self.counters["garbled"] += 1
        context = connection.context
        if context is not None and context.logout_text is not None and connection not in self._logouts:
            self._logouts.append(connection)
        data = session.data_to_send()
        if data:
            self._write(connection, data)
        store = session.store
        if store is not None:
            self._stores.add(store)
        return count

    def _on_disconnect(self, connection: FixConnection) -> None:
        connection.closing = True
        self.counters["disconnects"] += 1
        context = connection.context
        if context is not None and context.connection is connection:
            context.connection = None
            self.entry.on_disconnect(context)
        if not connection.queued:
            connection.queued = True
            self._output.append(connection)

    def _deliver(self, now_ns: int) -> None:
        entry = self.entry
        for context in entry.dirty:
            outbox = context.outbox
            connection = context.connection
            if connection is not None and not connection.closed:
                session = connection.session
                data = [session.send(msg_type, body, now_ns) for msg_type, body in outbox]
                self._write(connection, b"".join(data))
                self._stores.add(session.store)
            else:
                store = self.directory.store(context.comp_id)
                sending_time = self._formatter.format(now_ns)
                for msg_type, body in outbox:
                    store.store_sent(store.next_sender_seq_num, msg_type, sending_time, body)
                self._stores.add(store)
            outbox.clear()
        entry.dirty.clear()

    def _logout_abusers(self, now_ns: int) -> None:
        """Logout for sessions the throttle found abusive, after this batch's replies."""
        for connection in self._logouts:
            context = connection.context
            if context is None or context.logout_text is None:
                continue
            session = connection.session
            session.logout(context.logout_text, now_ns)
            context.logout_text = None
            self.counters["throttle_logouts"] += 1
            self._write(connection, session.data_to_send())
            if session.store is not None:
                self._stores.add(session.store)
        self._logouts.clear()

    def _write(self, connection: FixConnection, data: bytes) -> None:
        if connection.closed or not data:
            return
        connection.output.append(data)
        if not connection.queued:
            connection.queued = True
            self._output.append(connection)


def _sync(store) -> None:
    sync = getattr(store, "sync", None)            # MessageStore has no sync; FileStore does
    if sync is not None:
        sync()
