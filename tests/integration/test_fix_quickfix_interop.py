"""numbex's FIX session against QuickFIX, an independent engine, on 127.0.0.1.

A QuickFIX initiator with data-dictionary validation logs on, trades,
heartbeats, recovers from a gap in each direction and from a numbex restart,
with zero session-level rejects on either side.  The exchange end is a small
socket loop around ``FixSession`` and ``FileStore`` (the real gateway adds
order handling on top of the same API).  Also: QuickFIX's DataDictionary
validates every message numbex writes in the in-memory session tests' paths.
"""

from __future__ import annotations

import selectors
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

fix = pytest.importorskip("quickfix")
fix44 = pytest.importorskip("quickfix44")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fix_helpers import Acceptor, ConnectionPair, execution_report_body, new_order_body  # noqa: E402
from quickfix_support import AdminLog, fix44_xml  # noqa: E402
from numbex.protocol.fix import (  # noqa: E402
    ApplicationMessage, Disconnect, FixSession, MessageRejected, MessageValidator,
    RejectReceived, SessionDirectory, SessionSettings,
)
from numbex.server.fix_store import FileStore  # noqa: E402

pytestmark = pytest.mark.interop
CLIENT = "QFCLIENT"


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


class MiniExchange(threading.Thread):
    """Accepts FIX connections and answers each NewOrderSingle with two ExecutionReports."""

    def __init__(self, store_directory: Path, port: int = 0) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.directory = SessionDirectory({CLIENT: ""}, lambda comp_id: FileStore.open(store_directory, comp_id))
        self.validator = MessageValidator()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.sessions: dict[socket.socket, FixSession] = {}
        self.rejects: list = []
        self.orders: list[bytes] = []
        self.last_session: FixSession | None = None
        self.stopping = threading.Event()
        self.executions = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            for key, _ in self.selector.select(timeout=0.02):
                if key.fileobj is self.listener:
                    connection, _ = self.listener.accept()
                    connection.setblocking(False)
                    self.selector.register(connection, selectors.EVENT_READ)
                    self.sessions[connection] = self.last_session = FixSession(
                        SessionSettings("NUMBEX"), time.time_ns(), authority=self.directory,
                        validator=self.validator)
                else:
                    self.on_readable(key.fileobj)
            now = time.time_ns()
            for connection, session in list(self.sessions.items()):
                session.on_timer(now)
                self.service(connection, session)

    def on_readable(self, connection: socket.socket) -> None:
        session = self.sessions[connection]
        try:
            data = connection.recv(65536)
        except OSError:
            data = b""
        if data:
            session.receive_data(data, time.time_ns())
        else:
            session.connection_lost(time.time_ns())
        self.service(connection, session)

    def service(self, connection: socket.socket, session: FixSession) -> None:
        closing = False
        while (event := session.next_event()) is not None:
            if isinstance(event, (MessageRejected, RejectReceived)):
                self.rejects.append(event)
            elif isinstance(event, ApplicationMessage) and event.message.msg_type == b"D":
                cl_ord_id = event.message.get(11)
                self.orders.append(cl_ord_id)
                for exec_type, status in ((b"0", b"0"), (b"F", b"2")):    # New, then Trade (filled)
                    self.executions += 1
                    filled = status == b"2"
                    body = (b"37=%d\x0111=%s\x0117=X%d\x01150=%s\x0139=%s\x0155=TEST\x0154=1\x0138=100\x01"
                            b"151=%s\x0114=%s\x016=%s\x01" % (
                                len(self.orders), cl_ord_id, self.executions, exec_type, status,
                                b"0" if filled else b"100", b"100" if filled else b"0",
                                b"10.5" if filled else b"0"))
                    session.store.sync()
                    connection.sendall(session.send(b"8", body, time.time_ns()))
            elif isinstance(event, Disconnect):
                closing = True
        data = session.data_to_send()
        if data:
            if session.store is not None:
                session.store.sync()
            try:
                connection.sendall(data)
            except OSError:
                closing = True
        if closing:
            self.selector.unregister(connection)
            connection.close()
            del self.sessions[connection]

    def stop(self) -> None:
        self.stopping.set()
        self.join(10)
        for connection in list(self.sessions):
            connection.close()
        self.selector.close()
        self.listener.close()

    def close_stores(self) -> None:
        for store in self.directory.stores():
            store.close()


class Recorder(AdminLog, fix.Application):
    """QuickFIX application that records what crosses the session."""

    def __init__(self) -> None:
        super().__init__()
        self.session_id = None
        self.logons = 0
        self.executions: list[tuple[str, bool]] = []

    def onCreate(self, session_id):
        self.session_id = session_id

    def onLogon(self, session_id):
        self.logons += 1

    def fromApp(self, message, session_id):
        header = message.getHeader()
        possible_duplicate = header.isSetField(43) and header.getField(43) == "Y"
        self.executions.append((message.getField(17), possible_duplicate))


def quickfix_settings(tmp_path: Path, port: int) -> fix.SessionSettings:
    text = f"""[DEFAULT]
ConnectionType=initiator
ReconnectInterval=1
FileStorePath={tmp_path / 'qf-store'}
FileLogPath={tmp_path / 'qf-log'}
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=Y
DataDictionary={fix44_xml(tmp_path)}
ValidateUserDefinedFields=Y
ValidateFieldsOutOfOrder=Y
ValidateFieldsHaveValues=Y
HeartBtInt=1
SocketConnectHost=127.0.0.1
SocketConnectPort={port}

[SESSION]
BeginString=FIX.4.4
SenderCompID={CLIENT}
TargetCompID=NUMBEX
"""
    path = tmp_path / "initiator.cfg"
    path.write_text(text)
    return fix.SessionSettings(str(path))


