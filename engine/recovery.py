"""Engine recovery: a snapshot, the WAL opened (torn tail truncated), the WAL tail replayed.

:func:`recover_engine` is what the engine process runs at start and after a WAL
failure, and what ``numbex bench recovery`` times.  Steps, each timed:

1. ``snapshot_load``: choose and read a snapshot (below), load it into a new
   :class:`~numbex.engine.matcher.Engine`;
2. ``wal_open``: open the WAL for writing (``WalWriter``: every segment verified, a
   torn tail truncated, corruption refused unless the operator allows it);
3. ``replay``: replay the records after the snapshot through the engine.

Which snapshot:

* the newest that verifies (damaged ones are skipped and logged);
* with ``replay_after`` (the status block's published seq, when the rings survived a
  crash): events of commands after it never reached the gateways and must be made
  again by the replay, so the newest snapshot no newer than ``replay_after``, or
  none (genesis) while the WAL still starts at seq 1; when the WAL is pruned past it,
  the newest snapshot, with a warning;
* a snapshot **ahead of the WAL** (its seq is past the WAL's last record: the WAL lost
  records after the snapshot was written, by a power loss in async durability or an
  operator's cut with ``--allow-wal-corruption``) holds a state the WAL cannot explain.
  With ``allow_snapshot_ahead`` every such snapshot is set aside (renamed
  ``<name>.ahead-of-wal``, nothing deleted) and an older one, or genesis, is used;
  otherwise recovery raises ``WalCorruptionError``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from numbex.engine.fileio import fsync_directory, unused_name
from numbex.engine.snapshot import Snapshot, list_snapshots, load_latest
from numbex.engine.wal import WalCorruptionError, WalReader, WalWriter, list_segments

log = logging.getLogger("numbex.engine")

SET_ASIDE_SUFFIX = ".ahead-of-wal"


@dataclass
class RecoveredEngine:
    """What :func:`recover_engine` built and how long each step took.

    ``seconds`` has ``snapshot_load``, ``wal_open``, ``replay`` and ``total``.
    """

    engine: object
    wal: WalWriter
    snapshot_seq: int
    snapshot_path: Path | None
    replayed: int
    seconds: dict[str, float] = field(default_factory=dict)
    set_aside: tuple[Path, ...] = ()

    @property
    def last_seq(self) -> int:
        """Seq of the last command applied to the state (0 when there is none)."""
        return max(self.wal.last_seq, self.snapshot_seq)


def recover_engine(spec, wal_dir: str | os.PathLike[str], snapshot_dir: str | os.PathLike[str],
                   open_writer: Callable[[int], WalWriter], *, replay_after: int | None = None,
                   allow_snapshot_ahead: bool = False, use_snapshots: bool = True,
                   on_commands: Callable[[np.ndarray], None] | None = None,
                   on_events: Callable[[np.ndarray], None] | None = None) -> RecoveredEngine:
    """Build the engine state from the newest usable snapshot and the WAL after it.

    Parameters
    ----------
    spec : EngineSpec
        The engine's parameters (must match the snapshots' arrays).
    wal_dir, snapshot_dir : path
        The WAL and snapshot directories.
    open_writer : callable
        ``open_writer(first_seq) -> WalWriter`` opens the WAL for writing (``first_seq``
        is used only when the directory holds no segment).
    replay_after : int, optional
        Prefer a snapshot no newer than this seq (see the module docstring).
    allow_snapshot_ahead : bool
        Set aside snapshots ahead of the WAL instead of refusing.
    use_snapshots : bool
        False replays the whole WAL from genesis (benchmarks).
    on_commands : callable, optional
        ``on_commands(commands)`` with each replayed batch, before it is matched.
    on_events : callable, optional
        ``on_events(events)`` with each chunk of the replay's events: a view of the
        engine's event buffer, valid only during the call.

    Raises
    ------
    WalCorruptionError
        Corruption before the WAL's tail, a missing segment, a snapshot ahead of the
        WAL (without ``allow_snapshot_ahead``), or no state to start from.
    OSError
        From the file system (the WAL directory cannot be opened, ...).
    """
    from numbex.engine.matcher import Engine

    wal_dir = Path(wal_dir)
    snapshot_dir = Path(snapshot_dir)
    seconds = {}
    started = time.perf_counter()
    snapshot = _choose_snapshot(wal_dir, snapshot_dir, replay_after) if use_snapshots else None
    seconds["snapshot_load"] = time.perf_counter() - started

    mark = time.perf_counter()
    writer = open_writer((snapshot.seq if snapshot is not None else 0) + 1)
    seconds["wal_open"] = time.perf_counter() - mark
    if writer.recovery.truncations or writer.recovery.dropped_segments:
        for line in writer.recovery.describe()[1:]:
            log.warning("%s", line)

    set_aside: tuple[Path, ...] = ()
    mark = time.perf_counter()
    if snapshot is not None and snapshot.seq > writer.last_seq:
        try:
            snapshot, set_aside = _fall_back_from(snapshot, writer, snapshot_dir, allow_snapshot_ahead)
        except BaseException:
            writer.close()
            raise
    engine = Engine(spec)
    start_seq = 0
    if snapshot is not None:
        try:
            engine.load_state(snapshot.arrays)
        except BaseException:
            writer.close()
            raise
        start_seq = snapshot.seq
    seconds["snapshot_load"] += time.perf_counter() - mark

    mark = time.perf_counter()
    replayed = 0
    try:
        for commands in WalReader(wal_dir).batches(from_seq=start_seq + 1):
            if on_commands is not None:
                on_commands(commands)
            for events in engine.process_chunks(commands):
                if on_events is not None:
                    on_events(events)
            replayed += len(commands)
    except BaseException:
        writer.close()
        raise
    seconds["replay"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started
    return RecoveredEngine(engine, writer, start_seq, snapshot.path if snapshot is not None else None,
                           replayed, seconds, set_aside)


def _choose_snapshot(wal_dir: Path, snapshot_dir: Path, replay_after: int | None) -> Snapshot | None:
    if replay_after is None:
        snapshot = load_latest(snapshot_dir)
    else:
        snapshot = load_latest(snapshot_dir, max_seq=replay_after)
        if snapshot is None and not _wal_starts_at_genesis(wal_dir):
            snapshot = load_latest(snapshot_dir)
            if snapshot is not None and snapshot.seq > replay_after:
                log.warning("events of seq %d..%d cannot be republished: their WAL is pruned",
                            replay_after + 1, snapshot.seq)
    if snapshot is not None:
        for bad, reason in snapshot.skipped:
            log.warning("skipped damaged snapshot %s: %s", bad, reason)
    return snapshot


def _wal_starts_at_genesis(wal_dir: Path) -> bool:
    segments = list_segments(wal_dir) if wal_dir.is_dir() else []
    return bool(segments) and segments[0][0] == 1


def _fall_back_from(snapshot: Snapshot, writer: WalWriter, snapshot_dir: Path,
                    allowed: bool) -> tuple[Snapshot | None, tuple[Path, ...]]:
    """The snapshot is ahead of the WAL: set newer ones aside and take an older one."""
    wal_end = writer.last_seq
    first = writer.recovery.first_seq
    if not allowed:
        raise WalCorruptionError(
            f"snapshot {snapshot.path} holds the state at seq {snapshot.seq} but the WAL in "
            f"{writer.directory} ends at seq {wal_end}: records {wal_end + 1}..{snapshot.seq} are "
            "missing from the WAL (damaged or cut); refusing to start. `--allow-wal-corruption` "
            f"sets snapshots after seq {wal_end} aside and recovers from the WAL alone",
            writer.segment_path, None, wal_end + 1)
    older = load_latest(snapshot_dir, max_seq=wal_end)
    if older is None and first not in (None, 1):
        raise WalCorruptionError(
            f"the WAL in {writer.directory} ends at seq {wal_end}, before snapshot {snapshot.path} "
            f"(seq {snapshot.seq}), and starts at seq {first}: no snapshot at or before seq "
            f"{wal_end} to replay it from", writer.segment_path, None, wal_end + 1)
    moved = []
    for seq, path in list_snapshots(snapshot_dir):
        if seq > wal_end:
            target = unused_name(path.with_name(path.name + SET_ASIDE_SUFFIX))
            os.rename(path, target)
            moved.append(target)
    if moved:
        fsync_directory(snapshot_dir)
    log.warning("snapshot(s) ahead of the WAL (which ends at seq %d) set aside: %s; recovering "
                "from %s", wal_end, ", ".join(path.name for path in moved),
                older.path.name if older is not None else "the start of the WAL")
    return older, tuple(moved)
