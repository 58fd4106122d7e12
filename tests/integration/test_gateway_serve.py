"""The gateway in the real pipeline: ``numbex serve`` (engine process with its WAL, rings, gateway
process) on 127.0.0.1, driven by FIX clients: trading, cancel-on-disconnect, clean stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import cancel_body, fields, order_body, replace_body  # noqa: E402
from gateway_net import SocketClient  # noqa: E402

pytestmark = pytest.mark.timeout(300)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_config(tmp_path: Path, port: int, instance: str) -> Path:
    path = tmp_path / "serve.toml"
    path.write_text(f"""[exchange]
data_dir = "{tmp_path / 'data'}"
instance = "{instance}"
[engine]
max_orders = 65536
max_stops = 1024
[gateway.fix]
port = {port}
[[instruments]]
symbol = "TEST"
[[accounts]]
name = "ACC1"
[[accounts]]
name = "ACC2"
[[sessions]]
comp_id = "CLIENT1"
account = "ACC1"
[[sessions]]
comp_id = "CLIENT2"
account = "ACC2"
""")
    return path


def connect(port: int, comp_id: str, process: subprocess.Popen, seconds: float = 180.0) -> SocketClient:
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, "numbex serve exited"
        try:
            return SocketClient(port, comp_id)
        except OSError:
            assert time.monotonic() < deadline, "the gateway never listened"
            time.sleep(0.2)


def test_trading_through_numbex_serve(tmp_path):
    port = free_port()
    instance = f"gwserve{os.getpid()}"
    config = serve_config(tmp_path, port, instance)
    environment = dict(os.environ)
    environment.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[2] / ".numba_cache"))
    process = subprocess.Popen([sys.executable, "-m", "numbex.cli", "serve", "--config", str(config),
                                "--roles", "engine,gateway"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=environment, start_new_session=True)
    clients: list[SocketClient] = []
    try:
        seller = connect(port, "CLIENT1", process)
        clients.append(seller)
        buyer = connect(port, "CLIENT2", process)
        clients.append(buyer)
        seller.logon()
        buyer.logon()
        seller.send(b"D", order_body("S1", side="2", qty="100", price="100.05", tif="1"))
        (ack,) = seller.expect(1, timeout=30)
        assert fields(ack, 11, 150, 39) == ("S1", "0", "0")
        assert int(ack.get(37)) >> 40 == 1                 # order ids carry the gateway's epoch
        buyer.send(b"D", order_body("B1", side="1", qty="30", price="100.10"))
        assert [fields(m, 11, 150, 39, 32, 31) for m in buyer.expect(2, timeout=30)] == [
            ("B1", "0", "0", None, None), ("B1", "F", "2", "30", "100.05")]
        assert [fields(m, 11, 150, 39, 151) for m in seller.expect(1, timeout=30)] == [("S1", "F", "1", "70")]
        seller.send(b"G", replace_body("S1b", "S1", "50", "100.20", side="2"))
        assert [fields(m, 11, 150, 39, 151) for m in seller.expect(1, timeout=30)] == [("S1b", "5", "1", "20")]
        seller.send(b"D", order_body("S2", side="2", qty="10", price="100.30", tif="1"))
        seller.send(b"F", cancel_body("C2", "S2", side="2"))
        assert [fields(m, 11, 150) for m in seller.expect(2, timeout=30)] == [("S2", "0"), ("C2", "4")]
        seller.close()                                     # drops: its open order S1b is cancelled
        time.sleep(0.5)
        buyer.send(b"D", order_body("B2", side="1", qty="20", price="100.20", tif="3"))
        assert [fields(m, 11, 150) for m in buyer.expect(2, timeout=30)] == [("B2", "0"), ("B2", "4")]
        buyer.logout()
        assert buyer.rejects() == []
    finally:
        for client in clients:
            client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        from numbex.engine.channels import remove_all

        remove_all(instance)
    assert process.returncode == 0, output.decode(errors="replace")[-3000:]
