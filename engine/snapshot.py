"""Engine snapshots: the engine state at a seq, as numpy arrays plus JSON meta, in one file.

A snapshot is written atomically (temporary file, write, fsync, rename, fsync of the
directory), so a crash leaves either the old set of snapshots or the new one, plus at
worst a ``.tmp`` file that nothing reads.  ``load_latest`` returns the newest snapshot
that verifies and skips (and reports) damaged ones, so recovery falls back to an older
snapshot and replays more WAL.

File ``snap-<seq, 20 digits>.snap``, little-endian:

======  ===========  =====  ======================================================
offset  field        type   meaning
======  ===========  =====  ======================================================
0       magic        8s     ``b"NBXSNAP\\x00"``
8       version      u4     1
12      reserved     u4     0
16      seq          u8     the last WAL seq applied to this state
24      index_bytes  u8     length of the JSON index that follows the header
32      body_bytes   u8     bytes after the header (index, padding, arrays)
40      body_crc     u4     CRC32C of those body bytes
44      reserved     u4     0
48      created_ns   i8     wall-clock time of writing (information only)
56      reserved     u4     0
60      header_crc   u4     CRC32C of bytes 0-59
======  ===========  =====  ======================================================

The JSON index is ``{"meta": ..., "arrays": [{"name", "descr", "shape", "offset",
"nbytes"}, ...]}``; each array's raw C-order bytes start at ``offset`` (from the file
start, 64-byte aligned), its dtype is ``numpy.lib.format.descr_to_dtype(descr)``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import crc32c
import numpy as np
from numpy.lib import format as npy_format

from numbex.engine.fileio import fsync_directory, make_directory

LOGGER = logging.getLogger(__name__)
MAGIC = b"NBXSNAP\x00"
VERSION = 1
HEADER = struct.Struct("<8sIIQQQIIqII")
ALIGNMENT = 64
SNAPSHOT_PATTERN = re.compile(r"^snap-(\d{20})\.snap$")
TEMPORARY_SUFFIX = ".tmp"
READ_CHUNK = 1 << 24


class SnapshotCorruptionError(Exception):
    """A snapshot file does not verify; the message names the file and the check."""


@dataclass(frozen=True)
class Snapshot:
    """A verified snapshot.  ``skipped`` lists newer snapshots that did not verify."""

    path: Path
    seq: int
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    created_ns: int
    skipped: tuple[tuple[Path, str], ...] = field(default=())


def snapshot_name(seq: int) -> str:
    if not 0 <= seq < 10**20:
        raise ValueError(f"snapshot seq must be in 0..10**20-1, got {seq}")
    return f"snap-{seq:020d}.snap"


def list_snapshots(directory: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """``(seq, path)`` of every snapshot file in ``directory``, oldest first (unverified)."""
    if not Path(directory).is_dir():
        return []
    found = [(int(match.group(1)), Path(entry.path)) for entry in os.scandir(directory)
             if (match := SNAPSHOT_PATTERN.match(entry.name)) and entry.is_file(follow_symlinks=False)]
    return sorted(found)


def write_snapshot(directory: str | os.PathLike[str], seq: int, arrays: dict[str, np.ndarray],
                   meta: dict[str, Any]) -> Path:
    """Write the state at ``seq`` atomically; return the snapshot's path.

    Raises ``ValueError`` for arrays of Python objects, non-string names or meta that
    JSON cannot hold; ``OSError`` from the file system (no snapshot is then visible).
    """
    folder = make_directory(directory)
    final = folder / snapshot_name(seq)
    prepared = {}
    entries = []
    for name, array in arrays.items():
        if not isinstance(name, str) or not isinstance(array, np.ndarray):
            raise ValueError(f"snapshot arrays must map str to numpy arrays, got {name!r}: {type(array)}")
        if array.dtype.hasobject:
            raise ValueError(f"snapshot array {name!r} holds Python objects ({array.dtype})")
        prepared[name] = array if array.flags.c_contiguous else np.array(array, order="C")
        entries.append({"name": name, "descr": npy_format.dtype_to_descr(array.dtype),
                        "shape": list(array.shape), "nbytes": int(array.nbytes),
                        "aligned": bool(array.dtype.isalignedstruct)})
    index = _layout(entries, meta)
    body_start = HEADER.size
    temporary = folder / (final.name + TEMPORARY_SUFFIX)
    with open(temporary, "wb") as handle:
        handle.write(bytes(HEADER.size))
        crc = crc32c.crc32c(index)
        handle.write(index)
        position = body_start + len(index)
        for entry in entries:
            padding = bytes(entry["offset"] - position)
            crc = crc32c.crc32c(padding, crc)
            handle.write(padding)
            data = memoryview(prepared[entry["name"]]).cast("B") if entry["nbytes"] else memoryview(b"")
            crc = crc32c.crc32c(data, crc)
            handle.write(data)
            position = entry["offset"] + entry["nbytes"]
        handle.seek(0)
        handle.write(_header(seq, len(index), position - body_start, crc, time.time_ns()))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    fsync_directory(folder)
    return final


def read_snapshot(path: str | os.PathLike[str]) -> Snapshot:
    """Read and verify one snapshot file; raise ``SnapshotCorruptionError`` if it is damaged."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        raw = handle.read(HEADER.size)
        if len(raw) < HEADER.size:
            raise SnapshotCorruptionError(f"{path}: {len(raw)} bytes, shorter than the {HEADER.size}-byte header")
        magic, version, _, seq, index_bytes, body_bytes, body_crc, _, created_ns, _, header_crc = HEADER.unpack(raw)
        if magic != MAGIC:
            raise SnapshotCorruptionError(f"{path}: not a numbex snapshot (magic {magic!r})")
        if crc32c.crc32c(raw[:60]) != header_crc:
            raise SnapshotCorruptionError(f"{path}: header CRC32C mismatch")
        if version != VERSION:
            raise SnapshotCorruptionError(f"{path}: snapshot version {version}, this numbex reads {VERSION}")
        if size != HEADER.size + body_bytes or index_bytes > body_bytes:
            raise SnapshotCorruptionError(f"{path}: {size} bytes on disk, header says {HEADER.size + body_bytes}")
        index_raw = handle.read(index_bytes)
        crc = crc32c.crc32c(index_raw)
        entries, meta = _parse_index(path, index_raw, size)
        arrays = {}
        position = HEADER.size + index_bytes
        for entry in entries:
            crc = crc32c.crc32c(handle.read(entry["offset"] - position), crc)
            array = np.empty(entry["shape"], entry["dtype"])
            target = memoryview(array).cast("B") if array.nbytes else memoryview(bytearray())
            for start in range(0, array.nbytes, READ_CHUNK):
                part = target[start:start + READ_CHUNK]
                if handle.readinto(part) != len(part):
                    raise SnapshotCorruptionError(f"{path}: array {entry['name']!r} is cut short")
                crc = crc32c.crc32c(part, crc)
            arrays[entry["name"]] = array
            position = entry["offset"] + entry["nbytes"]
        crc = crc32c.crc32c(handle.read(size - position), crc)
    if crc != body_crc:
        raise SnapshotCorruptionError(f"{path}: body CRC32C mismatch (stored {body_crc:#010x}, computed {crc:#010x})")
    return Snapshot(path, seq, meta, arrays, created_ns)


