"""A real QuickFIX initiator trades against the numbex gateway (in-process engine) on 127.0.0.1.

Two QuickFIX sessions with data-dictionary validation on: logon, orders of every type and
TimeInForce, fills on both sides, cancels, replaces, rejects, status and mass cancel, a
sequence gap QuickFIX must fill, a gap numbex must fill from its store, and logout; zero
session-level rejects on either side (QuickFIX's admin traffic and event log, and the
gateway's counters).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

fix = pytest.importorskip("quickfix")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import CONFIG_TEXT, load_config  # noqa: E402
from gateway_net import running_gateway  # noqa: E402
from quickfix_support import AdminLog, fix44_xml  # noqa: E402

from numbex.protocol.fix import FixDecoder, FixMessage  # noqa: E402
from numbex.protocol.fix.timestamps import UtcTimestampFormatter  # noqa: E402

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]
SESSIONS = '[[sessions]]\ncomp_id = "QF1"\naccount = "ACC1"\n[[sessions]]\ncomp_id = "QF2"\naccount = "ACC2"\n'


class Trader(AdminLog, fix.Application):
    """Records every message crossing QuickFIX's sessions, by SenderCompID."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.session_ids: dict[str, object] = {}
        self.logons: dict[str, int] = {}
        self.received: dict[str, list[FixMessage]] = {"QF1": [], "QF2": []}

    def onCreate(self, session_id):
        self.session_ids[session_id.getSenderCompID().getValue()] = session_id

    def onLogon(self, session_id):
        name = session_id.getSenderCompID().getValue()
        self.logons[name] = self.logons.get(name, 0) + 1

    def fromApp(self, message, session_id):
        decoder = FixDecoder()
        decoder.receive_data(message.toString().encode("latin-1"))
        decoded = decoder.next_message()
        assert isinstance(decoded, FixMessage)
        with self.lock:
            self.received[session_id.getSenderCompID().getValue()].append(decoded)

    def count(self, name: str) -> int:
        with self.lock:
            return len(self.received[name])


