"""Gateway scale and back-pressure: 1,000 concurrent FIX sessions on raw TCP connections,
and a client that stops reading (bounded outbound buffer, then disconnected)."""

from __future__ import annotations

import resource
import selectors
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import CONFIG_TEXT, fields, load_config, order_body  # noqa: E402
from gateway_net import SocketClient, running_gateway  # noqa: E402

from numbex.protocol.fix import FixDecoder, FixEncoder, FixMessage  # noqa: E402
from numbex.protocol.fix.timestamps import UtcTimestampFormatter  # noqa: E402

SESSIONS = 1000


def many_sessions_config(count: int):
    sessions = "".join(f'[[sessions]]\ncomp_id = "S{index:04d}"\naccount = "ACC{1 + index % 3}"\n'
                       for index in range(count))
    return load_config(CONFIG_TEXT, sessions)


def raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below the {needed} descriptors needed")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


class RawSession:
    """One raw TCP FIX connection driven by the test's selector loop."""

    def __init__(self, port: int, comp_id: str) -> None:
        self.comp_id = comp_id
        self.encoder = FixEncoder(comp_id, "NUMBEX")
        self.decoder = FixDecoder()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setblocking(False)
        self.seq_num = 1
        self.messages: list[FixMessage] = []

    def message(self, msg_type: bytes, body: bytes, formatter: UtcTimestampFormatter) -> bytes:
        data = self.encoder.encode(msg_type, self.seq_num, formatter.format(time.time_ns()), body)
        self.seq_num += 1
        return data

    def read(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except BlockingIOError:
            return
        assert data, f"{self.comp_id}: the gateway closed the connection"
        self.decoder.receive_data(data)
        while (item := self.decoder.next_message()) is not None:
            assert isinstance(item, FixMessage), item
            self.messages.append(item)


def wait_all(selector, sessions, condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    pending = [session for session in sessions if not condition(session)]
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} sessions still waiting, e.g. {pending[0].comp_id}"
        for key, _ in selector.select(timeout=0.1):
            key.data.read()
        pending = [session for session in pending if not condition(session)]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["poll", "uvloop"])
def test_a_thousand_concurrent_sessions(tmp_path, mode):
    raise_file_limit(6 * SESSIONS + 200)       # client + server sockets, store and lock files
    config = many_sessions_config(SESSIONS)
    formatter = UtcTimestampFormatter()
    with running_gateway(config, tmp_path, mode=mode) as gateway:
        sessions: list[RawSession] = []
        selector = selectors.DefaultSelector()
        try:
            for index in range(SESSIONS):
                session = RawSession(gateway.port, f"S{index:04d}")
                sessions.append(session)
                selector.register(session.sock, selectors.EVENT_READ, session)
                session.sock.sendall(session.message(b"A", b"98=0\x01108=30\x01", formatter))
            wait_all(selector, sessions, lambda s: any(m.msg_type == b"A" for m in s.messages), 120)
            assert sum(1 for c in gateway.core.connections if c.context is not None) == SESSIONS
            # Every session trades: even sessions sell, odd ones buy, at one price.
            for index, session in enumerate(sessions):
                side = "2" if index % 2 == 0 else "1"
                session.sock.sendall(session.message(b"D", order_body(f"O{index}", side=side, qty="1",
                                                                      price="100.00", tif="1"), formatter))
            wait_all(selector, sessions, lambda s: any(m.get(150) == b"F" for m in s.messages), 120)
            for session in sessions:
                assert [m.msg_type for m in session.messages if m.msg_type in (b"3", b"j", b"5")] == []
        finally:
            for session in sessions:
                session.sock.close()
            selector.close()
        deadline = time.monotonic() + 30
        while gateway.core.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not gateway.core.connections
        assert gateway.core.counters["logons"] == SESSIONS


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["poll", "uvloop"])
def test_a_client_that_stops_reading_is_disconnected(tmp_path, mode):
    config = load_config(CONFIG_TEXT.replace("[exchange]", "[gateway]\noutbound_buffer_bytes = 262144\n[exchange]"))
    formatter = UtcTimestampFormatter()
    assert config.gateway.outbound_buffer_bytes == 262144
    with running_gateway(config, tmp_path, mode=mode) as gateway:
        healthy = SocketClient(gateway.port, "CLIENT2")
        slow = SocketClient(gateway.port, "CLIENT1")
        try:
            healthy.logon()
            slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.logon()
            # Each TestRequest makes the gateway send a Heartbeat echoing a 60 kB TestReqID.
            request_id = b"X" * 60_000
            encoder = FixEncoder("CLIENT1", "NUMBEX")
            seq_num = slow.session.next_sender_seq_num
            sent = 0
            deadline = time.monotonic() + 60
            slow.sock.settimeout(5)
            while gateway.core.counters["slow_consumer_disconnects"] == 0:
                assert time.monotonic() < deadline, "the slow reader was never disconnected"
                assert sent < 2000, "500 MB sent and still connected"
                try:
                    slow.sock.sendall(encoder.encode(b"1", seq_num, formatter.format(time.time_ns()),
                                                     b"112=%s\x01" % request_id))
                except OSError:
                    break
                seq_num += 1
                sent += 1
                # Meanwhile the healthy session keeps trading without delay.
                if sent % 20 == 0:
                    started = time.monotonic()
                    healthy.send(b"D", order_body(f"H{sent}", qty="1", price="99.00"))
                    assert fields(healthy.expect(1)[0], 150) == ("0",)
                    assert time.monotonic() - started < 2.0
            wait_deadline = time.monotonic() + 10
            while gateway.core.counters["slow_consumer_disconnects"] == 0 and time.monotonic() < wait_deadline:
                time.sleep(0.05)
            assert gateway.core.counters["slow_consumer_disconnects"] == 1
            assert gateway.core.counters["session_rejects"] == 0       # the TestRequests were valid
            assert sent * len(request_id) > config.gateway.outbound_buffer_bytes, sent
            healthy.send(b"D", order_body("AFTER", qty="1", price="99.00"))
            assert fields(healthy.expect(1)[0], 11, 150) == ("AFTER", "0")
            assert healthy.rejects() == []
        finally:
            healthy.close()
            slow.close()
