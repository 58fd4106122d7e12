"""Helpers for tests that run ``numbex engine`` as a subprocess and talk to it over the rings.

Each test gets its own shared-memory instance name and data dir (``write_config``), a
:class:`EngineHarness` that starts engines with their stderr in a log file and always
kills them and removes the instance's shared memory, and the exactness checks shared
by the crash and fault tests (:func:`assert_exact_recovery`).

Import with ``sys.path.insert(0, str(Path(__file__).resolve().parents[1]))``.
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

from numbex import config as config_module
from numbex.engine import records as r
from numbex.engine import status as st
from numbex.engine.channels import remove_all
from numbex.engine.matcher import Engine
from numbex.engine.snapshot import load_latest
from numbex.engine.spec import EngineSpec
from numbex.engine.wal import WalReader
from numbex.server.engine_link import order_id_base, session_field
from numbex.server.ring_link import RingLink

ROOT = Path(__file__).resolve().parents[1]


def write_config(tmp_path: Path, instance: str, durability: str = "sync", *,
                 snapshot_every_records: int = 1500, wal_segment_bytes: int = 268435456) -> Path:
    """A config file for a small engine with its data under ``tmp_path / "var"``."""
    text = config_module.default_text()
    replacements = {
        'data_dir = "./var"': f'data_dir = "{tmp_path / "var"}"',
        'instance = "numbex"': f'instance = "{instance}"',
        "ring_slots = 65536": "ring_slots = 4096",
        "max_orders = 1048576": "max_orders = 65536",
        "max_stops = 65536": "max_stops = 1024",
        "snapshot_every_records = 1000000": f"snapshot_every_records = {snapshot_every_records}",
        "wal_segment_bytes = 268435456": f"wal_segment_bytes = {wal_segment_bytes}",
        'durability = "sync"': f'durability = "{durability}"',
    }
    for old, new in replacements.items():
        assert old in text, f"default config no longer has {old!r}"
        text = text.replace(old, new)
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

    def forget(self, commands: np.ndarray) -> None:
        """Commands that never reached the engine: their ids are not live."""
        gone = set(commands["order_id"].tolist())
        self.live = [order_id for order_id in self.live if order_id not in gone]


def wait_up(link: RingLink, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"engine exited during start (code {process.returncode})")
        if link.engine_up() and link.status.get(st.W_PID) == process.pid:
            return
        time.sleep(0.02)
    raise AssertionError("engine did not come up")


def take(link: RingLink, out: np.ndarray) -> int:
    """Poll events like a gateway that handles them at once: poll, then commit (release)."""
    count = link.poll(out)
    link.commit()
    return count


def drain(link: RingLink, received: list, out: np.ndarray, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        count = take(link, out)
        if count:
            received.append(out[:count].copy())
        else:
            time.sleep(0.001)


def drain_all(link: RingLink, received: list, out: np.ndarray, timeout: float = 60.0) -> None:
    """Read events until the engine has taken every command and published every event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = take(link, out)
        if count:
            received.append(out[:count].copy())
            continue
        settled = (link.inbound.size() == 0 and link.outbound.size() == 0
                   and link.status.get(st.W_PUBLISHED) >= link.status.get(st.W_LAST))
        if settled:
            return
        time.sleep(0.001)
    raise AssertionError("the engine did not take and publish everything in time")


def poll_checked(link: RingLink, received: list, out: np.ndarray) -> int:
    """Poll once; every sequenced event must be of a durable command (status block)."""
    count = take(link, out)
    if count:
        events = out[:count]
        durable = link.status.get(st.W_DURABLE)
        assert int(events["seq"].max()) <= durable, (
            f"event of seq {int(events['seq'].max())} published while durable_seq is {durable}")
        received.append(events.copy())
    return count


