"""recover_engine: which snapshot, the WAL tail replayed, snapshots ahead of the WAL; bench recovery."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine_process import Flow  # noqa: E402

from numbex.engine.matcher import Engine  # noqa: E402
from numbex.engine.recovery import SET_ASIDE_SUFFIX, recover_engine  # noqa: E402
from numbex.engine.snapshot import list_snapshots, write_snapshot  # noqa: E402
from numbex.engine.spec import EngineSpec  # noqa: E402
from numbex.engine.wal import (  # noqa: E402
    RECORD_BYTES,
    WalCorruptionError,
    WalWriter,
    list_segments,
    prune_segments,
)

TOTAL = 1000
SNAPSHOTS = (400, 800)
SEGMENT_BYTES = 128 * RECORD_BYTES
SPEC = EngineSpec.uniform(2, 9000, 20000, n_accounts=2, max_orders=4096, max_stops=64)


@pytest.fixture
def data(tmp_path):
    commands = Flow(seed=3).batch(TOTAL)
    commands["seq"] = np.arange(1, TOTAL + 1, dtype=np.uint64)
    commands["ts_ns"] = commands["seq"].astype(np.int64) * 1000
    engine = Engine(SPEC)
    with WalWriter(tmp_path / "wal", SEGMENT_BYTES) as writer:
        for start in range(0, TOTAL, 50):
            writer.append(commands[start:start + 50])
            writer.commit()
            engine.process(commands[start:start + 50])
            if start + 50 in SNAPSHOTS:
                write_snapshot(tmp_path / "snapshots", start + 50, engine.save_state(), {})
    return tmp_path / "wal", tmp_path / "snapshots", commands


def recover(wal_dir, snapshot_dir, **options):
    recovered = recover_engine(SPEC, wal_dir, snapshot_dir,
                               lambda first: WalWriter(wal_dir, SEGMENT_BYTES, first_seq=first), **options)
    recovered.wal.close()
    return recovered


def replay(commands: np.ndarray) -> tuple[Engine, np.ndarray]:
    engine = Engine(SPEC)
    return engine, engine.process(commands)


def assert_state(recovered, commands: np.ndarray) -> None:
    engine, _ = replay(commands)
    for name, array in engine.state.items():
        assert np.array_equal(recovered.engine.state[name], array), name


def test_newest_snapshot_plus_tail(data):
    wal_dir, snapshot_dir, commands = data
    seen = []
    recovered = recover(wal_dir, snapshot_dir, on_commands=lambda batch: seen.append(batch["seq"].copy()))
    assert (recovered.snapshot_seq, recovered.replayed, recovered.last_seq) == (800, 200, TOTAL)
    assert recovered.wal.next_seq == TOTAL + 1
    assert np.array_equal(np.concatenate(seen), np.arange(801, TOTAL + 1))
    assert set(recovered.seconds) == {"snapshot_load", "wal_open", "replay", "total"}
    assert_state(recovered, commands)


def test_replay_after_prefers_an_older_snapshot_and_yields_its_events(data):
    wal_dir, snapshot_dir, commands = data
    chunks = []
    recovered = recover(wal_dir, snapshot_dir, replay_after=500, on_events=lambda events: chunks.append(events.copy()))
    assert (recovered.snapshot_seq, recovered.replayed) == (400, 600)
    _, events = replay(commands)
    assert np.concatenate(chunks).tobytes() == events[events["seq"] > 400].tobytes()
    # nothing at or before seq 300: genesis while the WAL starts at 1 ...
    assert recover(wal_dir, snapshot_dir, replay_after=300).snapshot_seq == 0
    # ... and the newest snapshot once it is pruned
    assert prune_segments(wal_dir, 400)
    recovered = recover(wal_dir, snapshot_dir, replay_after=300)
    assert recovered.snapshot_seq == 800
    assert_state(recovered, commands)


def test_genesis_without_snapshots(data):
    wal_dir, snapshot_dir, commands = data
    recovered = recover(wal_dir, snapshot_dir, use_snapshots=False)
    assert (recovered.snapshot_seq, recovered.replayed) == (0, TOTAL)
    assert_state(recovered, commands)


def cut_wal_at(wal_dir: Path, seq: int) -> None:
    """Remove every record after ``seq`` at a record boundary (no torn record left)."""
    for first, path in list_segments(wal_dir):
        if first > seq:
            path.unlink()
        elif first <= seq:
            os.truncate(path, min(path.stat().st_size, (seq - first + 1) * RECORD_BYTES))


def test_snapshot_ahead_of_the_wal_is_refused_or_set_aside(data):
    wal_dir, snapshot_dir, commands = data
    cut_wal_at(wal_dir, 700)
    with pytest.raises(WalCorruptionError, match=r"ends at seq 700: records 701..800 are missing"):
        recover(wal_dir, snapshot_dir)
    assert [seq for seq, _ in list_snapshots(snapshot_dir)] == list(SNAPSHOTS)  # nothing changed
    recovered = recover(wal_dir, snapshot_dir, allow_snapshot_ahead=True)
    assert (recovered.snapshot_seq, recovered.replayed, recovered.last_seq) == (400, 300, 700)
    assert [path.name for path in recovered.set_aside] == ["snap-00000000000000000800.snap" + SET_ASIDE_SUFFIX]
    assert [seq for seq, _ in list_snapshots(snapshot_dir)] == [400]
    assert_state(recovered, commands[:700])


def test_snapshot_ahead_of_a_pruned_wal_with_nothing_older(data):
    wal_dir, snapshot_dir, _ = data
    assert prune_segments(wal_dir, 400)
    (snapshot_dir / "snap-00000000000000000400.snap").unlink()
    cut_wal_at(wal_dir, 700)  # the WAL is now seq 401..700, before the only snapshot
    with pytest.raises(WalCorruptionError, match="no snapshot at or before"):
        recover(wal_dir, snapshot_dir, allow_snapshot_ahead=True)


def test_bench_recovery_runs_small(tmp_path, capsys):
    from numbex.cli import main

    bench = tmp_path / "var" / "bench"
    arguments = ["bench", "recovery", "--json", "--commands", "3000", "--instruments", "2",
                 "--max-orders", "8192", "--group", "500", "--repeat", "1", "--data-dir", str(tmp_path / "var")]
    assert main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["commands"] == 3000 and result["snapshot_at"] == 1500
    assert result["from_snapshot"]["snapshot_seq"] == 1500 and result["from_snapshot"]["replayed"] == 1500
    assert result["from_genesis"]["snapshot_seq"] == 0 and result["from_genesis"]["replayed"] == 3000
    for case in ("from_snapshot", "from_genesis"):
        assert 0 < result[case]["total"] >= result[case]["replay"]
    assert sorted(path.name for path in bench.iterdir()) == ["recovery-2-3000-1.npy", "recovery-2-3000-1.npy.json"]
    assert main(arguments[:2] + ["--commands", "10", "--snapshot-at", "11"]) == 2
    assert main(arguments[:2] + ["--repeat", "0"]) == 2
