"""The engine's status block: a small shared-memory page read live by gateways and tools.

It lives beside the rings (``/dev/shm/<instance>-status``) and has their lifetime:
whoever creates the rings creates it.  Each word has one writer, the engine.

=====  ===================  ========================================================
word   name                 meaning
=====  ===================  ========================================================
0      magic                ``b"NUMBEXS1"``
1      pid                  engine process id (0 before the first start)
2      state                ``STATE_*`` below
3      heartbeat_ns         CLOCK_MONOTONIC at the engine's last loop
4      published_seq        every event of commands <= this seq has been published
5      durable_seq          WAL durable up to this seq
6      last_seq             last sequenced command
7      starts               how many times an engine attached
8      snapshot_seq         seq of the newest snapshot
16+g   journaled_next[g]    inbound ring g: position after its last journaled command
=====  ===================  ========================================================
"""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

import numpy as np

MAGIC = int.from_bytes(b"NUMBEXS1", "little")
WORDS = 512
STATE_DOWN = 0
STATE_RECOVERING = 1
STATE_UP = 2
STATE_NOT_DURABLE = 3
STATE_STOPPING = 4
STATE_NAMES = {STATE_DOWN: "down", STATE_RECOVERING: "recovering", STATE_UP: "up",
               STATE_NOT_DURABLE: "not-durable", STATE_STOPPING: "stopping"}

W_MAGIC, W_PID, W_STATE, W_HEARTBEAT, W_PUBLISHED, W_DURABLE, W_LAST, W_STARTS, W_SNAPSHOT = range(9)
W_JOURNALED = 16
MAX_RINGS = WORDS - W_JOURNALED


def shm_path(instance: str, name: str) -> Path:
    """Path of one of an instance's shared-memory files."""
    return Path("/dev/shm") / f"{instance}-{name}"


class EngineStatus:
    """Mapping of the status block (see the module docstring)."""

    def __init__(self, path: Path, mapping: mmap.mmap, created: bool) -> None:
        self.path = path
        self._mapping = mapping
        self.words = np.frombuffer(mapping, dtype=np.int64, count=WORDS)
        self.created = created

    @classmethod
    def open(cls, path: str | os.PathLike) -> "EngineStatus":
        """Attach to the block at ``path``, creating it (zeroed) when absent."""
        path = Path(path)
        created = False
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
            os.ftruncate(fd, WORDS * 8)
        except FileExistsError:
            fd = os.open(path, os.O_RDWR)
        try:
            if os.fstat(fd).st_size < WORDS * 8:
                os.ftruncate(fd, WORDS * 8)
            mapping = mmap.mmap(fd, WORDS * 8)
        finally:
            os.close(fd)
        status = cls(path, mapping, created)
        if status.words[W_MAGIC] != MAGIC:
            status.words[:] = 0
            status.words[W_MAGIC] = MAGIC
            status.created = True
        return status

    @classmethod
    def attach(cls, path: str | os.PathLike) -> "EngineStatus | None":
        """Attach read-mostly to an existing block; None when there is none."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None
        try:
            if os.fstat(fd).st_size < WORDS * 8:
                return None
            mapping = mmap.mmap(fd, WORDS * 8)
        finally:
            os.close(fd)
        status = cls(path, mapping, False)
        return status if status.words[W_MAGIC] == MAGIC else None

    # ---------------------------------------------------------------- fields
    def get(self, word: int) -> int:
        return int(self.words[word])

    def set(self, word: int, value: int) -> None:
        self.words[word] = value

    @property
    def state(self) -> int:
        return int(self.words[W_STATE])

    def engine_up(self, stale_ns: int = 2_000_000_000) -> bool:
        """True when the engine says it is up, its process exists and it beat recently."""
        if self.words[W_STATE] != STATE_UP:
            return False
        pid = int(self.words[W_PID])
        if pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return time.monotonic_ns() - int(self.words[W_HEARTBEAT]) < stale_ns

    def describe(self) -> dict:
        words = self.words
        return {
            "pid": int(words[W_PID]),
            "state": STATE_NAMES.get(int(words[W_STATE]), str(int(words[W_STATE]))),
            "published_seq": int(words[W_PUBLISHED]),
            "durable_seq": int(words[W_DURABLE]),
            "last_seq": int(words[W_LAST]),
            "starts": int(words[W_STARTS]),
            "snapshot_seq": int(words[W_SNAPSHOT]),
        }

    def close(self) -> None:
        self.words = None
        try:
            self._mapping.close()
        except (BufferError, ValueError):
            pass

    def unlink(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