def load_latest(directory: str | os.PathLike[str], max_seq: int | None = None) -> Snapshot | None:
    """Newest snapshot (with seq <= ``max_seq`` if given) that verifies, or None.

    Damaged snapshots are skipped, logged as warnings and listed in ``skipped``.
    """
    skipped: list[tuple[Path, str]] = []
    for seq, path in reversed(list_snapshots(directory)):
        if max_seq is not None and seq > max_seq:
            continue
        try:
            snapshot = read_snapshot(path)
        except (SnapshotCorruptionError, OSError) as error:
            LOGGER.warning("skipping snapshot %s: %s", path, error)
            skipped.append((path, str(error)))
            continue
        if snapshot.seq != seq:
            reason = f"{path}: file name says seq {seq}, header says {snapshot.seq}"
            LOGGER.warning("skipping snapshot %s", reason)
            skipped.append((path, reason))
            continue
        return Snapshot(snapshot.path, snapshot.seq, snapshot.meta, snapshot.arrays,
                        snapshot.created_ns, tuple(skipped))
    return None


def prune_snapshots(directory: str | os.PathLike[str], keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest snapshots and leftover temporary files.

    Returns the deleted paths.  Call it from the process that writes snapshots (a
    temporary file of a snapshot being written by another process would be deleted).
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    folder = Path(directory)
    snapshots = list_snapshots(folder)
    doomed = [path for _, path in snapshots[:-keep]]
    doomed += [Path(entry.path) for entry in os.scandir(folder)
               if entry.name.endswith(".snap" + TEMPORARY_SUFFIX) and entry.name.startswith("snap-")]
    for path in doomed:
        path.unlink(missing_ok=True)
    if doomed:
        fsync_directory(folder)
    return doomed


def _layout(entries: list[dict[str, Any]], meta: dict[str, Any]) -> bytes:
    """Assign 64-aligned offsets to arrays (they depend on the index's own length)."""
    guess = 0
    while True:
        position = _align(HEADER.size + guess)
        for entry in entries:
            entry["offset"] = position
            position = _align(position + entry["nbytes"])
        try:
            index = json.dumps({"meta": meta, "arrays": entries}, sort_keys=True).encode()
        except (TypeError, ValueError) as error:
            raise ValueError(f"snapshot meta is not JSON-serializable: {error}") from error
        if _align(HEADER.size + len(index)) == _align(HEADER.size + guess):
            return index
        guess = len(index)


def _parse_index(path: Path, raw: bytes, size: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    try:
        index = json.loads(raw)
        entries = list(index["arrays"])
        meta = index["meta"]
        position = HEADER.size + len(raw)
        for entry in entries:
            entry["dtype"] = npy_format.descr_to_dtype(_tuples(entry["descr"]))
            if entry.get("aligned"):
                entry["dtype"] = _aligned(entry["dtype"])
            entry["shape"] = tuple(int(extent) for extent in entry["shape"])
            if any(extent < 0 for extent in entry["shape"]):
                raise ValueError(f"array {entry['name']!r} has shape {entry['shape']}")
            expected = int(np.prod(entry["shape"], dtype=np.int64)) * entry["dtype"].itemsize
            if entry["nbytes"] != expected or entry["offset"] < position or entry["offset"] + expected > size:
                raise ValueError(f"array {entry['name']!r} does not fit the file")
            position = entry["offset"] + expected
    except (ValueError, KeyError, TypeError) as error:
        raise SnapshotCorruptionError(f"{path}: unreadable index: {error}") from error
    return entries, meta


def _tuples(descr: Any) -> Any:
    """JSON turns a structured descr's tuples into lists; turn them back."""
    if isinstance(descr, list) and all(isinstance(extent, int) for extent in descr):
        return tuple(descr)  # a sub-array shape
    if isinstance(descr, list):
        return [tuple(_tuples(part) for part in field) for field in descr]
    return descr


def _aligned(dtype: np.dtype) -> np.dtype:
    """Restore the ``align=True`` flag of a structured dtype (numba types depend on it)."""
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.dtype((_aligned(base), shape))
    if dtype.names is None:
        return dtype
    return np.dtype({"names": list(dtype.names),
                     "formats": [_aligned(dtype.fields[name][0]) for name in dtype.names],
                     "offsets": [dtype.fields[name][1] for name in dtype.names],
                     "itemsize": dtype.itemsize, "aligned": True})


def _header(seq: int, index_bytes: int, body_bytes: int, body_crc: int, created_ns: int) -> bytes:
    partial = HEADER.pack(MAGIC, VERSION, 0, seq, index_bytes, body_bytes, body_crc, 0, created_ns, 0, 0)
    return partial[:60] + struct.pack("<I", crc32c.crc32c(partial[:60]))


def _align(value: int) -> int:
    return (value + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
