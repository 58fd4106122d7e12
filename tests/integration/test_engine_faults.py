"""Faults under the engine process: a full WAL disk, WAL damage, async durability crashes.

* full disk: the WAL on a 2 MiB tmpfs fills; every later command is rejected
  (REASON_NOT_DURABLE, seq 0), the status block says not-durable, nothing that is not
  in the WAL is acknowledged; once space is freed the engine resumes by itself;
* a bit flip in the middle of the WAL: refused (exit 3, file and offset named); with
  ``--allow-wal-corruption`` it starts, the cut bytes kept beside the segment;
* a torn tail: truncated at start, the state is the replay of what survives;
* a missing segment: refused (exit 3);
* async durability: SIGKILL cycles under load with the crash test's exactness checks.

Each test runs its own engine instance; engines are killed and shared memory removed
in ``finally`` (the harness), and a mounted tmpfs is always unmounted.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmpfs import small_tmpfs  # noqa: E402

from engine_process import (  # noqa: E402
    EngineHarness,
    Flow,
    assert_acknowledged_exactly,
    assert_exact_recovery,
    assert_snapshot_equals,
    crash_cycles,
    drain,
    drain_all,
    replay_wal,
    take,
)

from numbex.engine import records as r  # noqa: E402
from numbex.engine import status as st  # noqa: E402
from numbex.engine.wal import RECORD_BYTES, WalReader, list_segments  # noqa: E402
from numbex.tools.wal_verify import verify  # noqa: E402

REJECTS = (r.EV_REJECTED, r.EV_CANCEL_REJECTED, r.EV_REPLACE_REJECTED)
SEGMENT_RECORDS = 512
PRISTINE_COMMANDS = 1800


class Submitter:
    """Submits flow batches with unique client refs, remembering which phase sent each."""

    def __init__(self, harness: EngineHarness, seed: int) -> None:
        self.harness = harness
        self.flow = Flow(seed)
        self.next_ref = 1
        self.phase_of: dict[int, str] = {}
        self.received: list[np.ndarray] = []
        self.out = np.zeros(8192, dtype=r.EVENT)

    def submit(self, size: int, phase: str) -> int:
        batch = self.flow.batch(size)
        batch["client_ref"] = np.arange(self.next_ref, self.next_ref + size, dtype=np.uint64)
        taken = self.harness.link.submit(batch)
        if taken < size:
            self.flow.forget(batch[taken:])
        for ref in batch["client_ref"][:taken].tolist():
            self.phase_of[ref] = phase
        self.next_ref += size
        return taken

    def poll(self) -> np.ndarray:
        count = take(self.harness.link, self.out)
        events = self.out[:count].copy()
        if count:
            self.received.append(events)
        return events

    def events(self) -> np.ndarray:
        return np.concatenate(self.received) if self.received else np.zeros(0, r.EVENT)


def not_durable(events: np.ndarray) -> np.ndarray:
    return (events["reason"] == r.REASON_NOT_DURABLE) & np.isin(events["kind"], REJECTS)


@pytest.mark.timeout(180)
def test_full_wal_disk_rejects_everything_then_resumes(tmp_path):
    # the harness is left first: its engine is killed before the tmpfs is unmounted
    with small_tmpfs(tmp_path / "var" / "wal"), EngineHarness(tmp_path, "full") as harness:
        ballast = harness.wal_dir / "ballast"
        ballast.write_bytes(bytes(512 << 10))  # freed later to let the engine resume
        process = harness.start_up()
        feed = Submitter(harness, seed=21)
        status = harness.link.status
        # 1. fill the WAL: about 1.5 MiB / 128 bytes = 12k records
        deadline = time.monotonic() + 60
        while not not_durable(feed.events()).any():
            assert time.monotonic() < deadline and feed.next_ref < 40000, "the WAL never filled up"
            feed.submit(32, "fill")
            feed.poll()
        time.sleep(0.05)
        feed.poll()
        assert status.state == st.STATE_NOT_DURABLE and not harness.link.engine_up()
        # 2. while full, across two retry periods: every command rejected, never sequenced
        until = time.monotonic() + 2.5
        while time.monotonic() < until:
            feed.submit(8, "full")
            feed.poll()
            assert status.state == st.STATE_NOT_DURABLE and not harness.link.engine_up()
            time.sleep(0.02)
        drain(harness.link, feed.received, feed.out, 0.2)
        # 3. free space: the engine resumes by itself within a few seconds
        ballast.unlink()
        freed = time.monotonic()
        resumed = None
        while resumed is None:
            assert time.monotonic() - freed < 10, "the engine did not resume after space was freed"
            feed.submit(4, "probe")
            time.sleep(0.05)
            events = feed.poll()
            probes = [feed.phase_of.get(int(ref)) == "probe" for ref in events["client_ref"]]
            if len(events) and (events["seq"][np.array(probes, bool)] > 0).any():
                resumed = time.monotonic() - freed
        assert resumed < 5 and status.state == st.STATE_UP and harness.link.engine_up()
        for _ in range(10):
            feed.submit(20, "after")
            feed.poll()
        drain_all(harness.link, feed.received, feed.out)
        harness.stop(process)
        drain(harness.link, feed.received, feed.out, 0.1)
        assert "WAL write failed" in harness.log_text() and "still full" in harness.log_text()
        wal, expected, replay = replay_wal(harness.config, harness.wal_dir)
        verified = verify(harness.wal_dir, harness.snapshot_dir, replay.spec)

    events = feed.events()
    rejected = events[not_durable(events)]
    sequenced = events[events["seq"] != 0]
    assert (rejected["seq"] == 0).all() and len(rejected)
    journaled_refs = set(wal["client_ref"].tolist())
    rejected_refs = rejected["client_ref"].tolist()
    # every command is either journaled or rejected as not durable, never both, never twice
    assert len(set(rejected_refs)) == len(rejected_refs)
    assert journaled_refs.isdisjoint(rejected_refs)
    assert journaled_refs | set(rejected_refs) == set(feed.phase_of)
    assert {feed.phase_of[ref] for ref in rejected_refs} >= {"fill", "full"}
    assert all(feed.phase_of[ref] in ("fill", "probe", "after") for ref in journaled_refs)
    assert not any(feed.phase_of[ref] == "full" for ref in journaled_refs)
    assert sum(feed.phase_of[ref] == "after" for ref in journaled_refs) == 200
    # nothing un-journaled acknowledged; everything journaled delivered once
    assert_acknowledged_exactly(sequenced, expected)
    assert len(sequenced) == len(expected)
    assert_snapshot_equals(harness.snapshot_dir, replay, len(wal))
    assert verified["ok"] and verified["records"] == len(wal), verified["problems"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A data dir from a real engine run: several WAL segments, no snapshot, killed."""
    base = tmp_path_factory.mktemp("pristine")
    with EngineHarness(base, "pristine", snapshot_every_records=10**9,
                       wal_segment_bytes=SEGMENT_RECORDS * RECORD_BYTES) as harness:
        process = harness.start_up()
        feed = Submitter(harness, seed=31)
        submitted = 0
        deadline = time.monotonic() + 60
        while submitted < PRISTINE_COMMANDS:
            assert time.monotonic() < deadline
            submitted += feed.submit(min(50, PRISTINE_COMMANDS - submitted), "pristine")
            feed.poll()
        while harness.link.status.get(st.W_LAST) < submitted:
            assert time.monotonic() < deadline, "the engine did not journal everything"
            feed.poll()
            time.sleep(0.01)
        harness.kill(process)
    assert len(list_segments(harness.wal_dir)) >= 3
    assert not list(harness.snapshot_dir.glob("snap-*"))
    return harness.data_dir


