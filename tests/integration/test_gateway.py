"""The FIX gateway over 127.0.0.1 in both I/O modes (poll and uvloop) with an in-process engine:
logon, trading, cancels and replaces, cancel-on-disconnect, durable stores and the epoch."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import cancel_body, fields, load_config, order_body, replace_body  # noqa: E402
from gateway_net import SocketClient, logged_on, running_gateway  # noqa: E402

from numbex.server.fix_store import FileStore  # noqa: E402
from numbex.server.gateway import next_epoch  # noqa: E402

pytestmark = pytest.mark.timeout(120)
MODES = ["poll", "uvloop"]


@pytest.mark.parametrize("mode", MODES)
def test_trading_over_tcp(tmp_path, mode):
    config = load_config()
    with running_gateway(config, tmp_path, mode=mode) as gateway:
        seller = SocketClient(gateway.port, "CLIENT1")
        buyer = SocketClient(gateway.port, "CLIENT2")
        try:
            seller.logon()
            buyer.logon()
            seller.send(b"D", order_body("S1", side="2", qty="100", price="100.05", tif="1"))
            assert fields(seller.expect(1)[0], 11, 150, 39) == ("S1", "0", "0")
            buyer.send(b"D", order_body("B1", side="1", qty="30", price="100.10"))
            assert [fields(m, 11, 150, 39, 32, 31) for m in buyer.expect(2)] == [
                ("B1", "0", "0", None, None), ("B1", "F", "2", "30", "100.05")]
            assert [fields(m, 11, 150, 39, 151) for m in seller.expect(1)] == [("S1", "F", "1", "70")]
            seller.send(b"G", replace_body("S1b", "S1", "50", "100.20", side="2"))
            assert [fields(m, 11, 41, 150, 39, 151) for m in seller.expect(1)] == [("S1b", "S1", "5", "1", "20")]
            seller.send(b"F", cancel_body("C1", "S1b", side="2"))
            assert [fields(m, 11, 41, 150, 39) for m in seller.expect(1)] == [("C1", "S1b", "4", "4")]
            for client in (seller, buyer):
                client.logout()
                assert client.disconnected
                assert client.rejects() == []
        finally:
            seller.close()
            buyer.close()
        deadline = time.monotonic() + 5
        while gateway.core.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not gateway.core.connections
        assert gateway.core.counters["session_rejects"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_pipelined_orders_in_one_write(tmp_path, mode):
    config = load_config()
    with running_gateway(config, tmp_path, mode=mode) as gateway:
        client = SocketClient(gateway.port, "CLIENT1")
        try:
            client.logon()
            now = time.time_ns()
            data = b"".join(client.session.send(b"D", order_body(f"O{i}", qty="1", price="99.00"), now)
                            for i in range(500))
            client.sock.sendall(data)
            reports = client.expect(500, timeout=30)
            assert [m.get(11) for m in reports] == [b"O%d" % i for i in range(500)]
            assert all(m.get(150) == b"0" for m in reports)
        finally:
            client.close()


@pytest.mark.parametrize("mode", MODES)
def test_cancel_on_disconnect_over_tcp(tmp_path, mode):
    config = load_config()
    with running_gateway(config, tmp_path, mode=mode) as gateway:
        leaving = SocketClient(gateway.port, "CLIENT1")
        staying = SocketClient(gateway.port, "CLIENT2")
        try:
            leaving.logon()
            staying.logon()
            leaving.send(b"D", order_body("S1", side="2", qty="10", price="100.00", tif="1"))
            leaving.expect(1)
            leaving.close()                                   # no Logout: the connection just drops
            deadline = time.monotonic() + 30                  # until the gateway has cancelled S1
            while gateway.core.entry.live:
                assert time.monotonic() < deadline, "cancel-on-disconnect did not happen"
                time.sleep(0.01)
            staying.send(b"D", order_body("B1", side="1", qty="10", price="100.00", tif="3"))
            assert [fields(m, 150) for m in staying.expect(2)] == [("0",), ("4",)]
        finally:
            staying.close()


@pytest.mark.parametrize("mode", MODES)
def test_clean_stop_logs_every_session_out(tmp_path, mode):
    """A stop sends each session a Logout, waits (bounded) for the replies, cancels on disconnect."""
    config = load_config(extra="[gateway.fix]\nshutdown_logout_ms = 1500\n")
    with running_gateway(config, tmp_path, mode=mode) as gateway, \
            logged_on(gateway.port, "CLIENT1", "CLIENT2") as (answering, silent):
        answering.send(b"D", order_body("R1", side="2", qty="10", price="100.00", tif="1"))
        assert fields(answering.expect(1)[0], 11, 39) == ("R1", "0")
        stopped_at = time.monotonic()
        gateway.stop()
        answering.wait(lambda: answering.disconnected, timeout=10)
        ends = [event for event in answering.events if type(event).__name__ == "Disconnect"]
        assert ends and "shutting down" in str(ends[-1]), answering.events[-3:]
        assert answering.rejects() == []
        # the silent client gets the Logout too, and the connection is closed after the grace
        silent.sock.settimeout(10)
        received = b""
        while chunk := silent.sock.recv(1 << 16):
            received += chunk
        waited = time.monotonic() - stopped_at
        assert b"\x0135=5\x01" in received and b"58=numbex is shutting down" in received
        assert 1.0 <= waited < 8.0, waited
    assert gateway.core.counters["shutdown_logouts"] == 2
    # cancel-on-disconnect ran during the stop: the resting order's cancel is stored for CLIENT1
    store = FileStore.open(tmp_path / "fix", "CLIENT1")
    try:
        last = list(store.sent_messages(1, 1 << 30))[-1]
        assert last.msg_type == b"8" and b"\x01150=4\x01" in b"\x01" + last.body and b"11=R1\x01" in last.body
    finally:
        store.close()


def test_reports_survive_a_gateway_restart(tmp_path):
    """File stores: a report generated while the client is away is resent after a restart."""
    config = load_config()
    client_store = None
    with running_gateway(config, tmp_path) as gateway:
        keeper = SocketClient(gateway.port, "KEEP")
        other = SocketClient(gateway.port, "CLIENT2")
        try:
            keeper.logon()
            other.logon()
            keeper.send(b"D", order_body("K1", side="2", qty="10", price="100.00", tif="1"))
            keeper.expect(1)
            keeper.close()
            client_store = keeper.store
            time.sleep(0.2)
            other.send(b"D", order_body("X", side="1", qty="4", price="100.00", tif="3"))
            other.expect(2)
        finally:
            other.close()
    assert (tmp_path / "fix" / "KEEP.fixstore").exists()
    with running_gateway(config, tmp_path, link=None, cancel_stale_orders=False) as gateway:
        assert gateway.epoch == 2
        again = SocketClient(gateway.port, "KEEP", store=client_store)
        try:
            again.logon()
            (resent,) = again.expect(1)
            assert fields(resent, 11, 150, 39, 32) == ("K1", "F", "1", "4")
            assert resent.get(43) == b"Y"
            assert again.rejects() == []
        finally:
            again.close()


def test_epoch_file(tmp_path):
    assert [next_epoch(tmp_path, 3) for _ in range(3)] == [1, 2, 3]
    (tmp_path / "gateway-4.epoch").write_text("garbage")
    with pytest.raises(RuntimeError, match="epoch"):
        next_epoch(tmp_path, 4)


@pytest.mark.parametrize("mode", MODES)
def test_refused_logons_and_garbage_do_not_disturb_others(tmp_path, mode):
    config = load_config()
    with running_gateway(config, tmp_path, mode=mode) as gateway:
        healthy = SocketClient(gateway.port, "CLIENT1")
        stranger = SocketClient(gateway.port, "NOBODY")
        try:
            healthy.logon()
            stranger.session.logon(time.time_ns())
            stranger.flush()
            stranger.wait(lambda: stranger.disconnected)
            junk = SocketClient(gateway.port, "CLIENT2")
            junk.sock.sendall(b"GET / HTTP/1.1\r\n\r\n" * 100)
            junk.close()
            healthy.send(b"D", order_body("A", qty="1", price="99.00"))
            assert fields(healthy.expect(1)[0], 150) == ("0",)
        finally:
            healthy.close()
            stranger.close()
