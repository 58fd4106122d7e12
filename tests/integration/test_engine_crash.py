"""Crash tests of the engine process: SIGKILL under load, restart, recover, compare.

After every cycle and at the end: nothing acknowledged is lost or acknowledged twice,
every acknowledgement equals the event a clean replay of the WAL produces, every
submitted command is journaled exactly once, and the recovered engine state equals
a clean replay of the whole WAL.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from numbex import config as config_module
from numbex.engine import records as r
from numbex.engine.channels import remove_all
from numbex.engine.matcher import Engine
from numbex.engine.snapshot import load_latest
from numbex.engine.spec import EngineSpec
from numbex.engine.wal import WalReader
from numbex.server.engine_link import order_id_base, session_field
from numbex.server.ring_link import RingLink

CYCLES = int(os.environ.get("NUMBEX_CRASH_CYCLES", "60" if os.environ.get("NUMBEX_STRESS") else "20"))
ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, instance: str, durability: str = "sync") -> Path:
    text = config_module.default_text()
    text = text.replace('data_dir = "./var"', f'data_dir = "{tmp_path / "var"}"')
    text = text.replace('instance = "numbex"', f'instance = "{instance}"')
    text = text.replace("ring_slots = 65536", "ring_slots = 4096")
    text = text.replace("max_orders = 1048576", "max_orders = 65536")
    text = text.replace("max_stops = 65536", "max_stops = 1024")
    text = text.replace("snapshot_every_records = 1000000", "snapshot_every_records = 1500")
    text = text.replace('durability = "sync"', f'durability = "{durability}"')
    path = tmp_path / "numbex.toml"
    path.write_text(text)
    return path


class Flow:
    """Random order flow for one session, with the ids it may cancel."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.next_id = order_id_base(0, 1) + 1
        self.live: list[int] = []
        self.session = session_field(0, 1)

    def batch(self, size: int) -> np.ndarray:
        commands = np.zeros(size, dtype=r.COMMAND)
        for row in commands:
            row["session"] = self.session
            row["symbol"] = self.rng.randrange(2)
            row["account"] = self.rng.choice((0, 1))  # HOUSE (STP off), ACC1 (cancel-resting)
            row["client_ref"] = self.rng.randrange(1 << 30)
            if self.live and self.rng.random() < 0.3:
                row["op"] = r.OP_CANCEL
                row["order_id"] = self.live.pop(self.rng.randrange(len(self.live)))
                continue
            row["op"] = r.OP_NEW
            row["order_id"] = self.next_id
            self.next_id += 1
            row["side"] = self.rng.randrange(2)
            row["qty"] = self.rng.randrange(1, 20)
            base = 10000 if row["symbol"] == 0 else 19000
            row["price"] = base + self.rng.randrange(-5, 6)
            row["tif"] = r.TIF_IOC if self.rng.random() < 0.1 else r.TIF_GTC
            self.live.append(int(row["order_id"]))
        return commands


def wait_up(link: RingLink, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"engine exited during start (code {process.returncode})")
        if link.engine_up() and link.status.get(1) == process.pid:
            return
        time.sleep(0.02)
    raise AssertionError("engine did not come up")


def start_engine(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "numbex.cli", "engine", "--config", str(config_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)


def drain(link: RingLink, received: list, out: np.ndarray, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        count = link.poll(out)
        if count:
            received.append(out[:count].copy())
        else:
            time.sleep(0.001)


@pytest.mark.timeout(600)
def test_sigkill_under_load_recovers_exactly(tmp_path):
    instance = f"nbxcrash{os.getpid()}"
    config_path = write_config(tmp_path, instance)
    config = config_module.load(config_path)
    remove_all(instance)
    link = RingLink.attach(config, 0)
    flow = Flow(seed=7)
    rng = random.Random(11)
    received: list[np.ndarray] = []
    out = np.zeros(8192, dtype=r.EVENT)
    submitted = 0
    process = None
    try:
        for cycle in range(CYCLES):
            process = start_engine(config_path)
            wait_up(link, process)
            kill_at = time.monotonic() + rng.uniform(0.05, 0.4)
            while time.monotonic() < kill_at:
                batch = flow.batch(rng.randrange(1, 64))
                taken = link.submit(batch)
                submitted += taken
                if taken < len(batch):  # ring full: forget the rest (never submitted)
                    flow.live = [i for i in flow.live if i not in set(batch["order_id"][taken:].tolist())]
                count = link.poll(out)
                if count:
                    received.append(out[:count].copy())
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            drain(link, received, out, 0.05)
        process = start_engine(config_path)
        wait_up(link, process)
        drain(link, received, out, 1.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, process.stderr.read().decode()
        drain(link, received, out, 0.2)
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        link.close()
        remove_all(instance)

    events = np.concatenate(received)
    sequenced = events[events["seq"] != 0]
    # nothing acknowledged twice
    assert len(np.unique(sequenced["exec_id"])) == len(sequenced)
    # every submitted command journaled exactly once (origins are unique ring positions)
    wal = WalReader(tmp_path / "var" / "wal").read()
    assert len(wal) == submitted
    assert len(np.unique(wal["origin"])) == len(wal)
    assert (wal["seq"] == np.arange(1, len(wal) + 1)).all()
    # every acknowledgement is exactly what a clean replay produces
    spec = EngineSpec.from_config(config)
    replay = Engine(spec)
    expected = replay.process(wal)
    by_exec = {int(e): i for i, e in enumerate(expected["exec_id"])}
    for event in sequenced:
        assert event.tobytes() == expected[by_exec[int(event["exec_id"])]].tobytes()
    # after the clean stop, every event was delivered
    assert len(sequenced) == len(expected)
    # the recovered state (final snapshot, written by the last engine) equals the replay
    snapshot = load_latest(tmp_path / "var" / "snapshots")
    assert snapshot is not None and snapshot.seq == len(wal)
    for name, array in replay.state.items():
        assert np.array_equal(snapshot.arrays[name], array), name
