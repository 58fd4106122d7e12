"""The engine role writes snapshots in the background: its loop goes on while a snapshot is
being written, and the snapshot holds the state at the seq it was taken at."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine_process import Flow, replay_wal, take, write_config  # noqa: E402

from numbex import config as config_module  # noqa: E402
from numbex.engine import records as r  # noqa: E402
from numbex.engine import snapshot as snapshot_module  # noqa: E402
from numbex.engine import status as st  # noqa: E402
from numbex.engine.channels import remove_all  # noqa: E402
from numbex.engine.matcher import Engine  # noqa: E402
from numbex.engine.process import EngineAgent  # noqa: E402
from numbex.engine.snapshot import load_latest  # noqa: E402
from numbex.engine.spec import EngineSpec  # noqa: E402
from numbex.server.ring_link import RingLink  # noqa: E402


def run_until(agent: EngineAgent, link: RingLink, journaled: int, out: np.ndarray) -> None:
    deadline = time.monotonic() + 30
    while agent.status.get(st.W_LAST) < journaled:
        assert time.monotonic() < deadline, "the engine did not journal the commands"
        agent.do_work()
        take(link, out)


def test_the_loop_goes_on_while_a_snapshot_is_written(tmp_path, monkeypatch):
    instance = f"nbxsnap{os.getpid()}"
    remove_all(instance)
    config = config_module.load(write_config(tmp_path, instance, snapshot_every_records=10**9))
    release = threading.Event()
    writing = threading.Event()
    real_write = snapshot_module.write_snapshot

    def slow_write(*args, **kwargs):
        writing.set()
        assert release.wait(30), "the test never released the writer"
        return real_write(*args, **kwargs)

    monkeypatch.setattr(snapshot_module, "write_snapshot", slow_write)
    link = RingLink.attach(config, 0)
    agent = EngineAgent(config)
    out = np.zeros(1024, dtype=r.EVENT)
    flow = Flow(seed=3)
    try:
        agent.on_start()
        assert link.submit(flow.batch(200)) == 200
        run_until(agent, link, 200, out)
        agent.snapshot_requested = True
        agent.do_work()                                  # copies the state, starts the writer
        assert writing.wait(30)
        # the writer is stuck: the loop keeps sequencing, journaling and publishing
        assert link.submit(flow.batch(100)) == 100
        run_until(agent, link, 300, out)
        assert agent.status.get(st.W_SNAPSHOT) == 0
        release.set()
        agent.snapshotter.join()
        assert agent.status.get(st.W_SNAPSHOT) == 200
        snapshot = load_latest(tmp_path / "var" / "snapshots")
        assert snapshot.seq == 200
        wal, _, _ = replay_wal(config, tmp_path / "var" / "wal")
        at_200 = Engine(EngineSpec.from_config(config))
        at_200.process(wal[:200])
        for name, array in at_200.state.items():      # the state at seq 200, not at 300
            assert np.array_equal(snapshot.arrays[name], array), name
    finally:
        release.set()
        agent.on_close()
        link.close()
        remove_all(instance)
    assert load_latest(tmp_path / "var" / "snapshots").seq == 300   # the stop's own snapshot
