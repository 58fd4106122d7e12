"""Small durable-file helpers shared by the WAL and the snapshots."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def fsync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a directory's entries (created, renamed, removed files) durable."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_all(descriptor: int, data: memoryview) -> None:
    """Write every byte of ``data``, looping over short writes.

    Raises ``OSError`` from the first failing ``os.write``; a write that reports zero
    bytes is turned into ``EIO`` rather than looping forever.
    """
    view = data.cast("B") if data.format != "B" or data.ndim != 1 else data
    written = 0
    total = len(view)
    while written < total:
        count = os.write(descriptor, view[written:])
        if count <= 0:
            raise OSError(errno.EIO, f"write returned {count} with {total - written} bytes left")
        written += count


def make_directory(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` (and parents) if missing, durably; return it as a Path."""
    path = Path(directory)
    if path.is_dir():
        return path
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_directory(created.parent)
    return path


def unused_name(path: Path) -> Path:
    """``path`` itself if free, else ``path.1``, ``path.2``... (side files never overwrite)."""
    candidate = path
    number = 0
    while candidate.exists():
        number += 1
        candidate = path.with_name(f"{path.name}.{number}")
    return candidate
