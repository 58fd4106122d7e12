"""``numbex wal verify DIR [--config FILE] [--json]``: replay the WAL, check every snapshot against it.

DIR is a data dir (holding ``wal/`` and ``snapshots/``) or a WAL directory itself (its
snapshots are then looked for in ``../snapshots``).  Nothing in it is changed.

1. The reference run replays the WAL from genesis through a fresh
   ``Engine(EngineSpec.from_config(config))`` and hashes the event stream (SHA-256 of
   the EVENT records' bytes, batch by batch), and, for each snapshot at seq *s*, the
   events of commands after *s*.  When the WAL was pruned (it does not start at seq
   1) the reference run starts from the oldest snapshot whose tail is still in the
   WAL instead, and the output says so.
2. Each other snapshot is loaded into a fresh engine and the WAL after it replayed:
   its events must hash identically to the same seq range of the reference run, and
   its final state arrays must equal the reference run's.

Exit status: 0 when everything matches; 1 on a mismatch (the output says which
snapshot and what differs; a damaged snapshot, one ahead of the WAL or one whose tail
is pruned count as mismatches, since recovery could not use it); 2 on bad input
(missing directory, corrupt WAL, no records, a config that does not fit the
snapshots).  A torn tail is reported and the records before it are verified (the
engine truncates it on start).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path


class VerifyInputError(Exception):
    """The input cannot be verified (exit status 2); the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR",
                        help="data dir holding wal/ and snapshots/, or a WAL directory")
    parser.add_argument("--config", help="config the engine ran with (default: the embedded defaults)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from numbex import config as config_module

    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as error:
        print(f"numbex wal verify: {error}", file=sys.stderr)
        return 2
    from numbex.engine.spec import EngineSpec

    try:
        wal_dir, snapshot_dir = resolve_directories(Path(args.directory))
        result = verify(wal_dir, snapshot_dir, EngineSpec.from_config(config))
    except VerifyInputError as error:
        print(f"numbex wal verify: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0 if result["ok"] else 1


def resolve_directories(path: Path) -> tuple[Path, Path | None]:
    """``(wal_dir, snapshot_dir or None)`` for a data dir or a WAL dir."""
    from numbex.engine.wal import list_segments

    if not path.is_dir():
        raise VerifyInputError(f"{path} is not a directory")
    if (path / "wal").is_dir():
        snapshots = path / "snapshots"
        return path / "wal", snapshots if snapshots.is_dir() else None
    if list_segments(path):
        snapshots = path.parent / "snapshots"
        return path, snapshots if snapshots.is_dir() else None
    raise VerifyInputError(f"{path} holds neither a wal/ directory nor WAL segments (wal-*.log)")


def verify(wal_dir: Path, snapshot_dir: Path | None, spec) -> dict:
    """Run the checks; return the result as a JSON-ready dict (``ok`` says if all matched)."""
    from numbex.engine.wal import WalCorruptionError, scan_wal

    try:
        report = scan_wal(wal_dir)
    except WalCorruptionError as error:
        raise VerifyInputError(f"corrupt WAL: {error}") from None
    except OSError as error:
        raise VerifyInputError(f"cannot read the WAL in {wal_dir}: {error}") from None
    if report.last_seq is None:
        raise VerifyInputError(f"the WAL in {wal_dir} holds no record")
    first, last = report.first_seq, report.last_seq
    result = {"wal": str(wal_dir), "snapshots_dir": str(snapshot_dir) if snapshot_dir else None,
              "segments": len(report.segments), "first_seq": first, "last_seq": last,
              "torn_tail": [line for line in report.describe()[1:]], "notes": [], "problems": []}
    snapshots = _load_snapshots(snapshot_dir, first, last, result["problems"])
    reference = None
    if first != 1:
        usable = [entry for entry in snapshots if entry["state"] is not None]
        if not usable:
            raise VerifyInputError(f"the WAL in {wal_dir} starts at seq {first} (pruned) and no snapshot "
                                   f"at seq {first - 1} or later verifies: nothing to replay it from")
        reference = usable[0]
        result["notes"].append(f"the WAL starts at seq {first} (pruned): verified from the oldest "
                               f"snapshot, seq {reference['seq']}, instead of genesis")
    start = reference["seq"] if reference else 0
    boundaries = [entry["seq"] for entry in snapshots if entry["state"] is not None and entry["seq"] > start]
    run = _replay(spec, wal_dir, start, reference["state"] if reference else None, boundaries)
    result.update(reference="genesis" if reference is None else f"snapshot {reference['seq']}",
                  records=run["records"], events=run["events"], sha256=run["sha256"])
    for entry in snapshots:
        entry_result = entry["result"]
        if entry is reference:
            entry_result.update(result="reference", tail_records=run["records"], tail_events=run["events"],
                                tail_sha256=run["sha256"])
        elif entry["state"] is not None:
            _check_snapshot(spec, wal_dir, entry, run, result["problems"])
        result.setdefault("snapshots", []).append(entry_result)
    result.setdefault("snapshots", [])
    result["ok"] = not result["problems"]
    return result


def _load_snapshots(snapshot_dir: Path | None, first: int, last: int, problems: list) -> list[dict]:
    from numbex.engine.snapshot import SnapshotCorruptionError, list_snapshots, read_snapshot

    entries = []
    for seq, path in list_snapshots(snapshot_dir) if snapshot_dir else []:
        entry = {"seq": seq, "state": None, "result": {"seq": seq, "file": path.name}}
        problem = None
        try:
            snapshot = read_snapshot(path)
        except (SnapshotCorruptionError, OSError) as error:
            problem = f"damaged ({error}); recovery skips it"
        else:
            if snapshot.seq != seq:
                problem = f"file name says seq {seq}, header says {snapshot.seq}"
            elif seq > last:
                problem = f"ahead of the WAL, which ends at seq {last}"
            elif seq < first - 1:
                problem = f"its WAL tail is pruned (the WAL starts at seq {first})"
            else:
                entry["state"] = snapshot.arrays
        if problem:
            entry["result"].update(result="MISMATCH", problem=problem)
            problems.append(f"snapshot {path.name}: {problem}")
        entries.append(entry)
    return entries


def _new_engine(spec, state):
    from numbex.engine.matcher import Engine

    engine = Engine(spec)
    if state is not None:
        try:
            engine.load_state(state)
        except ValueError as error:
            raise VerifyInputError(f"{error}; pass the config the engine ran with (--config)") from None
    return engine


def _replay(spec, wal_dir: Path, start: int, state, boundaries: list[int]) -> dict:
    """Replay the WAL after ``start``; hash all events and the events after each boundary."""
    from numbex.engine.wal import WalCorruptionError, WalReader

    engine = _new_engine(spec, state)
    whole = hashlib.sha256()
    tails = {seq: [hashlib.sha256(), 0] for seq in boundaries}
    records = events = 0
    try:
        for commands in WalReader(wal_dir).batches(from_seq=start + 1):
            records += len(commands)
            for chunk in engine.process_chunks(commands):
                data = memoryview(chunk).cast("B")
                whole.update(data)
                events += len(chunk)
                seqs = chunk["seq"]
                for seq, tail in tails.items():
                    cut = int(seqs.searchsorted(seq, side="right"))
                    if cut < len(chunk):
                        tail[0].update(memoryview(chunk[cut:]).cast("B"))
                        tail[1] += len(chunk) - cut
    except WalCorruptionError as error:
        raise VerifyInputError(f"corrupt WAL: {error}") from None
    return {"records": records, "events": events, "sha256": whole.hexdigest(), "state": engine.state,
            "tails": {seq: (tail[0].hexdigest(), tail[1]) for seq, tail in tails.items()}}


def _check_snapshot(spec, wal_dir: Path, entry: dict, reference: dict, problems: list) -> None:
    from numbex.engine.matcher import STATE_ARRAYS

    seq = entry["seq"]
    run = _replay(spec, wal_dir, seq, entry["state"], [])
    expected_hash, expected_events = reference["tails"][seq]
    events_match = run["sha256"] == expected_hash and run["events"] == expected_events
    differing = [name for name in STATE_ARRAYS
                 if not _same_array(run["state"][name], reference["state"][name])]
    entry["result"].update(tail_records=run["records"], tail_events=run["events"],
                           tail_sha256=run["sha256"], events_match=events_match,
                           state_match=not differing, result="ok")
    found = []
    if not events_match:
        found.append(f"events of seq {seq + 1}..{seq + run['records']} differ from the reference run's "
                     f"({run['events']} events, sha256 {run['sha256'][:16]}; reference: {expected_events} "
                     f"events, sha256 {expected_hash[:16]})")
    if differing:
        found.append(f"final state differs from the reference run's in {', '.join(differing)}")
    if found:
        entry["result"].update(result="MISMATCH", problem="; ".join(found))
        problems.append(f"snapshot {entry['result']['file']}: " + "; ".join(found))


def _same_array(left, right) -> bool:
    return left.shape == right.shape and left.dtype == right.dtype and left.tobytes() == right.tobytes()


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"numbex wal verify: {result['wal']}", show_header=False)
    summary.add_column("what")
    summary.add_column("value", overflow="fold")
    summary.add_row("segments", str(result["segments"]))
    summary.add_row("seq range", f"{result['first_seq']}..{result['last_seq']}")
    summary.add_row("replayed from", result["reference"])
    summary.add_row("records", f"{result['records']:,}")
    summary.add_row("events", f"{result['events']:,}")
    summary.add_row("events sha256", result["sha256"])
    for line in result["torn_tail"]:
        summary.add_row("torn tail", line)
    for note in result["notes"]:
        summary.add_row("note", note)
    console.print(summary)
    if result["snapshots"]:
        table = Table(title=f"snapshots in {result['snapshots_dir']}")
        for title, justify in (("seq", "right"), ("tail records", "right"), ("tail events", "right"),
                               ("tail sha256", "left"), ("events", "left"), ("state", "left"),
                               ("result", "left")):
            table.add_column(title, justify=justify)
        for entry in result["snapshots"]:
            table.add_row(f"{entry['seq']:,}", _count(entry.get("tail_records")),
                          _count(entry.get("tail_events")), (entry.get("tail_sha256") or "")[:16],
                          _verdict(entry.get("events_match")), _verdict(entry.get("state_match")),
                          entry["result"])
        console.print(table)
    else:
        console.print("no snapshots to check")
    for problem in result["problems"]:
        console.print(f"[bold red]MISMATCH[/]: {problem}", highlight=False)
    if result["ok"]:
        console.print("[bold green]OK[/]: every snapshot matches the WAL replay", highlight=False)


def _count(value) -> str:
    return "" if value is None else f"{value:,}"


def _verdict(value) -> str:
    return "" if value is None else ("same" if value else "DIFFERENT")