class EngineHarness:
    """One test's engine instance: config, ring link, engine processes, cleanup."""

    def __init__(self, tmp_path: Path, label: str, durability: str = "sync", **options) -> None:
        self.tmp_path = tmp_path
        self.instance = f"nbx{label}{os.getpid()}"
        self.config_path = write_config(tmp_path, self.instance, durability, **options)
        self.config = config_module.load(self.config_path)
        self.data_dir = tmp_path / "var"
        self.wal_dir = self.data_dir / "wal"
        self.snapshot_dir = self.data_dir / "snapshots"
        self.log_path = tmp_path / "engine.log"
        self.processes: list[subprocess.Popen] = []
        remove_all(self.instance)
        self.link = RingLink.attach(self.config, 0)

    def start(self, *extra: str) -> subprocess.Popen:
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "numbex.cli", "engine", "--config", str(self.config_path), *extra],
                stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
        self.processes.append(process)
        return process

    def start_up(self, *extra: str) -> subprocess.Popen:
        process = self.start(*extra)
        wait_up(self.link, process)
        return process

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, process: subprocess.Popen, timeout: float = 60.0) -> None:
        """SIGTERM and a clean exit (final drain and snapshot)."""
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout)
        assert code == 0, f"engine exited with {code}:\n{self.log_text()[-4000:]}"

    @staticmethod
    def kill(process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(30)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(30)
        self.link.close()
        remove_all(self.instance)

    def __enter__(self) -> EngineHarness:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def crash_cycles(harness: EngineHarness, cycles: int, flow: Flow, rng: random.Random) -> tuple[list, int]:
    """SIGKILL the engine ``cycles`` times under load, then start it and stop it cleanly.

    Returns the events received and the number of commands the ring took.
    """
    link = harness.link
    received: list[np.ndarray] = []
    out = np.zeros(8192, dtype=r.EVENT)
    submitted = 0
    for _cycle in range(cycles):
        process = harness.start_up()
        # kill at a random point after this engine's first journaled batch (a kill before
        # it, on a loaded machine, would test nothing but the start)
        first_seq = link.status.get(st.W_LAST)
        kill_after = rng.uniform(0.0, 0.35)
        kill_at = None
        give_up = time.monotonic() + 30.0
        while time.monotonic() < (kill_at if kill_at is not None else give_up):
            if kill_at is None and link.status.get(st.W_LAST) > first_seq:
                kill_at = time.monotonic() + kill_after
            batch = flow.batch(rng.randrange(1, 64))
            taken = link.submit(batch)
            submitted += taken
            if taken < len(batch):  # ring full: forget the rest (never submitted)
                flow.forget(batch[taken:])
            poll_checked(link, received, out)
        assert kill_at is not None, f"the engine journaled nothing in 30 s:\n{harness.log_text()[-3000:]}"
        harness.kill(process)
        drain(link, received, out, 0.05)
    process = harness.start_up()
    drain_all(link, received, out)
    harness.stop(process)
    drain(link, received, out, 0.2)
    return received, submitted


def replay_wal(config, wal_dir: Path) -> tuple[np.ndarray, np.ndarray, Engine]:
    """Every WAL command, the events a clean replay of them produces, and that engine."""
    wal = WalReader(wal_dir).read()
    engine = Engine(EngineSpec.from_config(config))
    return wal, engine.process(wal), engine


def assert_acknowledged_exactly(sequenced: np.ndarray, expected: np.ndarray) -> None:
    """Nothing acknowledged twice; every acknowledgement is the replay's event, byte for byte."""
    assert len(np.unique(sequenced["exec_id"])) == len(sequenced)
    by_exec = {int(exec_id): index for index, exec_id in enumerate(expected["exec_id"])}
    for event in sequenced:
        assert int(event["exec_id"]) in by_exec, f"acknowledged exec id {int(event['exec_id'])} is not in the WAL"
        assert event.tobytes() == expected[by_exec[int(event["exec_id"])]].tobytes()


def assert_exact_recovery(harness: EngineHarness, received: list, submitted: int) -> None:
    """The crash test's checks, after a clean final stop (see test_engine_crash)."""
    events = np.concatenate(received)
    sequenced = events[events["seq"] != 0]
    wal, expected, replay = replay_wal(harness.config, harness.wal_dir)
    # every submitted command journaled exactly once (origins are unique ring positions)
    assert len(wal) == submitted
    assert len(np.unique(wal["origin"])) == len(wal)
    assert (wal["seq"] == np.arange(1, len(wal) + 1)).all()
    # nothing acknowledged twice; every acknowledgement is exactly what a clean replay produces
    assert_acknowledged_exactly(sequenced, expected)
    # after the clean stop, every event was delivered
    missing = np.setdiff1d(expected["exec_id"], sequenced["exec_id"])
    assert not len(missing), (
        f"{len(missing)} of {len(expected)} events never delivered; first exec ids "
        f"{missing[:5].tolist()}, seqs {np.unique(expected['seq'][np.isin(expected['exec_id'], missing)])[:10].tolist()}"
        f"\n{harness.log_text()[-3000:]}")
    # the recovered state (final snapshot, written by the last engine) equals the replay
    assert_snapshot_equals(harness.snapshot_dir, replay, len(wal))


def assert_snapshot_equals(snapshot_dir: Path, engine: Engine, seq: int) -> None:
    snapshot = load_latest(snapshot_dir)
    assert snapshot is not None and snapshot.seq == seq, (snapshot and snapshot.seq, seq)
    for name, array in engine.state.items():
        assert np.array_equal(snapshot.arrays[name], array), name
