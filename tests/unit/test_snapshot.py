"""Snapshots: round trip, atomic replacement, fallback past damaged files, retention."""

from __future__ import annotations

import os

import numpy as np
import pytest

from numbex.engine import snapshot
from numbex.engine.records import COMMAND, EVENT
from numbex.engine.snapshot import (
    SnapshotCorruptionError,
    list_snapshots,
    load_latest,
    prune_snapshots,
    read_snapshot,
    write_snapshot,
)


def engine_state(seed: int) -> dict[str, np.ndarray]:
    generator = np.random.default_rng(seed)
    orders = np.zeros(50, COMMAND)
    orders["order_id"] = generator.integers(1, 1 << 40, 50)
    orders["price"] = generator.integers(-1000, 1000, 50)
    return {
        "orders": orders,
        "events": np.zeros(3, EVENT),
        "levels": generator.integers(0, 1 << 60, size=(4, 7)),
        "free_list": np.arange(10, dtype=np.int32)[::-1],  # not contiguous: written C-order
        "empty": np.zeros(0, np.int64),
        "scalar": np.array(3.5),
    }


def assert_same_arrays(loaded: dict[str, np.ndarray], original: dict[str, np.ndarray]) -> None:
    assert loaded.keys() == original.keys()
    for name, array in original.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        assert loaded[name].tobytes() == np.ascontiguousarray(array).tobytes(), name


def test_round_trip(tmp_path):
    state = engine_state(1)
    meta = {"engine": "numbex", "instruments": ["AAPL", "MSFT"], "next_order_slot": 17}
    path = write_snapshot(tmp_path, 1234, state, meta)
    assert path.name == "snap-00000000000000001234.snap"
    loaded = read_snapshot(path)
    assert loaded.seq == 1234 and loaded.meta == meta and loaded.created_ns > 0
    assert_same_arrays(loaded.arrays, state)
    assert loaded.arrays["orders"].dtype.isalignedstruct  # numba record types stay the same
    assert list_snapshots(tmp_path) == [(1234, path)]
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left


def test_load_latest_picks_the_newest(tmp_path):
    for seq in (10, 300, 25):
        write_snapshot(tmp_path, seq, engine_state(seq), {"seq": seq})
    latest = load_latest(tmp_path)
    assert latest.seq == 300 and latest.meta == {"seq": 300} and latest.skipped == ()
    assert_same_arrays(latest.arrays, engine_state(300))
    assert load_latest(tmp_path, max_seq=299).seq == 25
    assert load_latest(tmp_path / "missing") is None


def test_crashed_write_leaves_only_an_ignored_temporary_file(tmp_path, monkeypatch):
    write_snapshot(tmp_path, 5, engine_state(5), {})
    # a crash before the rename: the temporary file is complete or partial, never visible
    (tmp_path / "snap-00000000000000000009.snap.tmp").write_bytes(b"NBXSNAP\x00 partial")
    assert [seq for seq, _ in list_snapshots(tmp_path)] == [5]
    assert load_latest(tmp_path).seq == 5

    def crash(*arguments):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(snapshot.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        write_snapshot(tmp_path, 12, engine_state(12), {})
    monkeypatch.undo()
    assert (tmp_path / "snap-00000000000000000012.snap.tmp").exists()
    assert load_latest(tmp_path).seq == 5


@pytest.mark.parametrize("damage", ["body bit", "header bit", "truncated", "appended", "empty", "renamed"])
def test_damaged_newest_falls_back_to_the_previous(tmp_path, damage, caplog):
    write_snapshot(tmp_path, 100, engine_state(100), {"good": True})
    newest = write_snapshot(tmp_path, 200, engine_state(200), {"good": False})
    data = bytearray(newest.read_bytes())
    if damage == "body bit":
        data[len(data) // 2] ^= 0x01
    elif damage == "header bit":
        data[20] ^= 0x80
    elif damage == "truncated":
        data = data[:-7]
    elif damage == "appended":
        data += b"\x00"
    elif damage == "empty":
        data = bytearray()
    newest.write_bytes(bytes(data))
    if damage == "renamed":  # a good file under another seq's name is not trusted either
        newest.rename(tmp_path / "snap-00000000000000000300.snap")
    latest = load_latest(tmp_path)
    assert latest.seq == 100 and latest.meta == {"good": True}
    assert len(latest.skipped) == 1
    assert "skipping snapshot" in caplog.text
    if damage != "renamed":
        with pytest.raises(SnapshotCorruptionError, match=newest.name):
            read_snapshot(newest)


def test_every_snapshot_damaged_gives_none(tmp_path):
    path = write_snapshot(tmp_path, 7, engine_state(7), {})
    path.write_bytes(path.read_bytes()[:40])
    assert load_latest(tmp_path) is None


def test_prune_keeps_the_newest_and_clears_temporaries(tmp_path):
    for seq in (1, 2, 3, 4, 5):
        write_snapshot(tmp_path, seq, {"value": np.array([seq])}, {})
    (tmp_path / "snap-00000000000000000006.snap.tmp").write_bytes(b"x")
    deleted = prune_snapshots(tmp_path, keep=2)
    assert sorted(path.name for path in deleted) == [
        "snap-00000000000000000001.snap", "snap-00000000000000000002.snap",
        "snap-00000000000000000003.snap", "snap-00000000000000000006.snap.tmp"]
    assert [seq for seq, _ in list_snapshots(tmp_path)] == [4, 5]
    assert prune_snapshots(tmp_path, keep=2) == []
    with pytest.raises(ValueError, match="keep must be >= 1"):
        prune_snapshots(tmp_path, keep=0)


def test_bad_input_is_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="Python objects"):
        write_snapshot(tmp_path, 1, {"objects": np.array([object()])}, {})
    with pytest.raises(ValueError, match="not JSON-serializable"):
        write_snapshot(tmp_path, 1, {}, {"when": object()})
    with pytest.raises(ValueError, match="str to numpy arrays"):
        write_snapshot(tmp_path, 1, {"list": [1, 2]}, {})
    with pytest.raises(ValueError, match="seq"):
        write_snapshot(tmp_path, -1, {}, {})
    assert list_snapshots(tmp_path) == []


def test_large_array_crosses_read_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "READ_CHUNK", 4096)
    big = np.random.default_rng(3).integers(0, 255, size=100_003, dtype=np.uint8)
    write_snapshot(tmp_path, 9, {"big": big, "after": np.arange(5)}, {"n": 1})
    loaded = load_latest(tmp_path)
    assert np.array_equal(loaded.arrays["big"], big) and np.array_equal(loaded.arrays["after"], np.arange(5))
