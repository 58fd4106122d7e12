"""WAL format, group commit, segments, recovery rules and replay (numbex.engine.wal)."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import crc32c
import numpy as np
import pytest

from numbex.engine import wal_kernels
from numbex.engine.records import COMMAND, WAL_COMMAND, WAL_COMMAND_RECORD
from numbex.engine.wal import (
    RECORD_BYTES,
    WalCorruptionError,
    WalReader,
    WalWriteError,
    WalWriter,
    list_segments,
    open_wal,
    prune_segments,
    scan_wal,
)

KERNELS = ["table"] + (["hardware"] if wal_kernels.hardware_crc_available() else [])


def make_commands(first_seq: int, count: int) -> np.ndarray:
    commands = np.zeros(count, COMMAND)
    seqs = np.arange(first_seq, first_seq + count, dtype=np.uint64)
    commands["seq"] = seqs
    commands["ts_ns"] = 1_700_000_000_000_000_000 + seqs.astype(np.int64) * 1000
    commands["order_id"] = seqs * 7 + 1
    commands["client_ref"] = seqs ^ np.uint64(0xDEADBEEF)
    commands["price"] = 10_000 - seqs.astype(np.int64)
    commands["qty"] = seqs.astype(np.int64) % 97 + 1
    commands["account"] = seqs % 5
    commands["session"] = (1 << 16) | 3
    commands["symbol"] = seqs % 3
    commands["op"] = seqs % 5 + 1
    commands["side"] = seqs % 2
    return commands


def write_batches(directory, sizes, segment_bytes, crc="auto"):
    with WalWriter(directory, segment_bytes, crc=crc) as writer:
        for size in sizes:
            writer.append(make_commands(writer.next_seq, size))
            assert writer.commit() == writer.last_seq
        return writer.last_seq


def last_segment(directory):
    return list_segments(directory)[-1][1]


# ---------------------------------------------------------------- format and kernels
def test_command_record_layout_is_pinned():
    assert WAL_COMMAND_RECORD.itemsize == 128 == RECORD_BYTES
    offsets = {name: WAL_COMMAND_RECORD.fields[name][1] for name in WAL_COMMAND_RECORD.names}
    assert offsets == {"length": 0, "type": 4, "seq": 8, "ts_ns": 16, "command": 24, "crc": 120, "pad": 124}
    assert WAL_COMMAND_RECORD.fields["command"][0] == COMMAND


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rows", [0, 1, 3, 4, 5, 9, 64])
def test_crc_kernels_agree_with_crc32c_package(kernel, rows):
    generator = np.random.default_rng(rows)
    data = generator.integers(0, 2**64, size=(rows, 16), dtype=np.uint64)
    out = np.zeros(rows, np.uint64)
    wal_kernels.select_crc_kernels(kernel).crc_rows(data, 15, out)
    expected = [crc32c.crc32c(data[row].tobytes()[:120]) for row in range(rows)]
    assert out.tolist() == expected


def test_crc_of_the_standard_check_string():
    # CRC32C("123456789") = 0xE3069283; eight bytes of it make one word.
    word = np.frombuffer(b"12345678", np.uint64).reshape(1, 1)
    out = np.zeros(1, np.uint64)
    wal_kernels.select_crc_kernels("table").crc_rows(word, 1, out)
    assert int(out[0]) == crc32c.crc32c(b"12345678")
    assert crc32c.crc32c(b"123456789") == 0xE3069283


def test_unknown_kernel_name_is_refused():
    with pytest.raises(ValueError, match="CRC32C kernel"):
        wal_kernels.select_crc_kernels("fast")


@pytest.mark.parametrize("kernel", KERNELS)
def test_record_bytes_on_disk(tmp_path, kernel):
    commands = make_commands(1, 3)
    write_batches(tmp_path, [3], 1 << 20, crc=kernel)
    raw = last_segment(tmp_path).read_bytes()
    assert len(raw) == 3 * 128
    records = np.frombuffer(raw, WAL_COMMAND_RECORD)
    assert records["length"].tolist() == [96] * 3
    assert records["type"].tolist() == [WAL_COMMAND] * 3
    assert records["seq"].tolist() == [1, 2, 3]
    assert records["ts_ns"].tolist() == commands["ts_ns"].tolist()
    assert records["command"].tobytes() == commands.tobytes()
    assert records["pad"].tolist() == [0, 0, 0]
    for index in range(3):
        assert records["crc"][index] == crc32c.crc32c(raw[index * 128:index * 128 + 120])


def test_table_kernel_without_jit_matches(tmp_path):
    script = (
        "import numpy as np, crc32c, sys\n"
        "from numbex.engine import wal_kernels\n"
        "assert not wal_kernels.hardware_crc_available()\n"
        "data = np.random.default_rng(5).integers(0, 2**64, size=(6, 16), dtype=np.uint64)\n"
        "out = np.zeros(6, np.uint64)\n"
        "wal_kernels.select_crc_kernels().crc_rows(data, 15, out)\n"
        "assert out.tolist() == [crc32c.crc32c(row.tobytes()[:120]) for row in data]\n"
        "from numbex.engine.wal import WalWriter, WalReader\n"
        "from numbex.engine.records import COMMAND\n"
        "c = np.zeros(5, COMMAND); c['seq'] = np.arange(1, 6); c['price'] = 42\n"
        f"w = WalWriter({str(tmp_path)!r}, 1 << 20); w.append(c); w.close()\n"
        f"assert WalReader({str(tmp_path)!r}).read().tobytes() == c.tobytes()\n"
        "print('ok')\n"
    )
    environment = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ---------------------------------------------------------------- writing and reading
@pytest.mark.parametrize("kernel", KERNELS)
def test_round_trip_over_many_segments(tmp_path, kernel):
    generator = np.random.default_rng(11)
    sizes = generator.integers(1, 40, size=60).tolist()
    segment_bytes = 30 * RECORD_BYTES
    last = write_batches(tmp_path, sizes, segment_bytes, crc=kernel)
    assert last == sum(sizes)
    segments = list_segments(tmp_path)
    assert len(segments) > 5
    # segments are named by their first seq, and a group never spans two segments
    group_size_by_start = dict(zip((np.cumsum([0] + sizes[:-1]) + 1).tolist(), sizes))
    for first_seq, path in segments:
        records = np.frombuffer(path.read_bytes(), WAL_COMMAND_RECORD)
        assert int(records["seq"][0]) == first_seq
        assert first_seq in group_size_by_start
        # only a group larger than the limit on its own makes a segment pass it
        assert path.stat().st_size <= segment_bytes or len(records) == group_size_by_start[first_seq]
    commands = WalReader(tmp_path, crc=kernel).read()
    assert commands.dtype == COMMAND and commands.flags.c_contiguous
    assert commands.tobytes() == make_commands(1, last).tobytes()


def test_group_larger_than_a_segment_gets_its_own_segment(tmp_path):
    write_batches(tmp_path, [2, 10, 1], 4 * RECORD_BYTES)
    sizes = [path.stat().st_size // RECORD_BYTES for _, path in list_segments(tmp_path)]
    assert sizes == [2, 10, 1]


def test_batches_from_a_seq_and_batch_size(tmp_path):
    write_batches(tmp_path, [25] * 8, 40 * RECORD_BYTES)
    reader = WalReader(tmp_path)
    batches = list(reader.batches(from_seq=57, batch=16))
    assert all(len(batch) <= 16 for batch in batches)
    seqs = np.concatenate([batch["seq"] for batch in batches])
    assert seqs.tolist() == list(range(57, 201))
    assert list(reader.batches(from_seq=201)) == []


def test_reopen_continues_the_sequence(tmp_path):
    write_batches(tmp_path, [5, 5], 8 * RECORD_BYTES)
    with WalWriter(tmp_path, 8 * RECORD_BYTES) as writer:
        assert writer.next_seq == 11 and writer.durable_seq == 10
        assert writer.recovery.last_seq == 10 and writer.recovery.truncations == ()
        with pytest.raises(ValueError, match="seq 12, expected 11"):
            writer.append(make_commands(12, 3))
        writer.append(make_commands(11, 4))
        writer.commit()
    assert WalReader(tmp_path).read()["seq"].tolist() == list(range(1, 15))


def test_non_contiguous_batches_are_accepted(tmp_path):
    every_other = make_commands(1, 10)
    every_other["seq"][::2] = np.arange(1, 6)
    strided = every_other[::2]
    assert not strided.flags.c_contiguous
    with WalWriter(tmp_path, 1 << 20) as writer:
        writer.append(strided)
        wrapped = np.zeros(3, WAL_COMMAND_RECORD)
        wrapped["command"] = make_commands(6, 3)
        writer.append(wrapped["command"])  # a field view: stride 128
    assert WalReader(tmp_path).read().tobytes() == np.concatenate([strided, make_commands(6, 3)]).tobytes()


def test_seq_gaps_inside_a_batch_are_refused_before_writing(tmp_path):
    with WalWriter(tmp_path, 1 << 20) as writer:
        broken = make_commands(1, 5)
        broken["seq"][3] = 9
        with pytest.raises(ValueError, match="command 3 of the batch has seq 9, expected 4"):
            writer.append(broken)
        assert writer.last_seq == 0 and not writer.poisoned
        writer.append(make_commands(1, 2))
    assert WalReader(tmp_path).read()["seq"].tolist() == [1, 2]


def test_first_seq_of_an_empty_wal_and_bad_arguments(tmp_path):
    with WalWriter(tmp_path / "fresh", 1 << 20, first_seq=1000) as writer:
        writer.append(make_commands(1000, 2))
    assert [seq for seq, _ in list_segments(tmp_path / "fresh")] == [1000]
    with pytest.raises(TypeError, match="COMMAND"):
        WalWriter(tmp_path / "other", 1 << 20).append(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="durability"):
        WalWriter(tmp_path / "other", 1 << 20, durability="never")
    with pytest.raises(ValueError, match="segment_bytes"):
        WalWriter(tmp_path / "other", 0)


def test_async_durability_syncs_on_the_interval(tmp_path):
    writer = WalWriter(tmp_path, 1 << 20, durability="async", async_interval_ms=5)
    writer.append(make_commands(1, 3))
    assert writer.durable_seq == 0 and writer.sync_due_ns == 0
    assert writer.maybe_sync(1_000_000_000) == 3  # first sync is immediate
    writer.append(make_commands(4, 2))
    assert writer.commit(now_ns=1_004_000_000) == 3  # 4 ms later: not yet
    assert writer.sync_due_ns == 1_005_000_000
    assert writer.commit(now_ns=1_005_000_000) == 5
    assert writer.sync_due_ns is None
    writer.append(make_commands(6, 1))
    writer.close()  # close syncs what is pending
    assert writer.durable_seq == 6


def test_rolling_syncs_the_previous_segment_in_async_mode(tmp_path):
    writer = WalWriter(tmp_path, 4 * RECORD_BYTES, durability="async", async_interval_ms=10_000)
    writer.append(make_commands(1, 4))
    writer.maybe_sync(0)
    writer.append(make_commands(5, 2))  # rolls: records 1-4 were synced, 5-6 are not
    assert writer.durable_seq == 4
    writer.close()


def test_prune_segments_keeps_uncovered_and_the_last(tmp_path):
    write_batches(tmp_path, [10] * 5, 10 * RECORD_BYTES)
    assert [seq for seq, _ in list_segments(tmp_path)] == [1, 11, 21, 31, 41]
    deleted = prune_segments(tmp_path, 25)
    assert [path.name for path in deleted] == ["wal-00000000000000000001.log", "wal-00000000000000000011.log"]
    prune_segments(tmp_path, 10**9)
    assert [seq for seq, _ in list_segments(tmp_path)] == [41]  # the segment being written stays
    assert WalReader(tmp_path).read(from_seq=41)["seq"].tolist() == list(range(41, 51))
    with pytest.raises(WalCorruptionError, match="starts at seq 41"):
        WalReader(tmp_path).read(from_seq=1)


def test_writer_whose_descriptor_fails_is_stopped(tmp_path):
    writer = WalWriter(tmp_path, 1 << 20)
    writer.append(make_commands(1, 4))
    writer.commit()
    size = last_segment(tmp_path).stat().st_size
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, writer._descriptor)  # the same descriptor now fails every write with ENOSPC
    os.close(full)
    with pytest.raises(WalWriteError, match="records from seq 5 on are not durable") as caught:
        writer.append(make_commands(5, 3))
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value, OSError)
    assert writer.poisoned and writer.durable_seq == 4
    for call in (lambda: writer.append(make_commands(5, 1)), writer.commit, writer.sync):
        with pytest.raises(WalWriteError, match="stopped by an earlier failure"):
            call()
    writer.close()
    assert last_segment(tmp_path).stat().st_size == size
    reopened = WalWriter(tmp_path, 1 << 20)
    assert reopened.next_seq == 5
    reopened.close()


def test_async_failure_reports_unsynced_records_as_not_durable(tmp_path):
    writer = WalWriter(tmp_path, 1 << 20, durability="async", async_interval_ms=1000)
    writer.append(make_commands(1, 3))
    writer.maybe_sync(0)
    writer.append(make_commands(4, 2))  # written, not synced
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, writer._descriptor)
    os.close(full)
    with pytest.raises(WalWriteError, match="records from seq 4 on are not durable") as caught:
        writer.append(make_commands(6, 1))
    assert caught.value.seq == 4 and writer.durable_seq == 3
    writer.close()


# ---------------------------------------------------------------- recovery
def test_torn_tail_at_every_byte_of_the_last_record(tmp_path):
    write_batches(tmp_path, [3, 2], 1 << 20)
    segment = last_segment(tmp_path)
    original = segment.read_bytes()
    record_start = 4 * RECORD_BYTES
    for cut in range(record_start + 1, record_start + RECORD_BYTES):
        segment.write_bytes(original[:cut])
        report = open_wal(tmp_path)
        assert segment.stat().st_size == record_start, cut
        assert report.last_seq == 4 and report.next_seq == 5
        assert len(report.truncations) == 1 and report.truncations[0].torn_tail
        assert report.truncations[0].dropped_bytes == cut - record_start
    segment.write_bytes(original[:record_start])
    assert open_wal(tmp_path).truncations == ()


def test_crc_bad_final_records_and_zero_fill_are_a_torn_tail(tmp_path):
    write_batches(tmp_path, [6], 1 << 20)
    segment = last_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[4 * RECORD_BYTES + 50] ^= 0x10  # record 5 damaged
    data[5 * RECORD_BYTES:] = bytes(RECORD_BYTES)  # record 6 never reached the disk
    segment.write_bytes(bytes(data) + bytes(300))
    report = open_wal(tmp_path)
    assert report.last_seq == 4
    assert "CRC32C mismatch" in report.truncations[0].reason
    assert WalReader(tmp_path).read()["seq"].tolist() == [1, 2, 3, 4]


def test_bit_flip_in_the_middle_is_refused_then_overridden(tmp_path):
    write_batches(tmp_path, [10] * 4, 20 * RECORD_BYTES)
    first = list_segments(tmp_path)[0][1]
    data = bytearray(first.read_bytes())
    data[6 * RECORD_BYTES + 40] ^= 0x04  # payload of seq 7, in a segment with valid records after
    first.write_bytes(bytes(data))
    with pytest.raises(WalCorruptionError) as caught:
        open_wal(tmp_path)
    message = str(caught.value)
    assert first.name in message and f"byte offset {6 * RECORD_BYTES}" in message and "seq 7" in message
    assert caught.value.offset == 6 * RECORD_BYTES and caught.value.seq == 7
    with pytest.raises(WalCorruptionError):
        WalWriter(tmp_path, 20 * RECORD_BYTES)
    with pytest.raises(WalCorruptionError, match="seq 7"):
        list(WalReader(tmp_path).batches())  # the reader yields seqs 1-6 first, then refuses
    assert first.read_bytes() == bytes(data)  # refusing changes nothing
    writer = WalWriter(tmp_path, 20 * RECORD_BYTES, allow_corruption=True)
    report = writer.recovery
    assert report.last_seq == 6 and not report.truncations[0].torn_tail
    assert report.truncations[0].saved_to.read_bytes() == bytes(data[6 * RECORD_BYTES:])
    assert [path.name for path in report.dropped_segments] == ["wal-00000000000000000021.log.dropped"]
    writer.append(make_commands(7, 2))
    writer.close()
    assert WalReader(tmp_path).read()["seq"].tolist() == list(range(1, 9))


def test_damage_at_the_end_of_an_earlier_segment_is_corruption(tmp_path):
    write_batches(tmp_path, [5, 5], 5 * RECORD_BYTES)
    first = list_segments(tmp_path)[0][1]
    first.write_bytes(first.read_bytes()[:-10])
    with pytest.raises(WalCorruptionError, match="not the last segment"):
        scan_wal(tmp_path)


def test_missing_segment_is_refused(tmp_path):
    write_batches(tmp_path, [5, 5, 5], 5 * RECORD_BYTES)
    list_segments(tmp_path)[1][1].unlink()
    with pytest.raises(WalCorruptionError, match="starts at seq 11 but seq 6 was expected") as caught:
        open_wal(tmp_path)
    assert "wal-00000000000000000011.log" in str(caught.value) and "missing segment" in str(caught.value)
    with pytest.raises(WalCorruptionError, match="missing segment"):
        WalReader(tmp_path).read()
    report = open_wal(tmp_path, allow_corruption=True)
    assert report.last_seq == 5 and len(report.dropped_segments) == 1


def test_valid_crc_with_a_seq_gap_is_refused(tmp_path):
    write_batches(tmp_path, [4], 1 << 20)
    segment = last_segment(tmp_path)
    records = np.frombuffer(segment.read_bytes(), WAL_COMMAND_RECORD).copy()
    records["seq"][1] = records["command"]["seq"][1] = 7
    records["crc"][1] = crc32c.crc32c(records[1:2].tobytes()[:120])
    segment.write_bytes(records.tobytes())
    with pytest.raises(WalCorruptionError, match="seq 7 where 2 was expected"):
        open_wal(tmp_path)


def test_segment_whose_name_disagrees_with_its_records(tmp_path):
    write_batches(tmp_path, [3], 1 << 20)
    segment = last_segment(tmp_path)
    segment.rename(segment.with_name("wal-00000000000000000002.log"))
    with pytest.raises(WalCorruptionError, match="seq 1 where 2 was expected"):
        open_wal(tmp_path)


def test_empty_last_segment_is_continued(tmp_path):
    write_batches(tmp_path, [3], 1 << 20)
    (tmp_path / "wal-00000000000000000004.log").write_bytes(b"")
    with WalWriter(tmp_path, 1 << 20) as writer:
        assert writer.next_seq == 4 and writer.segment_path.name == "wal-00000000000000000004.log"
        writer.append(make_commands(4, 1))
    assert WalReader(tmp_path).read()["seq"].tolist() == [1, 2, 3, 4]


def test_scan_report_describes_without_changing(tmp_path):
    write_batches(tmp_path, [3], 1 << 20)
    segment = last_segment(tmp_path)
    segment.write_bytes(segment.read_bytes()[:-5])
    report = scan_wal(tmp_path)
    assert not report.repaired and segment.stat().st_size == 3 * RECORD_BYTES - 5
    text = "\n".join(report.describe())
    assert "torn tail to truncate" in text and "seq 3" in text
    assert json.dumps(report.last_seq) == "2"


def test_every_single_bit_flip_is_classified(tmp_path):
    """A flipped bit is refused, or is a torn tail when in the final record, or lies in pad."""
    write_batches(tmp_path, [5, 5, 5], 5 * RECORD_BYTES)
    segments = [path for _, path in list_segments(tmp_path)]
    originals = [path.read_bytes() for path in segments]
    generator = np.random.default_rng(2024)
    outcomes = set()
    for _ in range(150):
        which = int(generator.integers(len(segments)))
        position = int(generator.integers(len(originals[which])))
        data = bytearray(originals[which])
        data[position] ^= 1 << int(generator.integers(8))
        segments[which].write_bytes(bytes(data))
        record, within = divmod(position, RECORD_BYTES)
        if within >= 124:
            assert scan_wal(tmp_path).truncations == ()  # pad: outside the CRC, ignored
            outcomes.add("pad")
        elif which == len(segments) - 1 and record == 4:
            (cut,) = scan_wal(tmp_path).truncations
            assert cut.torn_tail and cut.offset == 4 * RECORD_BYTES
            outcomes.add("torn tail")
        else:
            with pytest.raises(WalCorruptionError) as caught:
                scan_wal(tmp_path)
            assert caught.value.path == segments[which] and caught.value.offset == record * RECORD_BYTES
            outcomes.add("refused")
        segments[which].write_bytes(originals[which])
    assert outcomes == {"pad", "torn tail", "refused"}


# ---------------------------------------------------------------- numbex wal dump
def test_wal_dump_prints_records_and_reports_damage(tmp_path, capsys):
    from numbex.cli import main

    write_batches(tmp_path, [4, 4], 4 * RECORD_BYTES)
    assert main(["wal", "dump", str(tmp_path), "--json", "--from", "3", "--count", "4"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["seq"] for line in lines[:-1]] == [3, 4, 5, 6]
    assert lines[0]["order_id"] == 22 and lines[0]["op"] == "MASS_CANCEL" and lines[0]["side"] == "SELL"
    assert lines[-1]["wal"]["last_seq"] == 8 and lines[-1]["wal"]["corruption"] is None

    segment = last_segment(tmp_path)
    segment.write_bytes(segment.read_bytes()[:-3])
    assert main(["wal", "dump", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 + 7  # column titles, then seqs 1-7
    assert "torn tail" in captured.err and "seq 8" in captured.err
    assert segment.stat().st_size == 4 * RECORD_BYTES - 3  # dump never repairs

    first = list_segments(tmp_path)[0][1]
    data = bytearray(first.read_bytes())
    data[RECORD_BYTES + 60] ^= 0xFF
    first.write_bytes(bytes(data))
    assert main(["wal", "dump", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1 + 1 and "CORRUPTION" in captured.err and "seq 2" in captured.err
    assert main(["wal", "dump", str(tmp_path / "missing")]) == 2


def test_bench_wal_runs_briefly(tmp_path, capsys):
    from numbex.cli import main

    arguments = ["bench", "wal", "--json", "--seconds", "0.05", "--groups", "1,8",
                 "--data-dir", str(tmp_path / "var"), "--dir", str(tmp_path / "var" / "bench")]
    assert main(arguments) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["group"] for row in result["results"]] == [1, 8]
    for row in result["results"]:
        assert row["groups_each"] > 0 and row["raw_records_per_second"] > 0 and row["wal_records_per_second"] > 0
    assert result["same_filesystem_as_data_dir"] is True
    assert list((tmp_path / "var" / "bench").iterdir()) == []  # the temporary directory is removed
    assert main(["bench", "wal", "--groups", "0"]) == 2


def test_warm_up_writes_nothing(tmp_path):
    writer = WalWriter(tmp_path, 1 << 20, "sync", 5)
    files = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    writer.warm_up()
    assert writer.last_seq == 0
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == files
    writer.close()