def copy_pristine(pristine: Path, tmp_path: Path, label: str) -> EngineHarness:
    harness = EngineHarness(tmp_path, label, snapshot_every_records=10**9,
                            wal_segment_bytes=SEGMENT_RECORDS * RECORD_BYTES)
    try:
        shutil.copytree(pristine, harness.data_dir)
    except BaseException:
        harness.close()
        raise
    return harness


def wal_files(harness: EngineHarness) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(harness.wal_dir.iterdir())}


def refused(harness: EngineHarness, *extra: str) -> str:
    process = harness.start(*extra)
    code = process.wait(120)
    log = harness.log_text()
    assert code == 3, f"exit code {code}:\n{log[-3000:]}"
    assert "refusing to start" in log
    return log


def submit_and_check(harness: EngineHarness, count: int, first_seq: int) -> None:
    """``count`` more commands are acknowledged with seqs from ``first_seq`` on."""
    feed = Submitter(harness, seed=41)
    feed.flow.next_id += 1 << 20  # ids unused by the pristine run
    assert feed.submit(count, "more") == count
    deadline = time.monotonic() + 10
    while harness.link.status.get(st.W_LAST) < first_seq + count - 1:
        assert time.monotonic() < deadline, "commands not journaled"
        feed.poll()
        time.sleep(0.01)
    drain_all(harness.link, feed.received, feed.out)
    seqs = np.unique(feed.events()["seq"])
    assert seqs.tolist() == list(range(first_seq, first_seq + count))


def stop_and_check_state(harness: EngineHarness, process) -> np.ndarray:
    """Stop the engine cleanly; its final snapshot must equal a replay of its WAL.

    The WAL is read before the stop: the final snapshot lets the engine prune it.
    """
    wal, _, replay = replay_wal(harness.config, harness.wal_dir)
    assert (wal["seq"] == np.arange(1, len(wal) + 1)).all()
    harness.stop(process)
    assert_snapshot_equals(harness.snapshot_dir, replay, len(wal))
    return wal


