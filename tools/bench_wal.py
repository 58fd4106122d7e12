"""``numbex bench wal``: WAL group-commit throughput against a raw append-and-fdatasync floor.

For each group size (default 1, 64 and 1024 records) two loops run for about
``--seconds`` each (default 2), in the same directory, alternating group by group so
that a shared disk whose fdatasync latency drifts by 10-100x within seconds (as on
this development VM) slows both alike:

* raw: ``os.write`` of ``group x 128`` bytes (a prebuilt buffer, the size of the WAL
  records) then ``os.fdatasync``, on one appended file: no encoding at all;
* WAL: ``WalWriter.append`` (encode, CRC32C, one write) then ``commit()`` in sync
  durability (fdatasync per group), with the configured segment size.

Stamping seqs into the next batch (the sequencer's job) is outside the timed region;
everything else is inside.  Rates are records per second over all timed groups; the
ratio WAL/raw of those rates is the figure of merit (target >= 0.8).  The median time
per group of each loop, and their ratio, are printed too: they are less sensitive to
the occasional multi-millisecond fdatasync.  The directory is a fresh temporary directory under
``--dir`` (default ``<data_dir>/bench``, data_dir ``./var``), since fdatasync cost is a
property of the file system: the output says whether it is the data dir's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_RATIO = 0.8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each measurement")
    parser.add_argument("--groups", default="1,64,1024", help="comma-separated group sizes in records")
    parser.add_argument("--data-dir", default="./var", help="the data directory (default ./var)")
    parser.add_argument("--dir", default=None, help="parent of the temporary directory "
                        "(default: <data-dir>/bench)")
    parser.add_argument("--segment-bytes", type=int, default=256 << 20, help="WAL segment size")
    parser.add_argument("--crc", default="auto", choices=("auto", "hardware", "table"),
                        help="CRC32C kernel")


def run(args: argparse.Namespace) -> int:
    try:
        groups = [int(part) for part in args.groups.split(",") if part.strip()]
    except ValueError:
        print(f"numbex bench wal: --groups must be integers, got {args.groups!r}", file=sys.stderr)
        return 2
    if not groups or min(groups) <= 0 or args.seconds <= 0:
        print("numbex bench wal: group sizes, and --seconds must be positive", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir)
    parent = Path(args.dir) if args.dir else data_dir / "bench"
    parent.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="wal-", dir=parent))
    try:
        result = measure(directory, groups, args.seconds, args.segment_bytes, args.crc)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    result["directory"] = str(directory.resolve())
    result["data_dir"] = str(data_dir.resolve())
    result["same_filesystem_as_data_dir"] = os.stat(parent).st_dev == os.stat(data_dir).st_dev
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


def measure(directory: Path, groups: list[int], seconds: float, segment_bytes: int, crc: str) -> dict:
    """Run every measurement; return a JSON-able result."""
    import numpy as np

    from numbex.engine.wal import RECORD_BYTES

    rows = []
    kernel = None
    for group in groups:
        raw = RawLoop(directory / f"raw-{group}.bin", group * RECORD_BYTES)
        wal = WalLoop(directory / f"wal-{group}", group, segment_bytes, crc)
        raw_ns: list[int] = []
        wal_ns: list[int] = []
        try:
            end = time.perf_counter_ns() + int(2 * seconds * 1e9)
            while time.perf_counter_ns() < end:  # one group each, alternating
                raw_ns.append(raw.step())
                wal_ns.append(wal.step())
        finally:
            raw.close()
            wal.close()
        kernel = wal.kernel
        raw_rate = group * len(raw_ns) / (sum(raw_ns) / 1e9)
        wal_rate = group * len(wal_ns) / (sum(wal_ns) / 1e9)
        raw_median, wal_median = float(np.median(raw_ns)), float(np.median(wal_ns))
        rows.append({"group": group, "groups_each": len(raw_ns),
                     "raw_records_per_second": raw_rate, "wal_records_per_second": wal_rate,
                     "ratio": wal_rate / raw_rate,
                     "raw_median_us_per_group": raw_median / 1e3, "wal_median_us_per_group": wal_median / 1e3,
                     "median_ratio": raw_median / wal_median,
                     "overhead_us_per_group": (wal_median - raw_median) / 1e3})
    return {"seconds_per_measurement": seconds, "segment_bytes": segment_bytes,
            "record_bytes": RECORD_BYTES, "crc_kernel": kernel, "target_ratio": TARGET_RATIO,
            "encode_ns_per_record": encode_cost(crc), "results": rows,
            "meets_target": all(row["ratio"] >= TARGET_RATIO for row in rows)}


class RawLoop:
    """``os.write`` of a prebuilt ``group_bytes`` buffer + ``os.fdatasync`` on one file."""

    def __init__(self, path: Path, group_bytes: int) -> None:
        self.path = path
        self.buffer = memoryview(bytes(range(256)) * (group_bytes // 256 + 1))[:group_bytes]
        self.descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.step()  # first write and sync outside the measurement

    def step(self) -> int:
        """Write and sync one group; return the nanoseconds it took."""
        started = time.perf_counter_ns()
        written = os.write(self.descriptor, self.buffer)
        os.fdatasync(self.descriptor)
        elapsed = time.perf_counter_ns() - started
        if written != len(self.buffer):
            raise OSError(f"short write of {written} bytes in the raw loop")
        return elapsed

    def close(self) -> None:
        os.close(self.descriptor)
        self.path.unlink(missing_ok=True)


class WalLoop:
    """``WalWriter.append`` + ``commit()`` (sync durability) of one group."""

    def __init__(self, directory: Path, group: int, segment_bytes: int, crc: str) -> None:
        import numpy as np

        from numbex.engine.records import COMMAND
        from numbex.engine.wal import WalWriter

        self.directory = directory
        self.template = np.zeros(group, COMMAND)
        self.template["op"] = 1
        self.template["qty"] = 1
        self.template["price"] = np.arange(group) % 500 + 1000
        self.offsets = np.arange(group, dtype=np.uint64)
        self.writer = WalWriter(directory, segment_bytes, durability="sync", crc=crc)
        self.kernel = self.writer.crc_kernel
        self.step()  # compiles or loads the kernels outside the measurement

    def step(self) -> int:
        """Stamp the next batch (the sequencer's part, not timed), append and commit it."""
        import numpy as np

        np.add(self.offsets, np.uint64(self.writer.next_seq), out=self.template["seq"])
        self.template["ts_ns"] = time.time_ns()
        started = time.perf_counter_ns()
        self.writer.append(self.template)
        self.writer.commit()
        return time.perf_counter_ns() - started

    def close(self) -> None:
        self.writer.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def encode_cost(crc: str, records: int = 1024, repeats: int = 200) -> float:
    """Nanoseconds per record to encode (fill + CRC32C) a batch, without any I/O."""
    import numpy as np

    from numbex.engine import wal_kernels

    kernels = wal_kernels.select_crc_kernels(crc)
    from numbex.engine.records import COMMAND

    commands = np.zeros(records, COMMAND)
    commands["seq"] = np.arange(1, records + 1, dtype=np.uint64)
    rows = np.empty((records, wal_kernels.RECORD_WORDS), np.uint64)
    kernels.encode_commands(commands, rows, np.uint64(1))
    started = time.perf_counter_ns()
    for _ in range(repeats):
        kernels.encode_commands(commands, rows, np.uint64(1))
    return (time.perf_counter_ns() - started) / (repeats * records)


def print_table(result: dict) -> None:
    print(f"WAL group commit, sync durability (fdatasync per group), {result['record_bytes']}-byte records")
    print(f"directory {result['directory']} (same file system as data dir {result['data_dir']}: "
          f"{'yes' if result['same_filesystem_as_data_dir'] else 'NO'})")
    print(f"CRC32C kernel: {result['crc_kernel']}, encode {result['encode_ns_per_record']:.1f} ns/record; "
          f"about {result['seconds_per_measurement']:g} s per measurement, raw and WAL alternating group by group")
    print(f"{'group':>6} {'raw rec/s':>12} {'WAL rec/s':>12} {'WAL/raw':>8}   "
          f"{'median us/group raw':>19} {'WAL':>9} {'ratio':>6} {'WAL extra us':>12}")
    for row in result["results"]:
        flag = "" if row["ratio"] >= result["target_ratio"] else "  below target"
        print(f"{row['group']:>6} {row['raw_records_per_second']:>12,.0f} {row['wal_records_per_second']:>12,.0f} "
              f"{row['ratio']:>8.2f}   {row['raw_median_us_per_group']:>19.1f} {row['wal_median_us_per_group']:>9.1f} "
              f"{row['median_ratio']:>6.2f} {row['overhead_us_per_group']:>12.1f}{flag}")
    print(f"target: WAL >= {result['target_ratio']:.0%} of raw at every group size: "
          f"{'met' if result['meets_target'] else 'NOT met'}")
