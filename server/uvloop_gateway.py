"""The gateway on a uvloop event loop, for shared cores.

Each connection is an ``asyncio.Protocol``; ``data_received`` only hands bytes to
the core and schedules one batch with ``loop.call_soon``, so every read of one
loop iteration lands in the same batch: one ``link.submit``, one link poll,
one store sync, then one ``transport.write`` per connection.  Engine events:
with a link descriptor, ``loop.add_reader`` wakes the loop (after
``link.prepare_park()``); without one the link is polled every 0.5 ms while
requests are in flight and every 50 ms otherwise.  A transport whose write
buffer passes ``gateway.outbound_buffer_bytes`` is aborted (slow consumer).
"""

from __future__ import annotations

import asyncio
import socket
import time

from numbex.server.fix_connection import FixConnection
from numbex.server.fix_gateway import SHUTDOWN_TEXT, FixGatewayCore

TIMER_SECONDS = 0.1
BUSY_POLL_SECONDS = 0.0005
IDLE_POLL_SECONDS = 0.05


class _FixProtocol(asyncio.Protocol):
    __slots__ = ("gateway", "connection")

    def __init__(self, gateway: UvloopGateway) -> None:
        self.gateway = gateway
        self.connection: FixConnection | None = None

    def connection_made(self, transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        peer = transport.get_extra_info("peername")
        gateway = self.gateway
        self.connection = gateway.core.open_connection(transport, gateway.clock(),
                                                       peer=f"{peer[0]}:{peer[1]}" if peer else "")

    def data_received(self, data: bytes) -> None:
        gateway = self.gateway
        gateway.core.data_received(self.connection, data, gateway.clock())
        gateway.schedule()

    def eof_received(self) -> bool:
        return False                                   # close the transport

    def connection_lost(self, error) -> None:
        connection = self.connection
        if connection is not None and not connection.closed:
            self.gateway.core.connection_lost(connection, self.gateway.clock())
            self.gateway.schedule()


class UvloopGateway:
    """FIX gateway on a uvloop (or asyncio) event loop.

    Parameters
    ----------
    core : FixGatewayCore
    listener : socket.socket
        Bound and listening.
    outbound_buffer_bytes : int
    stop : object with ``is_set()``
        Checked every 100 ms; :meth:`run` returns once it is set.
    clock : callable
    use_uvloop : bool
        False runs on the standard asyncio loop (for comparison).
    shutdown_logout_ms : int
        At a clean stop, how long to wait for the clients' Logout replies (0: close at once).
    """

    role_name = "gateway"

    def __init__(self, core: FixGatewayCore, listener: socket.socket, *, outbound_buffer_bytes: int, stop,
                 clock=time.time_ns, use_uvloop: bool = True, shutdown_logout_ms: int = 0) -> None:
        self.core = core
        self.shutdown_logout_seconds = shutdown_logout_ms / 1000
        self.link = core.link
        self.listener = listener
        self.outbound_buffer_bytes = outbound_buffer_bytes
        self.stop = stop
        self.clock = clock
        self.use_uvloop = use_uvloop
        self.loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._parked = False
        self._poll_handle = None
        self.counters = core.counters

    def run(self, max_seconds: float | None = None) -> None:
        """Serve until ``stop`` is set (or ``max_seconds`` pass), then close every connection."""
        if self.use_uvloop:
            import uvloop

            loop = uvloop.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            loop.run_until_complete(self._serve(max_seconds))
        finally:
            loop.close()
            self.loop = None

    def wake(self) -> None:
        """Make a loop blocked in another thread look at ``stop`` now."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: None)
            except RuntimeError:
                pass

    def schedule(self) -> None:
        """Run a batch at the end of this loop iteration (once, however many reads came)."""
        if not self._scheduled:
            self._scheduled = True
            self.loop.call_soon(self._batch)

    # ------------------------------------------------------------ internals

    async def _serve(self, max_seconds: float | None) -> None:
        loop = self.loop
        self.listener.setblocking(False)
        server = await loop.create_server(lambda: _FixProtocol(self), sock=self.listener, backlog=1024)
        link_fd = self.link.fileno()
        if link_fd is not None:
            loop.add_reader(link_fd, self._on_link_readable)
        self._poll_handle = loop.call_later(IDLE_POLL_SECONDS, self._periodic_poll)
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                await asyncio.sleep(TIMER_SECONDS)
                self.core.on_timer(self.clock())
                self.schedule()
        finally:
            server.close()
            await self._logout_all()
            if link_fd is not None:
                loop.remove_reader(link_fd)
            self._poll_handle.cancel()
            now = self.clock()
            for connection in list(self.core.connections):
                connection.handle.abort()
                self.core.connection_lost(connection, now)
            self._batch()
            await asyncio.sleep(0)

    async def _logout_all(self) -> None:
        """Logout to every session; keep serving until they are answered or the grace ends."""
        if not self.shutdown_logout_seconds or not self.core.connections:
            return
        if not self.core.logout_all(self.clock(), SHUTDOWN_TEXT):
            return
        self.schedule()
        deadline = time.monotonic() + self.shutdown_logout_seconds
        while self.core.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.005)

    def _on_link_readable(self) -> None:
        if self._parked:
            self._parked = False
            self.link.unpark()
        self.schedule()

    def _periodic_poll(self) -> None:
        busy = self.core.entry.pending_requests > 0
        self._poll_handle = self.loop.call_later(BUSY_POLL_SECONDS if busy else IDLE_POLL_SECONDS,
                                                 self._periodic_poll)
        self.schedule()

    def _batch(self) -> None:
        self._scheduled = False
        if self._parked:
            self._parked = False
            self.link.unpark()
        now = self.clock()
        self.core.process(now)
        limit = self.outbound_buffer_bytes
        for connection in self.core.take_output():
            data = connection.take_output()
            if connection.closed:
                continue
            transport = connection.handle
            if data:
                transport.write(data)
                connection.bytes_out += len(data)
                if transport.get_write_buffer_size() > limit:
                    self.counters["slow_consumer_disconnects"] += 1
                    transport.abort()
                    self.core.connection_lost(connection, now)
                    continue
            if connection.closing:
                transport.close()
                self.core.closed(connection)
        if self.link.fileno() is not None:
            if self.link.prepare_park():
                self._parked = True
            else:
                self.schedule()
