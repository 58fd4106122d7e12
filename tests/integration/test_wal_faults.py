"""WAL under real faults: a full file system, a file-size limit, a killed writer.

Each fault must end in ``WalWriteError`` (or a crash), a stopped writer, and a WAL whose
readable records are exactly a prefix of what was appended: nothing written after the
failure may read back as valid, and recovery truncates any partial record.
"""

from __future__ import annotations

import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tmpfs import small_tmpfs as mounted_tmpfs  # noqa: E402

from numbex.engine.records import COMMAND
from numbex.engine.wal import RECORD_BYTES, WalReader, WalWriteError, WalWriter, list_segments, prune_segments

GROUP = 100


def make_commands(first_seq: int, count: int) -> np.ndarray:
    commands = np.zeros(count, COMMAND)
    seqs = np.arange(first_seq, first_seq + count, dtype=np.uint64)
    commands["seq"] = seqs
    commands["ts_ns"] = seqs.astype(np.int64) * 1000
    commands["order_id"] = seqs * 3 + 1
    commands["price"] = seqs.astype(np.int64) % 1000
    commands["qty"] = 1
    commands["op"] = 1
    return commands


def assert_prefix_of_appended(directory, at_least: int) -> int:
    """Every readable record is the appended one, seqs 1..n without a hole; return n."""
    commands = WalReader(directory).read()
    count = len(commands)
    assert count >= at_least
    assert commands.tobytes() == make_commands(1, count).tobytes()
    return count


@pytest.fixture
def small_tmpfs(tmp_path):
    with mounted_tmpfs(tmp_path / "tmpfs", "1m") as mount_point:
        yield mount_point


def test_full_tmpfs_stops_the_writer(small_tmpfs):
    directory = small_tmpfs / "wal"
    writer = WalWriter(directory, 256 << 10)
    failure = None
    for _ in range(200):  # 1 MiB / (100 x 128 bytes) is about 93 groups
        try:
            writer.append(make_commands(writer.next_seq, GROUP))
            writer.commit()
        except WalWriteError as error:
            failure = error
            break
    assert failure is not None, "the 1 MiB tmpfs never filled up"
    assert failure.errno == errno.ENOSPC and "not durable" in str(failure)
    durable = writer.durable_seq
    assert writer.poisoned and failure.seq == durable + 1
    sizes = {path.name: path.stat().st_size for _, path in list_segments(directory)}
    with pytest.raises(WalWriteError, match="stopped by an earlier failure"):
        writer.append(make_commands(writer.next_seq, 1))
    writer.close()
    assert {path.name: path.stat().st_size for _, path in list_segments(directory)} == sizes
    assert assert_prefix_of_appended(directory, durable) == durable  # the failed group was cut off

    # the operator frees space (segments covered by a snapshot) and the WAL continues
    reopened = WalWriter(directory, 256 << 10)
    assert reopened.next_seq == durable + 1
    assert prune_segments(directory, durable - 1)
    reopened.append(make_commands(durable + 1, GROUP))
    assert reopened.commit() == durable + GROUP
    reopened.close()


FILE_SIZE_CHILD = r"""
import json, os, resource, signal, sys
from numbex.engine.wal import WalWriter, WalWriteError

directory, limit, cleanup = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "cleanup"
sys.path.insert(0, sys.argv[4])
from test_wal_faults import make_commands  # the records the test checks

writer = WalWriter(directory, 1 << 20)
writer.append(make_commands(1, 7))  # compiles or loads the kernels before the limit
writer.commit()
if not cleanup:
    def refuse(descriptor, length):
        raise OSError(5, "ftruncate refused by the test")
    os.ftruncate = refuse
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
result = {}
for _ in range(10_000):
    try:
        writer.append(make_commands(writer.next_seq, 7))
        writer.commit()
    except WalWriteError as error:
        result = {"errno": error.errno, "message": str(error), "durable": writer.durable_seq}
        break
path = writer.segment_path
result["size_after_failure"] = os.path.getsize(path)
try:
    writer.append(make_commands(writer.next_seq, 7))
except WalWriteError:
    result["second_append_refused"] = True
result["size_after_retry"] = os.path.getsize(path)
print(json.dumps(result))
"""


@pytest.mark.parametrize("cleanup", ["cleanup", "no-cleanup"])
def test_file_size_limit_partial_write(tmp_path, cleanup):
    limit = 50_000
    group_bytes = 7 * RECORD_BYTES
    groups = limit // group_bytes  # whole groups that fit; the next one is cut short
    cut_at = limit - groups * group_bytes
    whole, torn = divmod(cut_at, RECORD_BYTES)
    assert 0 < whole < 7 and torn > 0, "limit must tear a record inside a group"
    child = subprocess.run([sys.executable, "-c", FILE_SIZE_CHILD, str(tmp_path), str(limit), cleanup,
                            str(Path(__file__).parent)],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["errno"] == errno.EFBIG
    assert result["durable"] == groups * 7 and result["second_append_refused"]
    assert result["size_after_retry"] == result["size_after_failure"]
    if cleanup == "cleanup":
        assert result["size_after_failure"] == groups * group_bytes  # the torn group was cut off
        assert "partial record" not in result["message"]
    else:
        assert result["size_after_failure"] == limit  # a torn record is left on disk
        assert "partial record may remain" in result["message"]
    reopened = WalWriter(tmp_path, 1 << 20)
    report = reopened.recovery
    if cleanup == "cleanup":
        assert report.truncations == () and reopened.next_seq == groups * 7 + 1
    else:
        # whole records of the failed group reached the file (never acknowledged);
        # the next one is torn and truncated
        (cut,) = report.truncations
        assert cut.torn_tail and cut.offset == (groups * 7 + whole) * RECORD_BYTES
        assert cut.dropped_bytes == torn
        assert reopened.next_seq == groups * 7 + whole + 1
    reopened.append(make_commands(reopened.next_seq, 3))
    reopened.close()
    assert assert_prefix_of_appended(tmp_path, result["durable"] + 3) == reopened.last_seq


KILLED_CHILD = r"""
import sys
import numpy as np
from numbex.engine.records import COMMAND
from numbex.engine.wal import WalWriter

writer = WalWriter(sys.argv[1], 64 * 128 * 5)
for _ in range(1_000_000):
    first = writer.next_seq
    commands = np.zeros(64, COMMAND)
    seqs = np.arange(first, first + 64, dtype=np.uint64)
    commands["seq"] = seqs
    commands["ts_ns"] = seqs.astype(np.int64) * 1000
    commands["order_id"] = seqs * 3 + 1
    commands["price"] = seqs.astype(np.int64) % 1000
    commands["qty"] = 1
    commands["op"] = 1
    writer.append(commands)
    print(writer.commit(), flush=True)
"""


def test_killed_writer_loses_nothing_acknowledged(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(tmp_path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    acknowledged = 0
    deadline = time.monotonic() + 60
    try:
        while acknowledged < 64 * 40 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            acknowledged = int(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    assert acknowledged >= 64 * 40, "the child did not get far enough"
    writer = WalWriter(tmp_path, 64 * 128 * 5)
    # a kill in the middle of a write may leave part of a group: whole records of it stay
    assert writer.last_seq >= acknowledged
    writer.close()
    assert assert_prefix_of_appended(tmp_path, acknowledged) == writer.last_seq
