"""WAL segment files: names, listing, errors, and verifying one segment's records.

A segment is a file ``wal-<first seq, 20 digits>.log`` holding whole records back to
back (docs/WAL.md).  ``scan_segment`` maps a segment read-only and finds its longest
valid prefix: record headers are walked by a Numba kernel, CRC32C is checked in bulk
over all records at once, and when something is wrong the rest of the file is searched
for a valid record, which is what tells a torn tail (nothing valid after the damage)
from corruption (valid records after it).
"""

from __future__ import annotations

import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numbex.engine import wal_kernels
from numbex.engine.records import WAL_COMMAND_RECORD
from numbex.engine.wal_kernels import CrcKernels

RECORD_BYTES = WAL_COMMAND_RECORD.itemsize
SEGMENT_PATTERN = re.compile(r"^wal-(\d{20})\.log$")
CRC_CHUNK_RECORDS = 65536
CANDIDATE_CHUNK = 4096


class WalError(Exception):
    """Base of every WAL error."""


class WalCorruptionError(WalError):
    """The WAL cannot be trusted past some point; recovery refuses to guess.

    ``path``, ``offset`` (byte offset in that file) and ``seq`` (the seq expected at that
    offset) say where; all three are also in the message.
    """

    def __init__(self, message: str, path: Path | None = None, offset: int | None = None,
                 seq: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.offset = offset
        self.seq = seq


class WalWriteError(WalError, OSError):
    """Writing or syncing the WAL failed (ENOSPC, EIO, ...); the writer is stopped.

    An ``OSError`` carrying the original ``errno``; ``seq`` is the first seq that is not
    written, ``path`` the segment file.
    """

    def __init__(self, error_number: int, message: str, path: Path | None = None,
                 seq: int | None = None) -> None:
        OSError.__init__(self, error_number, message)
        self.path = path
        self.seq = seq


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first record has ``first_seq``."""
    if not 0 < first_seq < 10**20:
        raise ValueError(f"segment first seq must be in 1..10**20-1, got {first_seq}")
    return f"wal-{first_seq:020d}.log"


def list_segments(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(first_seq, path)`` of every segment in ``directory``, in seq order."""
    found = []
    for entry in os.scandir(directory):
        match = SEGMENT_PATTERN.match(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            found.append((int(match.group(1)), Path(entry.path)))
    found.sort()
    return found


@dataclass(frozen=True)
class SegmentScan:
    """What one segment holds: its valid prefix and, if any, why it stops early.

    ``problem`` is None when the whole file is valid records.  Otherwise the record at
    byte ``valid_bytes`` (expected seq ``next_seq``) is the first bad one, ``problem``
    says why, and ``valid_after`` is the byte offset of a valid record further on (None
    when there is none: the damage reaches the end of the file).
    """

    path: Path
    first_seq: int
    file_bytes: int
    records: int
    problem: str | None = None
    valid_after: int | None = None

    @property
    def valid_bytes(self) -> int:
        return self.records * RECORD_BYTES

    @property
    def last_seq(self) -> int:
        """Seq of the last valid record (``first_seq - 1`` for an empty segment)."""
        return self.first_seq + self.records - 1

    @property
    def next_seq(self) -> int:
        return self.first_seq + self.records

    @property
    def torn_tail(self) -> bool:
        """Damage only at the end of the file (what a crash mid-write leaves)."""
        return self.problem is not None and self.valid_after is None


def map_words(path: Path) -> tuple[np.ndarray, int]:
    """Map ``path`` read-only; return its whole 8-byte words as u64 and its size in bytes.

    The array keeps the mapping alive; it is unmapped when the array is released.
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < 8:
            return np.empty(0, np.uint64), size
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(mapping, np.uint64, count=size // 8), size


def scan_words(words: np.ndarray, file_bytes: int, first_seq: int,
               kernels: CrcKernels) -> tuple[int, str | None, int | None]:
    """Validate records in ``words``; return ``(records, problem, valid_after_byte)``."""
    count, status = wal_kernels.parse_command_headers(words, np.uint64(first_seq))
    problem = None
    bad_crc = _first_crc_mismatch(words, count, kernels)
    if bad_crc is not None:
        index, stored, computed = bad_crc
        count = index
        problem = f"CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})"
    elif status == wal_kernels.SCAN_CLEAN_END and file_bytes % 8:
        problem = f"incomplete record: {file_bytes - count * RECORD_BYTES} bytes at the end"
    elif status == wal_kernels.SCAN_PARTIAL:
        problem = f"incomplete record: {file_bytes - count * RECORD_BYTES} bytes at the end"
    elif status == wal_kernels.SCAN_BAD_HEADER:
        header = int(words[count * wal_kernels.RECORD_WORDS])
        problem = f"not a command record (length {header & 0xFFFFFFFF}, type {header >> 32})"
    elif status == wal_kernels.SCAN_BAD_SEQ:
        seq = int(words[count * wal_kernels.RECORD_WORDS + 1])
        problem = f"seq {seq} where {first_seq + count} was expected"
    if problem is None:
        return count, None, None
    return count, problem, _find_valid_record(words, count * wal_kernels.RECORD_WORDS + 1, kernels)


def scan_segment(path: Path, first_seq: int, kernels: CrcKernels) -> tuple[SegmentScan, np.ndarray]:
    """Scan one segment; return the scan and its mapped words (valid records first)."""
    words, size = map_words(path)
    records, problem, valid_after = scan_words(words, size, first_seq, kernels)
    return SegmentScan(path, first_seq, size, records, problem, valid_after), words


def _first_crc_mismatch(words: np.ndarray, count: int,
                        kernels: CrcKernels) -> tuple[int, int, int] | None:
    """Index, stored and computed CRC of the first of ``count`` records whose CRC is wrong."""
    rows = words[: count * wal_kernels.RECORD_WORDS].reshape(count, wal_kernels.RECORD_WORDS)
    computed = np.empty(min(count, CRC_CHUNK_RECORDS), np.uint64)
    for start in range(0, count, CRC_CHUNK_RECORDS):
        chunk = rows[start:start + CRC_CHUNK_RECORDS]
        out = computed[: len(chunk)]
        kernels.crc_rows(chunk, wal_kernels.CRC_WORDS, out)
        stored = chunk[:, wal_kernels.CRC_WORDS] & np.uint64(0xFFFFFFFF)
        mismatched = np.flatnonzero(stored != out)
        if len(mismatched):
            index = int(mismatched[0])
            return start + index, int(stored[index]), int(out[index])
    return None


def _find_valid_record(words: np.ndarray, start_word: int, kernels: CrcKernels) -> int | None:
    """Byte offset of the first whole record with a correct CRC at or after ``start_word``."""
    candidates = np.empty(CANDIDATE_CHUNK, np.int64)
    span = np.arange(wal_kernels.RECORD_WORDS)
    position = start_word
    while True:
        stored_count, position = wal_kernels.find_candidate_records(words, position, candidates)
        if stored_count == 0:
            return None
        found = candidates[:stored_count]
        rows = words[found[:, None] + span]
        computed = np.empty(stored_count, np.uint64)
        kernels.crc_rows(rows, wal_kernels.CRC_WORDS, computed)
        good = np.flatnonzero(computed == (rows[:, wal_kernels.CRC_WORDS] & np.uint64(0xFFFFFFFF)))
        if len(good):
            return int(found[good[0]]) * 8
