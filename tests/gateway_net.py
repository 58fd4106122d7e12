"""Network helpers for gateway tests: a live gateway on 127.0.0.1 in a thread, and a
blocking FIX client over a real socket.

Import with ``sys.path.insert(0, str(Path(__file__).resolve().parents[1]))``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from gateway_harness import load_config  # noqa: F401  (re-exported for tests)

from numbex.engine.spec import EngineSpec
from numbex.protocol.fix import (
    ApplicationMessage, Disconnect, FixSession, MemoryStore, MessageRejected, RejectReceived, SessionSettings,
)
from numbex.server.engine_link import LocalLink
from numbex.server.gateway import build_gateway, listen


@contextlib.contextmanager
def running_gateway(config, data_dir, mode: str = "poll", idle: str = "backoff", link=None, **options):
    """A gateway serving on 127.0.0.1 (ephemeral port) in a thread; stopped and joined on exit."""
    link = link if link is not None else LocalLink(EngineSpec.from_config(config))
    runner = build_gateway(config, link, data_dir=data_dir, listener=listen("127.0.0.1", 0), mode=mode, idle=idle,
                           **options)
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            runner.run(max_seconds=300)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            failure.append(error)

    thread = threading.Thread(target=serve, name=f"gateway-{mode}", daemon=True)
    thread.start()
    try:
        yield runner
    finally:
        runner.stop()
        thread.join(30)
        runner.close()
        link.close()
        assert not thread.is_alive(), "gateway thread did not stop"
        if failure:
            raise failure[0]


class SocketClient:
    """A FIX 4.4 initiator (numbex's sans-IO session) over a blocking socket to 127.0.0.1."""

    def __init__(self, port: int, comp_id: str, *, password: str = "", heartbeat: int = 30,
                 store: MemoryStore | None = None, reset: bool = False) -> None:
        self.comp_id = comp_id
        self.store = store if store is not None else MemoryStore()
        settings = SessionSettings(comp_id, initiator=True, target_comp_id="NUMBEX", heartbeat_seconds=heartbeat,
                                   password=password, reset_on_logon=reset)
        self.session = FixSession(settings, time.time_ns(), store=self.store)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.messages: list = []
        self.events: list = []
        self.disconnected = False

    def logon(self, timeout: float = 10.0) -> None:
        self.session.logon(time.time_ns())
        self.flush()
        self.wait(lambda: self.session.state.name == "ACTIVE" or self.disconnected, timeout)
        assert self.session.state.name == "ACTIVE", self.events

    def send(self, msg_type: bytes, body: bytes) -> None:
        self.sock.sendall(self.session.send(msg_type, body, time.time_ns()))

    def flush(self) -> None:
        data = self.session.data_to_send()
        if data and not self.disconnected:
            self.sock.sendall(data)

    def pump(self, timeout: float = 0.05) -> bool:
        """Read what arrives within ``timeout``; False once the peer closed."""
        if self.disconnected:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except (socket.timeout, BlockingIOError):
            return True
        except OSError:
            data = b""
        now = time.time_ns()
        if not data:
            self.disconnected = True
            self.session.connection_lost(now)
        else:
            self.session.receive_data(data, now)
        while (event := self.session.next_event()) is not None:
            self.events.append(event)
            if isinstance(event, ApplicationMessage):
                self.messages.append(event.message)
            elif isinstance(event, Disconnect):
                self.disconnected = True
        self.session.on_timer(now)
        self.flush()
        return not self.disconnected

    def wait(self, condition, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; {len(self.messages)} messages, events {self.events[-3:]}")
            if not self.pump() and not condition():
                raise AssertionError(f"disconnected; events {self.events[-3:]}")

    def expect(self, count: int, timeout: float = 10.0) -> list:
        """Wait for ``count`` more application messages and return them."""
        self.wait(lambda: len(self.messages) >= count, timeout)
        messages, self.messages = self.messages[:count], self.messages[count:]
        return messages

    def rejects(self) -> list:
        return [e for e in self.events if isinstance(e, (MessageRejected, RejectReceived))]

    def logout(self, timeout: float = 5.0) -> None:
        self.session.logout("bye", time.time_ns())
        self.flush()
        deadline = time.monotonic() + timeout
        while not self.disconnected and time.monotonic() < deadline:
            self.pump()

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def logged_on(port: int, *comp_ids: str):
    """``SocketClient``s for ``comp_ids``, logged on; closed on exit."""
    clients = []
    try:
        for comp_id in comp_ids:
            clients.append(SocketClient(port, comp_id))
            clients[-1].logon()
        yield clients
    finally:
        for client in clients:
            client.close()
