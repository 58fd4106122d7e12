"""numbex serve: starts the roles, restarts a dead engine, stops cleanly, fails clearly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from numbex import config as config_module
from numbex.engine import records as r
from numbex.engine.channels import remove_all
from numbex.server.engine_link import order_id_base, session_field
from numbex.server.ring_link import RingLink
from numbex.server.supervisor import START_WINDOW_SECONDS

ROOT = Path(__file__).resolve().parents[2]


def make_config(tmp_path: Path, instance: str, data_dir: Path | None = None) -> Path:
    text = config_module.default_text()
    text = text.replace('data_dir = "./var"', f'data_dir = "{data_dir or tmp_path / "var"}"')
    text = text.replace('instance = "numbex"', f'instance = "{instance}"')
    text = text.replace("max_orders = 1048576", "max_orders = 65536")
    text = text.replace("port = 9878", "port = 0")
    text = text.replace("port = 9879", "port = 0")
    path = tmp_path / "numbex.toml"
    path.write_text(text)
    return path


def serve(config_path: Path, roles: str = "engine") -> subprocess.Popen:
    """The test plays gateway 0 itself, so by default only the engine role runs."""
    return subprocess.Popen([sys.executable, "-m", "numbex.cli", "serve", "--config", str(config_path),
                             "--roles", roles],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                            start_new_session=True)  # the test's Ctrl-C does not reach it


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def round_trip(link: RingLink, order_id: int) -> list[int]:
    command = np.zeros(1, dtype=r.COMMAND)
    command["op"] = r.OP_NEW
    command["order_id"] = order_id
    command["price"] = 10000
    command["qty"] = 1
    command["session"] = session_field(0, 1)
    assert link.submit(command) == 1
    out = np.zeros(16, dtype=r.EVENT)
    kinds: list[int] = []
    deadline = time.monotonic() + 10
    while len(kinds) < 2 and time.monotonic() < deadline:
        count = link.poll(out)
        link.commit()
        kinds += out["kind"][:count].tolist()
        time.sleep(0.001)
    return kinds


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def served_engine(tmp_path: Path, name: str):
    """``numbex serve --roles engine`` on a fresh instance, with this test as gateway 0.

    Yields ``(supervisor, link)`` once the engine is up; always kills what is left
    and removes the instance's shared memory.
    """
    instance = f"{name}{os.getpid()}"
    config_path = make_config(tmp_path, instance)
    config = config_module.load(config_path)
    remove_all(instance)
    supervisor = serve(config_path)
    link = None
    try:
        wait_for(lambda: Path(f"/dev/shm/{instance}-status").exists(), 60, "the status block")
        link = RingLink.attach(config, 0)
        wait_for(link.engine_up, 120, "the engine")
        yield supervisor, link
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
        if link is not None:
            link.close()
        remove_all(instance)


@pytest.mark.timeout(240)
def test_serve_restarts_engine_and_stops_cleanly(tmp_path):
    with served_engine(tmp_path, "nbxserve") as (supervisor, link):
        time.sleep(START_WINDOW_SECONDS + 0.5)  # past start-up: a death now means restart
        first_engine = link.status.get(1)
        assert Path(f"/proc/{first_engine}/cmdline").read_bytes().split(b"\0")[0] == b"numbex engine"
        base = order_id_base(0, 1)
        assert round_trip(link, base + 1) == [r.EV_ACCEPTED, r.EV_BOOK_ADD]

        os.kill(first_engine, signal.SIGKILL)
        wait_for(lambda: not link.engine_up(), 10, "the engine to be seen down")
        wait_for(lambda: link.engine_up() and link.status.get(1) != first_engine, 120,
                 "the restarted engine")
        assert round_trip(link, base + 2) == [r.EV_ACCEPTED, r.EV_BOOK_ADD]
        second_engine = link.status.get(1)

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(60) == 0, supervisor.stderr.read().decode()
        assert not process_alive(second_engine)
        assert b"restarting" in supervisor.stderr.read()


@pytest.mark.timeout(120)
def test_roles_die_with_a_killed_supervisor(tmp_path):
    with served_engine(tmp_path, "nbxorphan") as (supervisor, link):
        engine = link.status.get(1)
        supervisor.kill()
        supervisor.wait()
        wait_for(lambda: not process_alive(engine), 30, "the engine to stop with its supervisor")


@pytest.mark.timeout(120)
def test_serve_exits_nonzero_when_a_role_cannot_start(tmp_path):
    instance = f"nbxfail{os.getpid()}"
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should be")
    config_path = make_config(tmp_path, instance, data_dir=blocker / "var")
    supervisor = serve(config_path)
    try:
        code = supervisor.wait(90)
        stderr = supervisor.stderr.read().decode()
    finally:
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
        remove_all(instance)
    assert code != 0
    assert "not-a-directory" in stderr or "Not a directory" in stderr


def test_serve_rejects_a_bad_config(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[engine]\nbogus = 1\n")
    result = subprocess.run([sys.executable, "-m", "numbex.cli", "serve", "--config", str(bad)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 2
    assert "unknown key 'engine.bogus'" in result.stderr
