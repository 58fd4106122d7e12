"""WAL recovery: verify every segment, truncate a torn tail, refuse corruption; retention.

Rules (docs/WAL.md has the operator's view):

* segments are read in seq order; each must start at the seq its name says and
  continue the previous one (seq strictly +1 across records and segments);
* damage that reaches the end of the LAST segment (an incomplete record, or CRC-bad
  records with no valid record after them) is a torn tail: it is truncated;
* anything else (a bad record followed by valid ones, a bad record in an earlier
  segment, a missing segment) raises ``WalCorruptionError`` naming the file, the byte
  offset and the seq, unless the operator passes ``allow_corruption=True``: then the
  WAL is cut at the first bad record, the cut bytes are kept in a side file
  ``<segment>.dropped-at-<offset>`` and later segments are renamed ``<name>.dropped``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from numbex.engine.fileio import fsync_directory, make_directory, unused_name
from numbex.engine.wal_kernels import CrcKernels, select_crc_kernels
from numbex.engine.wal_segments import (
    SegmentScan,
    WalCorruptionError,
    list_segments,
    scan_segment,
)


@dataclass(frozen=True)
class Truncation:
    """Bytes cut from the end of a segment, and why."""

    path: Path
    offset: int
    dropped_bytes: int
    seq: int
    reason: str
    torn_tail: bool
    saved_to: Path | None = None


@dataclass(frozen=True)
class RecoveryReport:
    """What recovery found and did.  ``repaired`` is False for a read-only scan."""

    directory: Path
    segments: tuple[SegmentScan, ...]
    truncations: tuple[Truncation, ...] = ()
    dropped_segments: tuple[Path, ...] = ()  # after repair: their new ``.dropped`` names
    repaired: bool = False

    @property
    def first_seq(self) -> int | None:
        return self.segments[0].first_seq if self.segments else None

    @property
    def last_seq(self) -> int | None:
        """Seq of the last valid record, None when the WAL holds no record at all."""
        if not self.segments or self.segments[-1].next_seq == self.segments[0].first_seq:
            return None
        return self.segments[-1].last_seq

    @property
    def next_seq(self) -> int | None:
        """Seq the next appended record must carry (None for an empty directory)."""
        return self.segments[-1].next_seq if self.segments else None

    @property
    def records(self) -> int:
        return sum(scan.records for scan in self.segments)

    def describe(self) -> list[str]:
        """Human-readable lines for logs and tools."""
        lines = [f"WAL {self.directory}: {len(self.segments)} segment(s), {self.records} record(s)"
                 + (f", seq {self.first_seq}..{self.last_seq}" if self.last_seq is not None else "")]
        verb = "truncated" if self.repaired else "to truncate"
        for cut in self.truncations:
            kind = "torn tail" if cut.torn_tail else "CORRUPTION (override)"
            lines.append(f"{kind} {verb}: {cut.path.name} at byte {cut.offset} (seq {cut.seq}), "
                         f"{cut.dropped_bytes} bytes: {cut.reason}"
                         + (f"; saved to {cut.saved_to.name}" if cut.saved_to else ""))
        for path in self.dropped_segments:
            lines.append(f"segment {'set aside' if self.repaired else 'to set aside'}: {path.name}")
        return lines


@dataclass
class _Plan:
    kept: list[SegmentScan] = field(default_factory=list)
    truncations: list[Truncation] = field(default_factory=list)
    dropped: list[Path] = field(default_factory=list)


def scan_wal(directory: str | os.PathLike[str], allow_corruption: bool = False,
             crc: str = "auto") -> RecoveryReport:
    """Verify the WAL in ``directory`` without changing anything.

    Raises ``WalCorruptionError`` as ``open_wal`` would; the report lists what
    ``open_wal`` would truncate.
    """
    plan = _plan(Path(directory), allow_corruption, select_crc_kernels(crc))
    return RecoveryReport(Path(directory), tuple(plan.kept), tuple(plan.truncations),
                          tuple(plan.dropped), repaired=False)


def open_wal(directory: str | os.PathLike[str], allow_corruption: bool = False,
             crc: str = "auto") -> RecoveryReport:
    """Recover the WAL in ``directory`` (created if missing) and make the result durable.

    Returns the report; its last segment (if any) and ``next_seq`` are where a writer
    continues.  Raises ``WalCorruptionError`` on corruption before the tail unless
    ``allow_corruption`` is set.
    """
    path = make_directory(directory)
    plan = _plan(path, allow_corruption, select_crc_kernels(crc))
    truncations = [_apply_truncation(cut) for cut in plan.truncations]
    dropped = []
    for segment in plan.dropped:
        target = unused_name(segment.with_name(segment.name + ".dropped"))
        os.rename(segment, target)
        dropped.append(target)
    if plan.kept:
        descriptor = os.open(plan.kept[-1].path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(descriptor)  # whatever survived a process crash is now on disk
        finally:
            os.close(descriptor)
    if plan.dropped or any(cut.saved_to for cut in truncations):
        fsync_directory(path)
    return RecoveryReport(path, tuple(plan.kept), tuple(truncations), tuple(dropped), repaired=True)


def prune_segments(directory: str | os.PathLike[str], upto_seq: int) -> list[Path]:
    """Delete segments whose records all have seq <= ``upto_seq`` (covered by a snapshot).

    A segment's last seq is the next segment's first seq minus one, so the last segment
    (the one being written) is never deleted.  Returns the deleted paths.
    """
    segments = list_segments(directory)
    deleted = []
    for (_, path), (next_first, _) in zip(segments, segments[1:]):
        if next_first - 1 > upto_seq:
            break
        path.unlink()
        deleted.append(path)
    if deleted:
        fsync_directory(directory)
    return deleted


def _plan(directory: Path, allow_corruption: bool, kernels: CrcKernels) -> _Plan:
    plan = _Plan()
    segments = list_segments(directory)
    expected = None
    for index, (first_seq, path) in enumerate(segments):
        last = index == len(segments) - 1
        if expected is not None and first_seq != expected:
            what = "missing segment(s)" if first_seq > expected else "overlapping segments"
            message = (f"WAL corruption in {path}: segment starts at seq {first_seq} but seq "
                       f"{expected} was expected at byte offset 0 ({what}; the previous segment "
                       f"ends at seq {expected - 1})")
            if not allow_corruption:
                raise WalCorruptionError(message, path, 0, expected)
            plan.dropped.extend(later for _, later in segments[index:])
            break
        scan, words = scan_segment(path, first_seq, kernels)
        del words
        plan.kept.append(scan)
        expected = scan.next_seq
        if scan.problem is None:
            continue
        if last and scan.torn_tail:
            plan.truncations.append(Truncation(path, scan.valid_bytes, scan.file_bytes - scan.valid_bytes,
                                               scan.next_seq, scan.problem, torn_tail=True))
            continue
        where = (f"valid records follow at byte offset {scan.valid_after}" if scan.valid_after is not None
                 else "and it is not the last segment")
        message = (f"WAL corruption in {path} at byte offset {scan.valid_bytes} (seq {scan.next_seq}): "
                   f"{scan.problem}; {where}")
        if not allow_corruption:
            raise WalCorruptionError(message, path, scan.valid_bytes, scan.next_seq)
        plan.truncations.append(Truncation(path, scan.valid_bytes, scan.file_bytes - scan.valid_bytes,
                                           scan.next_seq, scan.problem, torn_tail=False))
        plan.dropped.extend(later for _, later in segments[index + 1:])
        break
    return plan


def _apply_truncation(cut: Truncation) -> Truncation:
    saved_to = None
    if not cut.torn_tail:
        saved_to = unused_name(cut.path.with_name(f"{cut.path.name}.dropped-at-{cut.offset}"))
        with open(cut.path, "rb") as source, open(saved_to, "xb") as target:
            source.seek(cut.offset)
            while chunk := source.read(1 << 20):
                target.write(chunk)
            target.flush()
            os.fsync(target.fileno())
    os.truncate(cut.path, cut.offset)
    descriptor = os.open(cut.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return Truncation(cut.path, cut.offset, cut.dropped_bytes, cut.seq, cut.reason, cut.torn_tail, saved_to)
