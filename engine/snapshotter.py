"""The engine role's snapshot writer: a copy of the state in the loop, the file in a thread.

Writing a snapshot of a 1M-order engine (about 71 MB) and fsyncing it takes 0.2-0.5 s
here; copying the state arrays into buffers allocated (and touched) once takes about
50-80 ms.  :class:`Snapshotter` does the copy when the loop asks (:meth:`take`) and
hands the buffers to a background thread that writes, fsyncs and renames the file
(``numbex.engine.snapshot.write_snapshot``), prunes old snapshots and the WAL segments
the oldest kept one no longer needs, and then records the seq in the status block.

One snapshot at a time: the buffers are the writer's until it is done (:attr:`busy`).
A failed write is logged and leaves the previous snapshots (the WAL still holds
everything; recovery replays more).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np

from numbex.engine import status as st

log = logging.getLogger("numbex.engine")


class Snapshotter:
    """Background snapshot writer of one engine process (see the module docstring).

    Parameters
    ----------
    snapshot_dir, wal_dir : Path
        Where snapshots go, and the WAL whose covered segments are pruned.
    keep : int
        Snapshots kept (``engine.keep_snapshots``).
    status : numbex.engine.status.EngineStatus
        ``W_SNAPSHOT`` is set to each written snapshot's seq.
    """

    def __init__(self, snapshot_dir: Path, wal_dir: Path, keep: int, status) -> None:
        self.snapshot_dir = snapshot_dir
        self.wal_dir = wal_dir
        self.keep = keep
        self.status = status
        self._buffers: dict[str, np.ndarray] | None = None
        self._writer: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        """A snapshot is being written (its buffers are in use)."""
        return self._writer is not None and self._writer.is_alive()

    def prepare(self, state: dict[str, np.ndarray]) -> None:
        """Allocate the buffers and touch their pages now (at start-up, not mid-trading)."""
        self._copy(state)

    def take(self, seq: int, state: dict[str, np.ndarray], meta: dict, wait: bool = False) -> None:
        """Copy ``state`` (the engine's arrays at ``seq``) and write it in the background.

        Waits for a snapshot still being written first; ``wait`` also waits for this one.
        """
        self.join()
        started = time.perf_counter()
        buffers = self._copy(state)
        copied = time.perf_counter() - started
        writer = threading.Thread(target=self._write, args=(seq, buffers, meta, started, copied),
                                  name="numbex-snapshot", daemon=True)
        self._writer = writer
        writer.start()
        if wait:
            writer.join()

    def join(self) -> None:
        """Wait until no snapshot is being written."""
        writer = self._writer
        if writer is not None:
            writer.join()

    def _copy(self, state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        buffers = self._buffers
        if buffers is None or any(buffers[name].shape != array.shape for name, array in state.items()):
            buffers = self._buffers = {name: np.empty_like(array) for name, array in state.items()}
        for name, array in state.items():
            np.copyto(buffers[name], array)
        return buffers

    def _write(self, seq: int, arrays: dict, meta: dict, started: float, copied: float) -> None:
        from numbex.engine.snapshot import list_snapshots, prune_snapshots, snapshot_name
        from numbex.engine.snapshot import write_snapshot
        from numbex.engine.wal import prune_segments

        try:
            path = write_snapshot(self.snapshot_dir, seq, arrays, meta)
            prune_snapshots(self.snapshot_dir, self.keep)
            kept = list_snapshots(self.snapshot_dir)
            if kept:
                prune_segments(self.wal_dir, kept[0][0])  # the oldest kept snapshot needs its tail
        except OSError as error:  # the WAL still holds everything: recovery just replays more
            log.error("snapshot at seq %d failed: %s", seq, error)
            try:
                (self.snapshot_dir / (snapshot_name(seq) + ".tmp")).unlink(missing_ok=True)
            except OSError:
                pass
            return
        self.status.set(st.W_SNAPSHOT, seq)
        log.info("snapshot %s (seq %d) in %.3f s (the loop paused %.3f s to copy the state)",
                 path.name, seq, time.perf_counter() - started, copied)
