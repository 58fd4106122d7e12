"""Load clients of ``numbex bench fix``: raw-socket FIX sessions with pre-encoded orders.

The clients do as little as possible per message so that the figures are the
server's: orders are encoded ahead of the timed region with ``FixEncoder``, and
replies are not decoded but counted with ``bytes.count`` on
``<SOH>150=0<SOH>`` (acknowledged) and ``<SOH>150=4<SOH>`` (the IOC remainder
cancelled: the order is done).  Every order is an IOC buy below the market, so
the book never grows: one acknowledgement and one cancel per order.
"""

from __future__ import annotations

import selectors
import socket
import time

from numbex.protocol.fix import FixEncoder
from numbex.protocol.fix.timestamps import UtcTimestampFormatter

ACK = b"\x01150=0\x01"
DONE = b"\x01150=4\x01"
REJECTED = b"\x01150=8\x01"
FATAL = (b"\x0135=3\x01", b"\x0135=5\x01", b"\x0135=j\x01")
TAIL = len(ACK) - 1
ORDER_BODY = (b"11=%s\x0121=1\x0155=TEST\x0154=1\x0160=%s\x0138=1\x0140=2\x0144=90.00\x0159=3\x01")

ECHO_SERVER = """
import socket, sys
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
listener.settimeout(60)
connection, _ = listener.accept()
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
while True:
    data = connection.recv(65536)
    if not data:
        break
    connection.sendall(data)
"""


class BenchError(RuntimeError):
    """The server refused or broke the benchmark session."""


class FixLoadSession:
    """One logged-on FIX session over a raw socket (HeartBtInt 0: no heartbeats)."""

    def __init__(self, port: int, comp_id: str, phase: str, timeout: float = 10.0) -> None:
        self.comp_id = comp_id
        self.prefix = f"{comp_id}-{phase}-".encode()     # ClOrdIDs unique across phases
        self.encoder = FixEncoder(comp_id, "NUMBEX")
        self.formatter = UtcTimestampFormatter()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.seq_num = 1
        self.orders = 0
        self.tail = b""
        self.acks = 0
        self.done = 0
        self.rejected = 0
        self.logon(timeout)

    def message(self, msg_type: bytes, body: bytes) -> bytes:
        data = self.encoder.encode(msg_type, self.seq_num, self.formatter.format(time.time_ns()), body)
        self.seq_num += 1
        return data

    def logon(self, timeout: float) -> None:
        self.sock.sendall(self.message(b"A", b"98=0\x01108=0\x01141=Y\x01"))
        deadline = time.monotonic() + timeout
        received = b""
        while b"\x0135=A\x01" not in received:
            if time.monotonic() > deadline:
                raise BenchError(f"{self.comp_id}: no Logon reply")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError(f"{self.comp_id}: logon refused: {received[-200:]!r}")
            received += chunk

    def orders_bytes(self, count: int) -> bytes:
        """``count`` NewOrderSingles, encoded now (SendingTime stays valid for 120 s)."""
        stamp = self.formatter.format(time.time_ns())
        parts = []
        for _ in range(count):
            self.orders += 1
            body = ORDER_BODY % (b"%s%d" % (self.prefix, self.orders), stamp)
            parts.append(self.encoder.encode(b"D", self.seq_num, stamp, body))
            self.seq_num += 1
        return b"".join(parts)

    def count(self, data: bytes) -> None:
        """Count acknowledgements and completions in received bytes (patterns may straddle reads)."""
        window = self.tail + data
        self.acks += window.count(ACK)
        self.done += window.count(DONE)
        if REJECTED in window:
            rejected = window.count(REJECTED)
            self.rejected += rejected
            self.done += rejected
        for marker in FATAL:
            if marker in window:
                raise BenchError(f"{self.comp_id}: the server sent {marker!r}: {window[-300:]!r}")
        self.tail = window[-TAIL:]

    def close(self) -> None:
        try:
            self.sock.sendall(self.message(b"5", b""))
        except OSError:
            pass
        self.sock.close()


