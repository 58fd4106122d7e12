"""The gateway's busy-polling socket loop, for dedicated cores.

:class:`PollGateway` is an agent (``do_work() -> int``) run by an
``AgentRunner`` under the configured idle strategy.  One duty cycle:

1. ``epoll.poll(0)`` (no wait) over the listening socket, every connection and
   the link's descriptor, or the readiness a park already collected;
2. accept new connections (non-blocking, ``TCP_NODELAY``); one ``recv_into``
   a preallocated buffer per readable socket;
3. one gateway batch (:meth:`FixGatewayCore.process`: decode, one
   ``link.submit``, link poll, replies, store sync);
4. one ``send`` per connection with output.  What the kernel does not take
   waits in the connection's backlog (``EPOLLOUT`` is watched until it drains);
   a backlog above ``gateway.outbound_buffer_bytes`` disconnects the client.

The idle strategy parks through :meth:`park`: ``link.prepare_park()``, then
``epoll.poll(timeout)`` on every socket plus the link's descriptor, then
``link.unpark()``, so a parked gateway wakes on client bytes and on engine events
alike.  Session timers run every 100 ms.

A clean stop (:meth:`on_close`) stops accepting, sends every session a Logout
and keeps the loop running, at most ``shutdown_logout_ms``, until the clients
have answered (or gone); then what is left is closed.
"""

from __future__ import annotations

import select
import socket
import time

from numbex.server.fix_connection import FixConnection
from numbex.server.fix_gateway import SHUTDOWN_TEXT, FixGatewayCore

READ_EVENTS = select.EPOLLIN | select.EPOLLRDHUP
WRITE_EVENTS = READ_EVENTS | select.EPOLLOUT
CLOSE_EVENTS = select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP
TIMER_NS = 100_000_000
ACCEPTS_PER_CYCLE = 64