def wait_for(condition, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def settings_file(tmp_path: Path, port: int) -> fix.SessionSettings:
    sessions = "".join(f"\n[SESSION]\nBeginString=FIX.4.4\nSenderCompID={name}\nTargetCompID=NUMBEX\n"
                       for name in ("QF1", "QF2"))
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
ResetOnLogon=Y
HeartBtInt=1
SocketConnectHost=127.0.0.1
SocketConnectPort={port}
{sessions}"""
    path = tmp_path / "initiator.cfg"
    path.write_text(text)
    return fix.SessionSettings(str(path))


def message(msg_type: str, *fields: tuple[int, str]) -> fix.Message:
    result = fix.Message()
    result.getHeader().setField(fix.MsgType(msg_type))
    for tag, value in fields:
        result.setField(tag, value)
    return result


def now_text() -> str:
    return UtcTimestampFormatter().format(time.time_ns()).decode()


def order(cl_ord_id: str, side: str, qty: str, ord_type: str, price: str | None = None, stop: str | None = None,
          tif: str | None = None, exec_inst: str | None = None, symbol: str = "TEST") -> fix.Message:
    fields = [(11, cl_ord_id), (21, "1"), (55, symbol), (54, side), (60, now_text()), (38, qty), (40, ord_type)]
    for tag, value in ((44, price), (99, stop), (59, tif), (18, exec_inst)):
        if value is not None:
            fields.append((tag, value))
    return message("D", *fields)


def cancel(cl_ord_id: str, orig: str, side: str) -> fix.Message:
    return message("F", (41, orig), (11, cl_ord_id), (55, "TEST"), (54, side), (60, now_text()))


def replace(cl_ord_id: str, orig: str, side: str, qty: str, price: str) -> fix.Message:
    return message("G", (41, orig), (11, cl_ord_id), (21, "1"), (55, "TEST"), (54, side), (60, now_text()),
                   (38, qty), (40, "2"), (44, price))


def values(messages: list[FixMessage], *tags: int) -> list[tuple]:
    return [tuple(None if m.get(tag) is None else m.get(tag).decode() for tag in tags) for m in messages]


def test_quickfix_trades_against_the_gateway(tmp_path):
    config = load_config(CONFIG_TEXT, SESSIONS)
    with running_gateway(config, tmp_path / "numbex") as gateway:
        trader = Trader()
        settings = settings_file(tmp_path, gateway.port)
        store_factory = fix.FileStoreFactory(settings)
        log_factory = fix.FileLogFactory(settings)
        initiator = fix.SocketInitiator(trader, store_factory, settings, log_factory)
        initiator.start()
        try:
            wait_for(lambda: trader.logons.get("QF1") == 1 and trader.logons.get("QF2") == 1)
            qf1, qf2 = trader.session_ids["QF1"], trader.session_ids["QF2"]
            seen = {"QF1": 0, "QF2": 0}

            def send(session_id, msg, replies: int, name: str, other: int = 0) -> tuple[list, list]:
                """Send, then wait for ``replies`` to the sender (and ``other`` to the other session)."""
                counterpart = "QF2" if name == "QF1" else "QF1"
                assert fix.Session.sendToTarget(msg, session_id)
                wait_for(lambda: trader.count(name) >= seen[name] + replies
                         and trader.count(counterpart) >= seen[counterpart] + other)
                time.sleep(0.05)                           # nothing more should come
                assert trader.count(name) == seen[name] + replies
                assert trader.count(counterpart) == seen[counterpart] + other
                mine = trader.received[name][seen[name]:]
                theirs = trader.received[counterpart][seen[counterpart]:]
                seen[name] += replies
                seen[counterpart] += other
                return mine, theirs

            mine, _ = send(qf2, order("L1", "2", "100", "2", price="100.05", tif="1"), 1, "QF2")
            assert values(mine, 35, 11, 150, 39, 151) == [("8", "L1", "0", "0", "100")]
            mine, theirs = send(qf1, order("B1", "1", "30", "2", price="100.10", tif="0"), 2, "QF1", other=1)
            assert values(mine, 11, 150, 39, 32, 31, 6) == [("B1", "0", "0", None, None, "0"),
                                                          ("B1", "F", "2", "30", "100.05", "100.05")]
            assert values(theirs, 11, 150, 39, 32, 151, 14) == [("L1", "F", "1", "30", "70", "30")]
            mine, theirs = send(qf1, order("M1", "1", "20", "1", tif="3"), 2, "QF1", other=1)
            assert values(mine, 150, 39, 32, 31) == [("0", "0", None, None), ("F", "2", "20", "100.05")]
            mine, _ = send(qf1, order("ST1", "1", "10", "3", stop="100.50", tif="1"), 1, "QF1")
            assert values(mine, 11, 150, 39, 40, 99) == [("ST1", "0", "0", "3", "100.50")]
            mine, _ = send(qf1, order("SL1", "2", "10", "4", price="99.00", stop="99.50", tif="1"), 1, "QF1")
            assert values(mine, 11, 150, 39, 40, 44, 99) == [("SL1", "0", "0", "4", "99.00", "99.50")]
            mine, _ = send(qf1, order("I1", "1", "10", "2", price="99.00", tif="3"), 2, "QF1")
            assert values(mine, 150, 39) == [("0", "0"), ("4", "4")]
            mine, _ = send(qf1, order("K1", "1", "1000", "2", price="100.05", tif="4"), 2, "QF1")
            assert values(mine, 150, 39, 58) == [("0", "0", None), ("4", "4", "FOK not filled in full")]
            mine, _ = send(qf1, order("PO1", "1", "10", "2", price="100.05", tif="1", exec_inst="6"), 2, "QF1")
            assert values(mine, 150, 39) == [("0", "0"), ("4", "4")]
            mine, _ = send(qf1, order("PO2", "1", "10", "2", price="99.00", tif="1", exec_inst="6"), 1, "QF1")
            order_id = mine[0].get(37).decode()
            mine, _ = send(qf1, replace("PO2b", "PO2", "1", "20", "99.01"), 1, "QF1")
            assert values(mine, 37, 11, 41, 150, 39, 38, 44) == [(order_id, "PO2b", "PO2", "5", "0", "20", "99.01")]
            mine, _ = send(qf1, message("H", (11, "PO2b"), (55, "TEST"), (54, "1")), 1, "QF1")
            assert values(mine, 11, 150, 39, 151) == [("PO2b", "I", "0", "20")]
            mine, _ = send(qf1, cancel("C1", "PO2b", "1"), 1, "QF1")
            assert values(mine, 11, 41, 150, 39) == [("C1", "PO2b", "4", "4")]
            mine, _ = send(qf1, cancel("C2", "NOPE", "1"), 1, "QF1")
            assert values(mine, 35, 434, 102) == [("9", "1", "1")]
            mine, _ = send(qf1, replace("R2", "NOPE", "1", "5", "99.00"), 1, "QF1")
            assert values(mine, 35, 434, 102) == [("9", "2", "1")]
            mine, _ = send(qf1, order("X1", "1", "10", "2", price="100.001"), 1, "QF1")
            assert values(mine, 150, 39, 103) == [("8", "8", "99")]
            mine, _ = send(qf1, order("X2", "1", "10", "2", price="99.00", symbol="NOPE"), 1, "QF1")
            assert values(mine, 150, 39, 103) == [("8", "8", "1")]
            mine, _ = send(qf1, message("q", (11, "MC1"), (530, "7"), (60, now_text())), 3, "QF1")
            assert sorted(values(mine[:2], 11, 150)) == [("SL1", "4"), ("ST1", "4")]
            assert values(mine[2:], 35, 530, 531, 533) == [("r", "7", "7", "2")]

            # QuickFIX skips three sequence numbers: numbex asks for them, QuickFIX gap-fills.
            session = fix.Session.lookupSession(qf1)
            session.setNextSenderMsgSeqNum(session.getExpectedSenderNum() + 3)
            resends_before = trader.admin_in.count("2")
            mine, _ = send(qf1, order("GAP", "1", "5", "2", price="99.00", tif="3"), 2, "QF1")
            assert values(mine, 11, 150) == [("GAP", "0"), ("GAP", "4")]
            assert trader.admin_in.count("2") == resends_before + 1 and "4" in trader.admin_out

            # QuickFIX forgets two of numbex's messages: it asks, numbex resends them from its store.
            session.setNextTargetMsgSeqNum(session.getExpectedTargetNum() - 2)
            assert fix.Session.sendToTarget(message("H", (11, "GAP"), (55, "TEST"), (54, "1")), qf1)
            wait_for(lambda: trader.count("QF1") >= seen["QF1"] + 3)
            resent = trader.received["QF1"][seen["QF1"]:seen["QF1"] + 3]
            assert values(resent, 11, 150, 43) == [("GAP", "0", "Y"), ("GAP", "4", "Y"), ("GAP", "I", None)]
            assert "2" in trader.admin_out
        finally:
            initiator.stop()
        wait_for(lambda: not gateway.core.connections, 10)
        counters = gateway.core.counters
        assert counters["session_rejects"] == 0 and counters["business_rejects"] == 0
        assert counters["rejects_received"] == 0
    assert "3" not in trader.admin_in and "3" not in trader.admin_out
    assert "j" not in trader.admin_in
    assert "5" in trader.admin_out and "5" in trader.admin_in          # logout handshake
    events = "".join(path.read_text() for path in (tmp_path / "qf-log").glob("*event*.log"))
    assert "Received logon response" in events and "reject" not in events.lower(), events


def test_quickfix_is_logged_out_cleanly_when_numbex_stops(tmp_path):
    config = load_config(CONFIG_TEXT, SESSIONS + "[gateway.fix]\nshutdown_logout_ms = 5000\n")
    trader = Trader()
    with running_gateway(config, tmp_path / "numbex") as gateway:
        settings = settings_file(tmp_path, gateway.port)
        initiator = fix.SocketInitiator(trader, fix.FileStoreFactory(settings), settings,
                                        fix.FileLogFactory(settings))
        initiator.start()
        try:
            wait_for(lambda: trader.logons.get("QF1") == 1 and trader.logons.get("QF2") == 1)
            stopped_at = time.monotonic()
            gateway.stop()
            wait_for(lambda: not gateway.core.connections, 10)
            # QuickFIX's Logout replies ended the sessions, well before the 5 s grace
            assert time.monotonic() - stopped_at < 4.0
        finally:
            initiator.stop()
        assert gateway.core.counters["shutdown_logouts"] == 2
        assert gateway.core.counters["session_rejects"] == 0 and gateway.core.counters["rejects_received"] == 0
    assert trader.admin_in.count("5") == 2 and trader.admin_out.count("5") == 2
    assert "3" not in trader.admin_in and "3" not in trader.admin_out
    events = "".join(path.read_text() for path in (tmp_path / "qf-log").glob("*event*.log"))
    assert events.count("Received logout request") == 2 and events.count("Sending logout response") == 2, events
    assert "reject" not in events.lower(), events
    traffic = "".join(path.read_text() for path in (tmp_path / "qf-log").glob("*messages*.log"))
    assert traffic.count("58=numbex is shutting down") == 2, traffic