def order_round_trips(port: int, count: int, warmup: int, max_seconds: float) -> list[int]:
    """Nanoseconds from sending one order to receiving its acknowledgement, one in flight."""
    session = FixLoadSession(port, "BENCH0", "latency")
    samples: list[int] = []
    deadline = time.monotonic() + max_seconds
    sock = session.sock
    try:
        for index in range(warmup + count):
            data = session.orders_bytes(1)
            acks, done = session.acks, session.done
            started = time.perf_counter_ns()
            sock.sendall(data)
            acknowledged = 0
            while session.done == done:
                chunk = sock.recv(65536)
                if not chunk:
                    raise BenchError("the gateway closed the connection")
                if not acknowledged:
                    now = time.perf_counter_ns()
                session.count(chunk)
                if not acknowledged and session.acks > acks:
                    acknowledged = now - started
            if index >= warmup:
                samples.append(acknowledged)
            if time.monotonic() > deadline:
                break
        if session.rejected:
            raise BenchError(f"{session.rejected} orders rejected")
    finally:
        session.close()
    return samples


def echo_round_trips(count: int, warmup: int, size: int, max_seconds: float) -> list[int]:
    """Nanoseconds per round trip of ``size`` bytes through a Python TCP echo server process."""
    import subprocess
    import sys

    server = subprocess.Popen([sys.executable, "-c", ECHO_SERVER], stdout=subprocess.PIPE, text=True)
    samples: list[int] = []
    try:
        port = int(server.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            payload = b"x" * size
            deadline = time.monotonic() + max_seconds
            for index in range(warmup + count):
                started = time.perf_counter_ns()
                sock.sendall(payload)
                received = 0
                while received < size:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise BenchError("echo server closed")
                    received += len(chunk)
                if index >= warmup:
                    samples.append(time.perf_counter_ns() - started)
                if time.monotonic() > deadline:
                    break
    finally:
        server.terminate()
        try:
            server.wait(5)
        except Exception:  # noqa: BLE001 - make sure it is gone
            server.kill()
            server.wait()
    return samples


def pipelined_throughput(port: int, sessions: int, window: int, seconds: float, drain_seconds: float = 10.0) -> dict:
    """Acknowledged orders per second with ``window`` orders in flight on each of ``sessions``."""
    clients = [FixLoadSession(port, f"BENCH{index}", "throughput") for index in range(sessions)]
    selector = selectors.DefaultSelector()
    pending: dict[FixLoadSession, bytes] = {}
    try:
        for client in clients:
            client.sock.setblocking(False)
            selector.register(client.sock, selectors.EVENT_READ, client)
        sent = {client: 0 for client in clients}
        started = time.perf_counter()
        stop_sending = started + seconds
        acks_at_stop = None
        while True:
            now = time.perf_counter()
            sending = now < stop_sending
            if not sending and acks_at_stop is None:
                acks_at_stop = sum(client.acks for client in clients)
                elapsed = now - started
            for client in clients:
                data = pending.pop(client, b"")
                in_flight = sent[client] - client.done
                if sending and not data and in_flight <= window // 2:
                    batch = window - in_flight
                    data = client.orders_bytes(batch)
                    sent[client] += batch
                if data:
                    try:
                        written = client.sock.send(data)
                    except BlockingIOError:
                        written = 0
                    if written < len(data):
                        pending[client] = data[written:]
            for key, _ in selector.select(timeout=0.001):
                client = key.data
                try:
                    chunk = client.sock.recv(1 << 18)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise BenchError(f"{client.comp_id}: the gateway closed the connection")
                client.count(chunk)
            if not sending:
                if all(client.done >= sent[client] for client in clients) and not pending:
                    break
                if time.perf_counter() > stop_sending + drain_seconds:
                    raise BenchError("orders still unanswered after the drain period: " + ", ".join(
                        f"{c.comp_id} sent {sent[c]} done {c.done}" for c in clients))
        total_sent = sum(sent.values())
        rejected = sum(client.rejected for client in clients)
        if rejected:
            raise BenchError(f"{rejected} orders rejected")
        return {"sessions": sessions, "window": window, "seconds": round(elapsed, 3), "orders": acks_at_stop,
                "orders_sent": total_sent, "orders_per_second": round(acks_at_stop / elapsed)}
    finally:
        selector.close()
        for client in clients:
            client.sock.setblocking(True)
            client.close()
