"""The gateway in the real pipeline: ``numbex serve`` (engine process with its WAL, rings, gateway
process) on 127.0.0.1, driven by FIX clients: trading, cancel-on-disconnect, clean stop."""

from __future__ import annotations

import contextlib
import dataclasses
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

from numbex.server.supervisor import START_WINDOW_SECONDS  # noqa: E402

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


def connect(port: int, comp_id: str, process: subprocess.Popen, seconds: float = 180.0,
            store=None) -> SocketClient:
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, "numbex serve exited"
        try:
            return SocketClient(port, comp_id, store=store)
        except OSError:
            assert time.monotonic() < deadline, "the gateway never listened"
            time.sleep(0.2)


def start_serve(config: Path) -> subprocess.Popen:
    environment = dict(os.environ)
    environment.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[2] / ".numba_cache"))
    return subprocess.Popen([sys.executable, "-m", "numbex.cli", "serve", "--config", str(config),
                             "--roles", "engine,gateway"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=environment, start_new_session=True)


def stop_serve(process: subprocess.Popen, instance: str) -> str:
    """SIGTERM (if still running) and the output; the instance's shared memory is removed."""
    from numbex.engine.channels import remove_all

    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    remove_all(instance)
    return output.decode(errors="replace")


@dataclasses.dataclass
class Served:
    """A running ``numbex serve`` (see :func:`serving`); ``output`` is filled in once it stopped."""

    port: int
    instance: str
    process: subprocess.Popen
    clients: list[SocketClient]
    output: str = ""


@contextlib.contextmanager
def serving(tmp_path: Path, label: str):
    """``numbex serve`` (engine + gateway) with CLIENT1 and CLIENT2 logged on.

    Yields a :class:`Served`; on exit its clients (and any added to the list) are closed
    and serve is stopped; it must exit with 0.
    """
    port = free_port()
    instance = f"{label}{os.getpid()}"
    served = Served(port, instance, start_serve(serve_config(tmp_path, port, instance)), [])
    failed = False
    try:
        for comp_id in ("CLIENT1", "CLIENT2"):
            served.clients.append(connect(port, comp_id, served.process))
        for client in served.clients:
            client.logon()
        yield served
    except BaseException:
        failed = True
        raise
    finally:
        for client in served.clients:
            client.close()
        served.output = stop_serve(served.process, instance)
        if failed:
            print(served.output[-6000:])                   # pytest shows it with the failure
    assert served.process.returncode == 0, served.output[-3000:]


def engine_last_seq(instance: str) -> int:
    """Seq of the last command the engine journaled (its status block)."""
    from numbex.engine.channels import status_block
    from numbex.engine.status import W_LAST

    status = status_block(instance)
    try:
        return status.get(W_LAST)
    finally:
        status.close()


def role_pid(supervisor: subprocess.Popen, role: str, missing_ok: bool = False) -> int | None:
    """Pid of the live ``role`` process under the supervisor (a dead one has no command line)."""
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()
    for pid in children:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
        except OSError:
            continue
        if role.encode() in command:                       # (a role's title is "numbex <role> ...")
            return int(pid)
    if missing_ok:
        return None
    raise AssertionError(f"no {role} process under the supervisor")


def test_a_killed_gateway_comes_back_and_reports_the_stale_cancels(tmp_path):
    """SIGKILL the gateway: the supervisor restarts it; it rebuilds the orders of the dead run from
    its stores and cancels them (cancel-on-disconnect); the client gets the Canceled reports."""
    with serving(tmp_path, "gwkill") as served:
        port, process, clients = served.port, served.process, served.clients
        listening_at = time.monotonic()
        seller, buyer = clients
        seller.send(b"D", order_body("S1", side="2", qty="100", price="100.05", tif="1"))
        seller.send(b"D", order_body("S2", side="2", qty="10", price="100.10", tif="1"))
        assert [fields(m, 11, 150) for m in seller.expect(2, timeout=30)] == [("S1", "0"), ("S2", "0")]
        buyer.send(b"D", order_body("B1", side="1", qty="30", price="100.05", tif="3"))
        assert [fields(m, 11, 150, 151) for m in seller.expect(1, timeout=30)] == [("S1", "F", "70")]
        # (a role dying within the supervisor's start window counts as a failed start, not a crash)
        time.sleep(max(0.0, START_WINDOW_SECONDS + 0.2 - (time.monotonic() - listening_at)))
        gateway = role_pid(process, "gateway")
        os.kill(gateway, signal.SIGKILL)
        seller.wait(lambda: seller.disconnected, timeout=30)
        seller.close()
        # the dying gateway may close its client sockets before its listener: connect only
        # once the supervisor has started the next one
        deadline = time.monotonic() + 30
        while role_pid(process, "gateway", missing_ok=True) in (None, gateway):
            assert time.monotonic() < deadline, "the gateway was not restarted"
            time.sleep(0.05)
        again = connect(port, "CLIENT1", process, store=seller.store)
        clients.append(again)
        again.logon(timeout=60)
        rows = sorted(fields(m, 11, 150, 39, 14, 151, 6) for m in again.expect(2, timeout=30))
        assert rows == [("S1", "4", "4", "30", "0", "100.05"), ("S2", "4", "4", "0", "0", "0")]
        assert role_pid(process, "gateway") != gateway
        assert again.rejects() == []
    assert "restored 2 open orders" in served.output, served.output[-3000:]


def test_trading_through_numbex_serve(tmp_path):
    with serving(tmp_path, "gwserve") as served:
        clients = served.clients
        seller, buyer = clients
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
        journaled = engine_last_seq(served.instance)
        seller.close()                                     # drops: its open order S1b is cancelled
        deadline = time.monotonic() + 30                   # the gateway's mass cancel is journaled
        while engine_last_seq(served.instance) == journaled:
            assert time.monotonic() < deadline, "no cancel-on-disconnect reached the engine"
            time.sleep(0.01)
        buyer.send(b"D", order_body("B2", side="1", qty="20", price="100.20", tif="3"))
        assert [fields(m, 11, 150) for m in buyer.expect(2, timeout=30)] == [("B2", "0"), ("B2", "4")]
        buyer.logout()
        assert buyer.rejects() == []
