"""``numbex bench recovery``: how long the engine takes to recover, from a snapshot and from genesis.

Builds a data dir the way the engine writes one: ``--commands`` commands (default
1,000,000) of the benchmark workload (:func:`numbex.tools.workload.generate`, cached
under ``<data-dir>/bench``) journaled with ``WalWriter`` in groups of ``--group``
(fdatasync per group) and matched by ``Engine``, with one snapshot
(``Engine.save_state`` + ``write_snapshot``) after seq ``--snapshot-at`` (default:
the middle).  Then it times :func:`numbex.engine.recovery.recover_engine`, the code
the engine process runs at start:

* ``snapshot_load``: choose, read and verify (CRC32C) the newest snapshot, load it;
* ``wal_open``: open the WAL for writing (every segment scanned and CRC-checked);
* ``replay``: the WAL tail after the snapshot, read and matched;
* ``total``.

and the same with no snapshot (the whole WAL replayed from genesis) for comparison.
Each is run ``--repeat`` times; the run with the median total is reported.  The files
were just written, so they are read from the page cache (a cold start adds the disk's
read time); the matching kernels are already compiled (a fresh engine process also
loads them from the Numba cache).  Target: at most 1 s from snapshot plus tail for
1M commands.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 1.0
STEPS = ("snapshot_load", "wal_open", "replay", "total")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--commands", type=int, default=1_000_000, help="commands in the WAL")
    parser.add_argument("--snapshot-at", type=int, default=None, metavar="SEQ",
                        help="seq of the snapshot (default: the middle of the WAL)")
    parser.add_argument("--instruments", type=int, default=10, help="instruments in the workload")
    parser.add_argument("--seed", type=int, default=1, help="workload seed")
    parser.add_argument("--max-orders", type=int, default=1 << 20,
                        help="engine resting-order capacity (sets the snapshot size)")
    parser.add_argument("--group", type=int, default=65536, help="records per WAL group")
    parser.add_argument("--repeat", type=int, default=3, help="recoveries timed per case")
    parser.add_argument("--data-dir", default="./var", help="the data directory (default ./var)")
    parser.add_argument("--dir", default=None,
                        help="parent of the temporary data dir (default: <data-dir>/bench)")
    parser.add_argument("--keep", action="store_true", help="keep the built data dir")


def run(args: argparse.Namespace) -> int:
    problem = _check_arguments(args)
    if problem:
        print(f"numbex bench recovery: {problem}", file=sys.stderr)
        return 2
    parent = Path(args.dir) if args.dir else Path(args.data_dir) / "bench"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        records = _workload(parent, args)
        directory = Path(tempfile.mkdtemp(prefix="recovery-", dir=parent))
    except (OSError, ValueError) as error:
        print(f"numbex bench recovery: {error}", file=sys.stderr)
        return 2
    try:
        result = measure(records, directory, args)
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)
    result["directory"] = str(directory) + ("" if args.keep else " (removed)")
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0


def _check_arguments(args: argparse.Namespace) -> str | None:
    if args.commands < 1:
        return "--commands must be >= 1"
    if args.snapshot_at is not None and not 1 <= args.snapshot_at <= args.commands:
        return f"--snapshot-at must be in 1..{args.commands}"
    for name in ("instruments", "max_orders", "group", "repeat"):
        if getattr(args, name) < 1:
            return f"--{name.replace('_', '-')} must be >= 1"
    return None


def _workload(parent: Path, args: argparse.Namespace):
    from numbex.tools import workload

    path = parent / f"recovery-{args.instruments}-{args.commands}-{args.seed}.npy"
    if path.exists():
        records, _ = workload.load(path)
        if len(records) >= args.commands:
            return records[: args.commands]
    records, prefill = workload.generate(args.commands, args.instruments, args.seed)
    workload.save(path, records, prefill, ops=args.commands, instruments=args.instruments, seed=args.seed)
    return records[: args.commands]


def measure(records, directory: Path, args: argparse.Namespace) -> dict:
    """Build the data dir in ``directory`` and time the recoveries; return the figures."""
    import numpy as np

    from numbex.engine.matcher import STATE_ARRAYS
    from numbex.engine.recovery import recover_engine
    from numbex.engine.wal import WalWriter
    from numbex.tools.workload import spec_for, to_commands

    spec = spec_for(records, max_orders=args.max_orders)
    commands = to_commands(records)
    commands["ts_ns"] = 1_700_000_000_000_000_000 + commands["seq"].astype(np.int64) * 1000
    snapshot_at = args.snapshot_at if args.snapshot_at is not None else max(1, len(commands) // 2)
    wal_dir, snapshot_dir = directory / "wal", directory / "snapshots"
    segment_bytes = 256 << 20
    built = _build(spec, commands, wal_dir, snapshot_dir, snapshot_at, args.group, segment_bytes)

    def open_writer(first_seq: int) -> WalWriter:
        return WalWriter(wal_dir, segment_bytes, "sync", first_seq=first_seq)

    cases = {}
    states = {}
    for name, use_snapshots in (("from_snapshot", True), ("from_genesis", False)):
        runs = []
        for _ in range(args.repeat):
            recovered = recover_engine(spec, wal_dir, snapshot_dir, open_writer, use_snapshots=use_snapshots)
            recovered.wal.close()
            runs.append((recovered.seconds, recovered.snapshot_seq, recovered.replayed))
            states[name] = recovered.engine.state
            del recovered
        runs.sort(key=lambda run: run[0]["total"])
        seconds, snapshot_seq, replayed = runs[len(runs) // 2]
        cases[name] = {**{step: seconds[step] for step in STEPS}, "snapshot_seq": snapshot_seq,
                       "replayed": replayed, "best_total": runs[0][0]["total"]}
    same = all(np.array_equal(states["from_snapshot"][name], states["from_genesis"][name])
               for name in STATE_ARRAYS)
    if not same:
        raise RuntimeError("recovery from the snapshot and from genesis reached different states")
    return {"commands": len(commands), "snapshot_at": snapshot_at, "instruments": spec.n_instruments,
            "max_orders": spec.max_orders, "repeat": args.repeat, **built, **cases,
            "target_seconds": TARGET_SECONDS,
            "target_met": cases["from_snapshot"]["total"] <= TARGET_SECONDS}


def _build(spec, commands, wal_dir: Path, snapshot_dir: Path, snapshot_at: int, group: int,
           segment_bytes: int) -> dict:
    from numbex.engine.matcher import Engine
    from numbex.engine.snapshot import write_snapshot
    from numbex.engine.wal import WalWriter

    started = time.perf_counter()
    engine = Engine(spec)
    snapshot_path = None
    with WalWriter(wal_dir, segment_bytes, "sync") as writer:
        for begin, end in _pieces(len(commands), snapshot_at, group):
            part = commands[begin:end]
            writer.append(part)
            writer.commit()
            engine.process(part)
            if end == snapshot_at:
                meta = {"max_orders": spec.max_orders, "max_stops": spec.max_stops}
                snapshot_path = write_snapshot(snapshot_dir, snapshot_at, engine.save_state(), meta)
    wal_bytes = sum(path.stat().st_size for path in wal_dir.iterdir())
    return {"build_seconds": time.perf_counter() - started, "wal_bytes": wal_bytes,
            "snapshot_bytes": snapshot_path.stat().st_size, "resting_at_end": engine.resting_count}


def _pieces(total: int, cut: int, group: int):
    """Group ranges ``(begin, end)`` covering ``0..total``, one of them ending at ``cut``."""
    for low, high in ((0, cut), (cut, total)):
        for begin in range(low, high, group):
            yield begin, min(begin + group, high)


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"numbex bench recovery: {result['commands']:,} commands, snapshot at seq "
                        f"{result['snapshot_at']:,}, median of {result['repeat']}")
    table.add_column("step")
    table.add_column("from snapshot (s)", justify="right")
    table.add_column("from genesis (s)", justify="right")
    for step in STEPS:
        table.add_row(step, f"{result['from_snapshot'][step]:.3f}", f"{result['from_genesis'][step]:.3f}")
    table.add_row("records replayed", f"{result['from_snapshot']['replayed']:,}",
                  f"{result['from_genesis']['replayed']:,}")
    console.print(table)
    console.print(f"WAL {result['wal_bytes'] / 2**20:,.1f} MiB, snapshot {result['snapshot_bytes'] / 2**20:,.1f} "
                  f"MiB ({result['max_orders']:,} order slots, {result['resting_at_end']:,} resting at the "
                  f"end), built in {result['build_seconds']:.1f} s in {result['directory']}", highlight=False)
    verdict = "met" if result["target_met"] else "NOT met"
    console.print(f"target: total from snapshot <= {result['target_seconds']:.1f} s: {verdict}", highlight=False)
