"""The write-ahead log: group commit into size-limited segments, and fast replay.

``WalWriter`` appends batches of COMMAND records: each batch (a group) is encoded in one
pass by a Numba kernel (header, payload, CRC32C per record, see ``wal_kernels``) into a
reused buffer and written with one ``os.write``; ``commit()`` makes it durable with
``os.fdatasync``.  Durability ``"sync"`` syncs on every commit; ``"async"`` syncs at
most every ``async_interval_ms`` (``maybe_sync(now_ns)``) and ``durable_seq`` says how
far the disk is.  The engine releases outputs for seq <= ``durable_seq`` only.

Segments are named by their first seq and rolled before a group would pass
``segment_bytes``; a group never spans segments (a group larger than the limit gets a
segment of its own).  Rolling syncs the old segment, then creates the new one and
fsyncs the directory.

A failed write or sync raises ``WalWriteError`` and stops the writer: every later call
raises, so the engine stops acknowledging and rejects with REASON_NOT_DURABLE until the
WAL is reopened.  The failed group is cut off the segment (``ftruncate`` to the group's
start) when possible; if that fails too, recovery truncates the torn tail on reopen.

``WalReader`` replays: each segment is mapped, verified (headers by a kernel, CRCs in
bulk) and decoded with one ``np.frombuffer`` over ``WAL_COMMAND_RECORD``.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from numbex.engine import wal_kernels
from numbex.engine.fileio import fsync_directory, write_all
from numbex.engine.records import COMMAND, WAL_COMMAND_RECORD
from numbex.engine.wal_kernels import select_crc_kernels
from numbex.engine.wal_recovery import RecoveryReport, Truncation, open_wal, prune_segments, scan_wal
from numbex.engine.wal_segments import (
    RECORD_BYTES,
    SegmentScan,
    WalCorruptionError,
    WalError,
    WalWriteError,
    list_segments,
    scan_segment,
    segment_name,
)

__all__ = [
    "RECORD_BYTES", "RecoveryReport", "SegmentScan", "Truncation", "WalCorruptionError",
    "WalError", "WalReader", "WalWriteError", "WalWriter", "list_segments", "open_wal",
    "prune_segments", "scan_wal",
]

DURABILITY_MODES = ("sync", "async")


class WalWriter:
    """Appends command batches to the WAL in ``directory`` (recovered on construction).

    Parameters
    ----------
    directory : path
        The WAL directory, created if missing.
    segment_bytes : int
        Roll to a new segment before a group would make the current one larger.
    durability : {"sync", "async"}
        ``commit()`` fdatasyncs every time, or at most every ``async_interval_ms``.
    async_interval_ms : int
        Longest time appended records may stay unsynced in async mode (given commits).
    allow_corruption : bool
        Operator override passed to recovery (``open_wal``).
    first_seq : int
        Seq of the first record when the directory holds no segment yet.
    crc : {"auto", "hardware", "table"}
        CRC32C kernel (``wal_kernels.select_crc_kernels``).
    """

    def __init__(self, directory: str | os.PathLike[str], segment_bytes: int,
                 durability: str = "sync", async_interval_ms: int = 5, *,
                 allow_corruption: bool = False, first_seq: int = 1, crc: str = "auto") -> None:
        if sys.byteorder != "little":
            raise RuntimeError("the WAL encoder needs a little-endian host")
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be 'sync' or 'async', got {durability!r}")
        if segment_bytes <= 0:
            raise ValueError(f"segment_bytes must be positive, got {segment_bytes}")
        if async_interval_ms < 0:
            raise ValueError(f"async_interval_ms must be >= 0, got {async_interval_ms}")
        if first_seq < 1:
            raise ValueError(f"first_seq must be >= 1, got {first_seq}")
        self._kernels = select_crc_kernels(crc)
        self.recovery: RecoveryReport = open_wal(directory, allow_corruption, crc)
        self._directory = self.recovery.directory
        self._segment_bytes = segment_bytes
        self._durability = durability
        self._interval_ns = async_interval_ms * 1_000_000
        self._next_seq = self.recovery.next_seq or first_seq
        self._durable_seq = self._next_seq - 1
        self._descriptor: int | None = None
        self._segment_path: Path | None = None
        self._segment_size = 0
        self._unsynced = False
        self._last_sync_ns: int | None = None
        self._error: WalWriteError | None = None
        self._rows = np.empty((0, wal_kernels.RECORD_WORDS), np.uint64)
        self._rows_bytes = memoryview(b"")
        if self.recovery.segments:
            last = self.recovery.segments[-1]
            self._descriptor = os.open(last.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            self._segment_path = last.path
            self._segment_size = last.valid_bytes

    # ------------------------------------------------------------------ state
    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def next_seq(self) -> int:
        """Seq the next appended command must carry."""
        return self._next_seq

    @property
    def last_seq(self) -> int:
        """Seq of the last appended record (written, maybe not yet durable)."""
        return self._next_seq - 1

    @property
    def durable_seq(self) -> int:
        """Every record with seq <= this is on disk (fdatasync returned)."""
        return self._durable_seq

    @property
    def poisoned(self) -> bool:
        """True after a failed write or sync: the writer refuses everything."""
        return self._error is not None

    @property
    def error(self) -> WalWriteError | None:
        return self._error

    @property
    def segment_path(self) -> Path | None:
        """The segment being written."""
        return self._segment_path

    @property
    def crc_kernel(self) -> str:
        return self._kernels.name

    @property
    def sync_due_ns(self) -> int | None:
        """Async mode: monotonic time at which ``maybe_sync`` will sync; None if all durable."""
        if not self._unsynced:
            return None
        return 0 if self._last_sync_ns is None else self._last_sync_ns + self._interval_ns

    # ------------------------------------------------------------------ appending
    def append(self, commands: np.ndarray) -> int:
        """Encode and write one group of COMMAND records; return the last seq appended.

        The commands' seq must be ``next_seq``, ``next_seq + 1``, ... (``ValueError``
        otherwise, nothing written).  Raises ``WalWriteError`` if the write fails.
        """
        if self._error is not None:
            self._check_usable()
        if not isinstance(commands, np.ndarray) or commands.ndim != 1 or (
                commands.dtype is not COMMAND and commands.dtype != COMMAND):
            raise TypeError(f"append needs a 1-D array of COMMAND records, got "
                            f"{getattr(commands, 'dtype', type(commands))!r}")
        count = len(commands)
        if count == 0:
            return self.last_seq
        encoded = self._encode(commands)
        group_bytes = count * RECORD_BYTES
        if self._descriptor is None or (
                self._segment_size and self._segment_size + group_bytes > self._segment_bytes):
            self._roll()
        start = self._segment_size
        try:
            written = os.write(self._descriptor, encoded)
            if written != len(encoded):  # a short write: finish it (or get the error)
                write_all(self._descriptor, encoded[written:])
        except OSError as failure:
            removed = self._cut_back(start)
            raise self._poison(failure, "write", removed) from failure
        self._segment_size += group_bytes
        self._next_seq += count
        self._unsynced = True
        return self.last_seq

    def warm_up(self) -> None:
        """Compile (or load from the cache) the encoding kernel now; writes nothing."""
        probe = np.zeros(1, dtype=COMMAND)
        probe["seq"] = self._next_seq
        self._encode(probe)

    def commit(self, now_ns: int | None = None) -> int:
        """Make appended records durable per the durability mode; return ``durable_seq``."""
        if self._error is not None:
            self._check_usable()
        if self._durability == "sync":
            if self._unsynced:
                self._sync(time.monotonic_ns() if now_ns is None else now_ns)
            return self._durable_seq
        return self.maybe_sync(time.monotonic_ns() if now_ns is None else now_ns)

    def maybe_sync(self, now_ns: int) -> int:
        """fdatasync if records are pending and ``async_interval_ms`` has passed since the last."""
        self._check_usable()
        if self._unsynced and (self._last_sync_ns is None or now_ns - self._last_sync_ns >= self._interval_ns):
            self._sync(now_ns)
        return self._durable_seq

    def sync(self) -> int:
        """fdatasync now if anything is pending; return ``durable_seq``."""
        self._check_usable()
        if self._unsynced:
            self._sync(time.monotonic_ns())
        return self._durable_seq

    def close(self) -> None:
        """Sync what is pending (unless stopped by an error) and close the segment."""
        try:
            if self._error is None and self._unsynced:
                self._sync(time.monotonic_ns())
        finally:
            self._close_descriptor()

    def __enter__(self) -> WalWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals
    def _check_usable(self) -> None:
        if self._error is not None:
            raise WalWriteError(self._error.errno or errno.EIO,
                                f"WAL writer stopped by an earlier failure ({self._error.strerror}); "
                                "reopen the WAL once the cause is fixed", self._error.path, self._next_seq)

    def _encode(self, commands: np.ndarray) -> memoryview:
        count = len(commands)
        if self._rows.shape[0] < count:
            self._rows = np.empty((max(count, 2 * self._rows.shape[0]), wal_kernels.RECORD_WORDS), np.uint64)
            self._rows_bytes = memoryview(self._rows).cast("B")
        if not commands.flags.c_contiguous:
            commands = np.ascontiguousarray(commands)
        mismatch = self._kernels.encode_commands(commands, self._rows, np.uint64(self._next_seq))
        if mismatch >= 0:
            raise ValueError(f"command {mismatch} of the batch has seq {int(commands['seq'][mismatch])}, "
                             f"expected {self._next_seq + mismatch} (seq must rise by exactly one)")
        return self._rows_bytes[: count * RECORD_BYTES]

    def _roll(self) -> None:
        if self._descriptor is not None:
            if self._unsynced:
                self._sync(time.monotonic_ns())
            self._close_descriptor()
        path = self._directory / segment_name(self._next_seq)
        try:
            self._descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC,
                                       0o644)
            self._segment_path = path
            self._segment_size = 0
            fsync_directory(self._directory)
        except OSError as failure:
            self._segment_path = path
            raise self._poison(failure, "segment creation", removed=True) from failure

    def _sync(self, now_ns: int) -> None:
        try:
            os.fdatasync(self._descriptor)
        except OSError as failure:
            raise self._poison(failure, "fdatasync", removed=False) from failure
        self._durable_seq = self.last_seq
        self._unsynced = False
        self._last_sync_ns = now_ns

    def _cut_back(self, offset: int) -> bool:
        """Best effort: remove a partly written group so no torn record stays behind."""
        try:
            os.ftruncate(self._descriptor, offset)
        except OSError:
            return False
        return True

    def _poison(self, failure: OSError, action: str, removed: bool) -> WalWriteError:
        first = self._durable_seq + 1  # appended but unsynced records are not durable either
        cleanup = ("" if removed else
                   "; a partial record may remain and is truncated when the WAL is reopened")
        message = (f"WAL {action} failed in {self._segment_path} at byte {self._segment_size}: "
                   f"{failure.strerror or failure}; records from seq {first} on are not durable"
                   f"{cleanup}; the writer is stopped")
        self._error = WalWriteError(failure.errno or errno.EIO, message, self._segment_path, first)
        self._close_descriptor()
        return self._error

    def _close_descriptor(self) -> None:
        if self._descriptor is not None:
            descriptor, self._descriptor = self._descriptor, None
            try:
                os.close(descriptor)
            except OSError:
                pass


class WalReader:
    """Replays the WAL in ``directory`` as COMMAND arrays, verifying every record.

    Read-only: a torn tail on the last segment ends the replay (recovery, not the reader,
    truncates it); corruption raises ``WalCorruptionError`` after the valid records
    before it have been yielded.
    """

    def __init__(self, directory: str | os.PathLike[str], crc: str = "auto") -> None:
        self._directory = Path(directory)
        if not self._directory.is_dir():
            raise FileNotFoundError(f"WAL directory {self._directory} does not exist")
        self._kernels = select_crc_kernels(crc)

    @property
    def first_seq(self) -> int | None:
        """First seq still in the WAL (None when it has no segment)."""
        segments = list_segments(self._directory)
        return segments[0][0] if segments else None

    def batches(self, from_seq: int = 1, batch: int = 65536) -> Iterator[np.ndarray]:
        """Yield COMMAND arrays (copies, at most ``batch`` records) from ``from_seq`` on."""
        if batch <= 0:
            raise ValueError(f"batch must be positive, got {batch}")
        segments = list_segments(self._directory)
        if not segments:
            return
        if from_seq < segments[0][0]:
            raise WalCorruptionError(
                f"WAL in {self._directory} starts at seq {segments[0][0]} ({segments[0][1].name}); "
                f"records from seq {from_seq} are needed (pruned or missing segments)",
                segments[0][1], 0, from_seq)
        expected = None
        for index, (first_seq, path) in enumerate(segments):
            following = segments[index + 1][0] if index + 1 < len(segments) else None
            if expected is None and following is not None and following <= from_seq:
                continue  # entirely before from_seq
            if expected is not None and first_seq != expected:
                raise WalCorruptionError(
                    f"WAL corruption in {path}: segment starts at seq {first_seq} but seq {expected} "
                    "was expected at byte offset 0 (missing segment)", path, 0, expected)
            scan, words = scan_segment(path, first_seq, self._kernels)
            yield from self._decode(words, scan, from_seq, batch)
            del words
            if scan.problem is not None and (following is not None or not scan.torn_tail):
                raise WalCorruptionError(
                    f"WAL corruption in {path} at byte offset {scan.valid_bytes} (seq {scan.next_seq}): "
                    f"{scan.problem}", path, scan.valid_bytes, scan.next_seq)
            if scan.problem is not None:
                return
            expected = scan.next_seq

    def read(self, from_seq: int = 1) -> np.ndarray:
        """Every command from ``from_seq`` on as one array (for tools and tests)."""
        parts = list(self.batches(from_seq))
        return np.concatenate(parts) if parts else np.empty(0, COMMAND)

    @staticmethod
    def _decode(words: np.ndarray, scan: SegmentScan, from_seq: int, batch: int) -> Iterator[np.ndarray]:
        records = words[: scan.records * wal_kernels.RECORD_WORDS].view(WAL_COMMAND_RECORD)
        commands = records["command"]
        for start in range(max(0, from_seq - scan.first_seq), scan.records, batch):
            yield np.ascontiguousarray(commands[start:start + batch])