class PollGateway:
    """Busy-polling FIX gateway loop over non-blocking sockets.

    Parameters
    ----------
    core : FixGatewayCore
    listener : socket.socket
        Bound and listening; made non-blocking here.
    outbound_buffer_bytes : int
        Largest backlog of unsent bytes per connection before it is dropped.
    clock : callable
        Wall clock in ns (FIX timestamps and session timers).
    read_buffer_bytes : int
        Size of the one preallocated receive buffer.
    shutdown_logout_ms : int
        At a clean stop, how long to wait for the clients' Logout replies (0: close at once).
    """

    role_name = "gateway"

    def __init__(self, core: FixGatewayCore, listener: socket.socket, *, outbound_buffer_bytes: int,
                 clock=time.time_ns, read_buffer_bytes: int = 1 << 16, shutdown_logout_ms: int = 0) -> None:
        self.core = core
        self.shutdown_logout_ns = shutdown_logout_ms * 1_000_000
        self.link = core.link
        self.listener = listener
        self.outbound_buffer_bytes = outbound_buffer_bytes
        self._clock = clock
        self._buffer = bytearray(read_buffer_bytes)
        self._view = memoryview(self._buffer)
        self._epoll = select.epoll()
        listener.setblocking(False)
        self._listener_fd = listener.fileno()
        self._epoll.register(self._listener_fd, select.EPOLLIN)
        link_fd = self.link.fileno()
        self._link_fd = -1 if link_fd is None else link_fd
        if link_fd is not None:
            self._epoll.register(link_fd, select.EPOLLIN)
        self._by_fd: dict[int, FixConnection] = {}
        self._ready: list[tuple[int, int]] | None = None
        self._next_timer = 0
        self.counters = core.counters

    # ------------------------------------------------------------ agent

    def on_start(self) -> None:
        self._next_timer = time.monotonic_ns() + TIMER_NS

    def do_work(self) -> int:
        now = self._clock()
        work = 0
        ready = self._ready
        if ready is None:
            ready = self._epoll.poll(0)
        else:
            self._ready = None
        for fd, mask in ready:
            if fd == self._listener_fd:
                work += self._accept(now)
            elif fd == self._link_fd:
                work += 1
            else:
                connection = self._by_fd.get(fd)
                if connection is None:
                    continue
                if mask & select.EPOLLOUT and connection.backlog:
                    self._send_backlog(connection, now)
                if mask & (select.EPOLLIN | CLOSE_EVENTS):
                    work += self._read(connection, now)
        monotonic = time.monotonic_ns()
        if monotonic >= self._next_timer:
            self._next_timer = monotonic + TIMER_NS
            self.core.on_timer(now)
        work += self.core.process(now)
        self._write(now)
        return work

    def on_close(self) -> None:
        self._logout_all()
        now = self._clock()
        for fd, connection in list(self._by_fd.items()):
            self._close(fd, connection)
            self.core.connection_lost(connection, now)
        self.core.process(now)
        self._epoll.close()

    def _logout_all(self) -> None:
        """Stop accepting; Logout to every session; run until they are answered or the grace ends."""
        try:
            self._epoll.unregister(self._listener_fd)
        except (OSError, ValueError):
            pass
        self.listener.close()                      # new connections are refused, not left waiting
        if not self.shutdown_logout_ns or not self._by_fd:
            return
        if not self.core.logout_all(self._clock(), SHUTDOWN_TEXT):
            return
        deadline = time.monotonic_ns() + self.shutdown_logout_ns
        while self._by_fd and time.monotonic_ns() < deadline:
            if not self.do_work():
                self._ready = self._epoll.poll(0.005)

    def park(self, timeout_ns: int) -> int:
        """Sleep in epoll (sockets and the link's descriptor) for at most ``timeout_ns``."""
        if not self.link.prepare_park():
            return 0
        try:
            ready = self._epoll.poll(max(timeout_ns, 1_000_000) / 1e9)
        finally:
            self.link.unpark()
        self._ready = ready
        return len(ready)

    @property
    def connection_count(self) -> int:
        return len(self._by_fd)

    # ------------------------------------------------------------ sockets

    def _accept(self, now: int) -> int:
        accepted = 0
        for _ in range(ACCEPTS_PER_CYCLE):
            try:
                sock, address = self.listener.accept()
            except BlockingIOError:
                break
            except OSError:                  # out of descriptors, aborted handshakes: try later
                self.counters["accept_errors"] += 1
                break
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            fd = sock.fileno()
            connection = self.core.open_connection(sock, now, peer=f"{address[0]}:{address[1]}")
            self._by_fd[fd] = connection
            self._epoll.register(fd, READ_EVENTS)
            accepted += 1
        return accepted

    def _read(self, connection: FixConnection, now: int) -> int:
        try:
            count = connection.handle.recv_into(self._buffer)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            count = 0
        if count == 0:
            self._drop(connection, now)
            return 1
        self.core.data_received(connection, self._view[:count], now)
        return 1

    def _write(self, now: int) -> None:
        for connection in self.core.take_output():
            data = connection.take_output()
            if connection.closed:
                continue
            if data:
                if connection.backlog:
                    connection.backlog += data
                    self._send_backlog(connection, now)
                else:
                    self._send(connection, data, now)
            if connection.closed:
                continue
            if len(connection.backlog) > self.outbound_buffer_bytes:
                self.counters["slow_consumer_disconnects"] += 1
                self._drop(connection, now)
            elif connection.closing:
                fd = connection.handle.fileno()
                self._close(fd, connection)
                self.core.closed(connection)

    def _send(self, connection: FixConnection, data: bytes, now: int) -> None:
        try:
            sent = connection.handle.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(connection, now)
            return
        connection.bytes_out += sent
        if sent < len(data):
            connection.backlog += data[sent:]
            self._epoll.modify(connection.handle.fileno(), WRITE_EVENTS)

    def _send_backlog(self, connection: FixConnection, now: int) -> None:
        backlog = connection.backlog
        try:
            sent = connection.handle.send(backlog)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(connection, now)
            return
        connection.bytes_out += sent
        del backlog[:sent]
        if not backlog:
            self._epoll.modify(connection.handle.fileno(), READ_EVENTS)
        else:
            self._epoll.modify(connection.handle.fileno(), WRITE_EVENTS)

    def _drop(self, connection: FixConnection, now: int) -> None:
        """The connection is gone (peer closed, error, slow consumer): close it, end its session."""
        if connection.closed:
            return
        self._close(connection.handle.fileno(), connection)
        self.core.connection_lost(connection, now)

    def _close(self, fd: int, connection: FixConnection) -> None:
        if self._by_fd.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass
        try:
            connection.handle.close()
        except OSError:
            pass
