"""``numbex wal verify``: passes on a consistent data dir, fails on an edited WAL, refuses bad input.

The data dirs are written the way the engine writes them: commands journaled with
``WalWriter`` in groups, matched by ``Engine``, snapshots of ``Engine.save_state`` at
group ends.  The failing case rewrites one record with the WAL's own encode kernel
(so every CRC stays valid) before a snapshot taken from the original history.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine_process import Flow, write_config  # noqa: E402

from numbex import config as config_module  # noqa: E402
from numbex.engine import records as r  # noqa: E402
from numbex.engine import wal_kernels  # noqa: E402
from numbex.engine.matcher import Engine  # noqa: E402
from numbex.engine.records import WAL_COMMAND_RECORD  # noqa: E402
from numbex.engine.snapshot import write_snapshot  # noqa: E402
from numbex.engine.spec import EngineSpec  # noqa: E402
from numbex.engine.wal import RECORD_BYTES, WalWriter, list_segments, prune_segments, scan_wal  # noqa: E402
from numbex.tools import wal_verify  # noqa: E402

TOTAL = 3000
SNAPSHOTS = (1000, 2000)


@pytest.fixture
def data_dir(tmp_path):
    config_path = write_config(tmp_path, "nbxverify")
    spec = EngineSpec.from_config(config_module.load(config_path))
    commands = Flow(seed=5).batch(TOTAL)
    commands["seq"] = np.arange(1, TOTAL + 1, dtype=np.uint64)
    commands["ts_ns"] = 1_700_000_000_000_000_000 + commands["seq"].astype(np.int64) * 1000
    engine = Engine(spec)
    data = tmp_path / "var"
    with WalWriter(data / "wal", segment_bytes=512 * RECORD_BYTES) as writer:
        for start in range(0, TOTAL, 100):  # groups of 100: snapshots fall on group ends
            group = commands[start:start + 100]
            writer.append(group)
            writer.commit()
            engine.process(group)
            if start + 100 in SNAPSHOTS:
                write_snapshot(data / "snapshots", start + 100, engine.save_state(), {})
    return data, config_path, commands, spec


def verify(directory: Path, config_path: Path | None, capsys, as_json: bool = True):
    args = argparse.Namespace(directory=str(directory), config=str(config_path) if config_path else None,
                              json=as_json)
    code = wal_verify.run(args)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if as_json and captured.out else captured.out), captured.err


def rewrite_record(wal_dir: Path, seq: int, change) -> None:
    """Change the command of ``seq`` in place and re-encode its record (valid CRC)."""
    for first, path in reversed(list_segments(wal_dir)):
        if first <= seq:
            break
    raw = bytearray(path.read_bytes())
    offset = (seq - first) * RECORD_BYTES
    record = np.frombuffer(bytes(raw[offset:offset + RECORD_BYTES]), WAL_COMMAND_RECORD)
    command = record["command"].copy()
    change(command[0])
    rows = np.zeros((1, wal_kernels.RECORD_WORDS), np.uint64)
    kernels = wal_kernels.select_crc_kernels()
    assert kernels.encode_commands(command, rows, np.uint64(seq)) == -1
    raw[offset:offset + RECORD_BYTES] = rows.tobytes()
    path.write_bytes(bytes(raw))


def first_resting_new(commands: np.ndarray, upto: int) -> int:
    for command in commands[:upto]:
        if command["op"] == r.OP_NEW and command["tif"] == r.TIF_GTC:
            return int(command["seq"])
    raise AssertionError("no GTC order in the stream")


def add_lots(command) -> None:
    command["qty"] += 1000


def test_verify_passes_and_hashes_the_event_stream(data_dir, capsys):
    data, config_path, commands, spec = data_dir
    code, result, _ = verify(data, config_path, capsys)
    assert code == 0, result["problems"]
    events = Engine(spec).process(commands)
    assert result["records"] == TOTAL and result["events"] == len(events)
    assert result["sha256"] == hashlib.sha256(events.tobytes()).hexdigest()
    assert result["reference"] == "genesis" and result["segments"] > 2
    assert [entry["seq"] for entry in result["snapshots"]] == list(SNAPSHOTS)
    for entry in result["snapshots"]:
        tail = events[events["seq"] > entry["seq"]]
        assert entry["result"] == "ok" and entry["events_match"] and entry["state_match"]
        assert entry["tail_records"] == TOTAL - entry["seq"] and entry["tail_events"] == len(tail)
        assert entry["tail_sha256"] == hashlib.sha256(tail.tobytes()).hexdigest()
    # the WAL directory itself is accepted too (snapshots found beside it); text output
    code, text, _ = verify(data / "wal", config_path, capsys, as_json=False)
    assert code == 0 and "OK" in text and f"{TOTAL:,}" in text


def test_crc_valid_edit_before_a_snapshot_is_caught(data_dir, capsys):
    data, config_path, commands, _ = data_dir
    seq = first_resting_new(commands, SNAPSHOTS[0])
    rewrite_record(data / "wal", seq, add_lots)
    assert scan_wal(data / "wal").truncations == ()  # every CRC still valid
    code, result, _ = verify(data, config_path, capsys)
    assert code == 1
    assert [entry["result"] for entry in result["snapshots"]] == ["MISMATCH", "MISMATCH"]
    assert all(not entry["state_match"] for entry in result["snapshots"])
    assert any("snap-00000000000000001000.snap" in problem for problem in result["problems"])
    code, text, _ = verify(data, config_path, capsys, as_json=False)
    assert code == 1 and "MISMATCH" in text and "DIFFERENT" in text


def test_edit_after_every_snapshot_is_history_not_a_mismatch(data_dir, capsys):
    data, config_path, commands, _ = data_dir
    seq = first_resting_new(commands[SNAPSHOTS[-1]:], TOTAL - SNAPSHOTS[-1])
    assert seq > SNAPSHOTS[-1]
    rewrite_record(data / "wal", seq, add_lots)
    code, result, _ = verify(data, config_path, capsys)
    assert code == 0, result["problems"]  # the WAL is the truth; both runs replay the edit


def test_pruned_wal_is_verified_from_the_oldest_snapshot(data_dir, capsys):
    data, config_path, _, _ = data_dir
    assert prune_segments(data / "wal", SNAPSHOTS[0])
    code, result, _ = verify(data, config_path, capsys)
    assert code == 0, result["problems"]
    assert result["reference"] == f"snapshot {SNAPSHOTS[0]}" and result["first_seq"] > 1
    assert "pruned" in result["notes"][0] and result["records"] == TOTAL - SNAPSHOTS[0]
    assert [entry["result"] for entry in result["snapshots"]] == ["reference", "ok"]


def test_torn_tail_is_reported_and_a_snapshot_ahead_of_the_wal_fails(data_dir, capsys):
    data, config_path, _, _ = data_dir
    write_snapshot(data / "snapshots", TOTAL, Engine(EngineSpec.from_config(
        config_module.load(config_path))).save_state(), {})
    last = list_segments(data / "wal")[-1][1]
    with open(last, "r+b") as handle:
        handle.truncate(last.stat().st_size - 50)
    code, result, _ = verify(data, config_path, capsys)
    assert code == 1 and result["records"] == TOTAL - 1
    assert "torn tail" in result["torn_tail"][0]
    assert result["snapshots"][-1]["problem"].startswith("ahead of the WAL")


def test_bad_input_exits_2(data_dir, capsys, tmp_path):
    data, config_path, _, _ = data_dir
    code, _, error = verify(tmp_path / "missing", config_path, capsys)
    assert code == 2 and "is not a directory" in error
    (tmp_path / "empty").mkdir()
    code, _, error = verify(tmp_path / "empty", config_path, capsys)
    assert code == 2 and "neither a wal/ directory nor WAL segments" in error
    code, _, error = verify(data, None, capsys)  # default config: other capacities
    assert code == 2 and "--config" in error
    first, path = list_segments(data / "wal")[1]
    raw = bytearray(path.read_bytes())
    raw[RECORD_BYTES * 3 + 40] ^= 0x10  # a bit flip in a middle segment: CRC mismatch
    path.write_bytes(bytes(raw))
    code, _, error = verify(data, config_path, capsys)
    assert code == 2 and "corrupt WAL" in error and path.name in error and "byte offset 384" in error