def new_order(cl_ord_id: str) -> fix.Message:
    message = fix44.NewOrderSingle()
    for field in (fix.ClOrdID(cl_ord_id), fix.HandlInst("1"), fix.Symbol("TEST"), fix.Side(fix.Side_BUY),
                  fix.TransactTime(), fix.OrderQty(100), fix.OrdType(fix.OrdType_LIMIT), fix.Price(10.5)):
        message.setField(field)
    return message


def start_initiator(tmp_path: Path, port: int, recorder: Recorder, keep: list) -> fix.SocketInitiator:
    """Start a QuickFIX initiator; ``keep`` holds every object it references (QuickFIX's C++
    side keeps plain references to the settings and factories, so they must outlive it)."""
    settings = quickfix_settings(tmp_path, port)
    store_factory = fix.FileStoreFactory(settings)
    log_factory = fix.FileLogFactory(settings)
    initiator = fix.SocketInitiator(recorder, store_factory, settings, log_factory)
    keep.extend((settings, store_factory, log_factory, initiator))
    initiator.start()
    return initiator


@pytest.mark.timeout(120)
def test_quickfix_initiator_trades_and_recovers(tmp_path):
    stores = tmp_path / "numbex-store"
    exchange = MiniExchange(stores)
    exchange.start()
    recorder = Recorder()
    keep: list = []
    initiator = start_initiator(tmp_path, exchange.port, recorder, keep)
    try:
        wait_for(lambda: recorder.logons == 1)
        for index in range(5):
            assert fix.Session.sendToTarget(new_order(f"A{index}"), recorder.session_id)
        wait_for(lambda: len(recorder.executions) == 10)
        time.sleep(2.5)                                   # HeartBtInt=1: heartbeats both ways
        assert "0" in recorder.admin_in and "0" in recorder.admin_out

        # Gap from QuickFIX to numbex: numbex sends a ResendRequest, QuickFIX gap-fills.
        session = fix.Session.lookupSession(recorder.session_id)
        session.setNextSenderMsgSeqNum(session.getExpectedSenderNum() + 3)
        assert fix.Session.sendToTarget(new_order("GAP"), recorder.session_id)
        wait_for(lambda: b"GAP" in exchange.orders)
        assert "4" in recorder.admin_out                  # QuickFIX answered with a GapFill

        # numbex restarts while QuickFIX is away; reports sent meanwhile are resent.
        initiator.stop()
        wait_for(lambda: not exchange.sessions)
        exchange.stop()
        offline = exchange.last_session
        for index in range(2):
            offline.send(b"8", execution_report_body("A0", f"LATE{index}"), time.time_ns())
        exchange.close_stores()
        exchange = MiniExchange(stores, port=exchange.port)
        exchange.start()
        before = len(recorder.executions)
        initiator.start()                                 # same QuickFIX session, reconnecting
        wait_for(lambda: recorder.logons == 2)
        wait_for(lambda: len(recorder.executions) >= before + 2)
        assert recorder.executions[before:before + 2] == [("LATE0", True), ("LATE1", True)]
        assert fix.Session.sendToTarget(new_order("AFTER"), recorder.session_id)
        wait_for(lambda: b"AFTER" in exchange.orders)
        wait_for(lambda: len(recorder.executions) >= before + 4)
    finally:
        initiator.stop()
        exchange.stop()
        exchange.close_stores()
    assert exchange.rejects == []
    assert "3" not in recorder.admin_in and "3" not in recorder.admin_out
    assert "j" not in recorder.admin_in


def quickfix_dictionary(tmp_path: Path) -> fix.DataDictionary:
    dictionary = fix.DataDictionary(str(fix44_xml(tmp_path)))
    dictionary.checkFieldsOutOfOrder(True)
    dictionary.checkFieldsHaveValues(True)
    dictionary.checkUserDefinedFields(True)
    return dictionary


def test_everything_numbex_writes_passes_quickfix_validation(tmp_path):
    dictionary = quickfix_dictionary(tmp_path)
    written = []
    pair = ConnectionPair()
    pair.logon()
    pair.deliver(pair.acceptor.send(b"8", execution_report_body("A", "E1"), pair.now), to_acceptor=False)
    pair.advance(40)                                              # heartbeats, test requests
    pair.acceptor.send(b"8", execution_report_body("A", "E2"), pair.now)   # lost: resend + gap fill
    pair.acceptor.on_timer(pair.now + 31 * 10**9)
    pair.now += 31 * 10**9
    pair.pump()
    pair.acceptor.logout("end of day", pair.now)
    pair.pump()
    written += [message.raw for message in pair.to_initiator]
    acceptor = Acceptor()
    acceptor.logged_on()
    for data in (acceptor.client.message(b"D", new_order_body().replace(b"38=100", b"38=x")),
                 acceptor.client.message(b"R", b"131=Q\x01"), acceptor.client.message(b"ZZ"),
                 acceptor.client.message(b"1", b"112=PING\x01"), acceptor.client.message(b"4", b"36=1\x01"),
                 acceptor.client.message(b"0", seq_num=50)):
        written += [message.raw for message in acceptor.feed(data)[1]]
    written += [message.raw for message in Acceptor().feed(Acceptor().client.logon(password="bad"))[1]]
    kinds = set()
    for raw in written:
        message = fix.Message(raw.decode("latin-1"), dictionary, True)
        dictionary.validate(message)
        kinds.add(message.getHeader().getField(35))
    assert {"A", "0", "1", "2", "3", "4", "5", "8", "j"} <= kinds