@pytest.mark.timeout(180)
def test_bit_flip_mid_wal_refuses_then_override_keeps_the_cut_bytes(pristine, tmp_path):
    with copy_pristine(pristine, tmp_path, "flip") as harness:
        first, segment = list_segments(harness.wal_dir)[1]
        offset = 100 * RECORD_BYTES
        raw = bytearray(segment.read_bytes())
        original = bytes(raw[offset:])
        raw[offset + 40] ^= 0x04
        segment.write_bytes(bytes(raw))
        before = wal_files(harness)
        log = refused(harness)
        assert f"WAL corruption in {segment} at byte offset {offset} (seq {first + 100})" in log
        assert wal_files(harness) == before  # nothing changed
        process = harness.start_up("--allow-wal-corruption")
        kept = segment.with_name(f"{segment.name}.dropped-at-{offset}")
        assert kept.read_bytes() == bytes(raw[offset:])  # the cut bytes, flipped bit included
        assert raw[offset + 41:] == original[41:]
        later = [path.name for seq, path in list_segments(pristine / "wal") if seq > first]
        assert later and all((harness.wal_dir / f"{name}.dropped").exists() for name in later)
        assert harness.link.status.get(st.W_LAST) == first + 99
        submit_and_check(harness, 30, first + 100)
        stop_and_check_state(harness, process)


@pytest.mark.timeout(180)
def test_torn_tail_is_truncated_and_the_state_is_the_replay(pristine, tmp_path):
    with copy_pristine(pristine, tmp_path, "torn") as harness:
        _, last = list_segments(harness.wal_dir)[-1]
        size = last.stat().st_size
        os.truncate(last, size - 50)  # the last record cut mid-way
        process = harness.start_up()
        assert last.stat().st_size == size - RECORD_BYTES
        assert harness.link.status.get(st.W_LAST) == PRISTINE_COMMANDS - 1
        assert "torn tail truncated" in harness.log_text()
        survived = WalReader(harness.wal_dir).read()
        assert len(survived) == PRISTINE_COMMANDS - 1
        submit_and_check(harness, 20, PRISTINE_COMMANDS)
        wal = stop_and_check_state(harness, process)
        assert len(wal) == PRISTINE_COMMANDS + 19 and wal[: len(survived)].tobytes() == survived.tobytes()


@pytest.mark.timeout(120)
def test_missing_segment_refuses_to_start(pristine, tmp_path):
    with copy_pristine(pristine, tmp_path, "gap") as harness:
        segments = list_segments(harness.wal_dir)
        segments[1][1].unlink()
        before = wal_files(harness)
        log = refused(harness)
        assert f"WAL corruption in {segments[2][1]}" in log and "missing segment" in log
        assert f"seq {segments[1][0]} was expected" in log
        assert wal_files(harness) == before


@pytest.mark.timeout(300)
def test_async_durability_sigkill_cycles_recover_exactly(tmp_path):
    with EngineHarness(tmp_path, "async", durability="async") as harness:
        received, submitted = crash_cycles(harness, 4, Flow(seed=9), random.Random(13))
    assert_exact_recovery(harness, received, submitted)


@pytest.mark.timeout(120)
def test_snapshot_ahead_of_the_wal_refuses_in_sync_durability(pristine, tmp_path):
    with copy_pristine(pristine, tmp_path, "ahead") as harness:
        harness.stop(harness.start_up())  # the clean stop writes a snapshot at the last seq
        assert [path.name for path in harness.snapshot_dir.iterdir()] == [
            f"snap-{PRISTINE_COMMANDS:020d}.snap"]
        _, last = list_segments(harness.wal_dir)[-1]
        os.truncate(last, last.stat().st_size - 50)  # the WAL now ends before the snapshot
        log = refused(harness)
        assert (f"the WAL in {harness.wal_dir} ends at seq {PRISTINE_COMMANDS - 1}: records "
                f"{PRISTINE_COMMANDS}..{PRISTINE_COMMANDS} are missing from the WAL") in log


@pytest.mark.timeout(120)
def test_failed_snapshot_is_logged_and_acknowledgements_go_on(pristine, tmp_path):
    with copy_pristine(pristine, tmp_path, "snapfail") as harness:
        process = harness.start_up()
        harness.snapshot_dir.rmdir()
        harness.snapshot_dir.write_text("not a directory")  # every snapshot write now fails
        process.send_signal(signal.SIGUSR1)  # snapshot request
        deadline = time.monotonic() + 10
        while f"snapshot at seq {PRISTINE_COMMANDS} failed" not in harness.log_text():
            assert time.monotonic() < deadline and process.poll() is None, harness.log_text()[-2000:]
            time.sleep(0.05)
        submit_and_check(harness, 30, PRISTINE_COMMANDS + 1)
        assert process.poll() is None and harness.link.engine_up()
        harness.stop(process)  # the final snapshot fails too: logged, clean exit
        assert f"snapshot at seq {PRISTINE_COMMANDS + 30} failed" in harness.log_text()
        assert len(WalReader(harness.wal_dir).read()) == PRISTINE_COMMANDS + 30
        assert harness.snapshot_dir.read_text() == "not a directory"
