"""``numbex wal dump DIR [--json]``: print the WAL's command records, verified, read-only.

Every record is CRC-checked on the way (the same checks as recovery).  A torn tail on
the last segment ends the listing with a note (recovery would truncate it); corruption
before the tail prints the records before it, then the error, and exits with status 1.
Nothing in the directory is changed.

Text output is one aligned line per record; ``--json`` prints one JSON object per
record (the COMMAND fields, with ``op``/``side``/``ord_type``/``tif`` as names) and a
last object ``{"wal": {...}}`` summarising segments, seq range and problems.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

TEXT_COLUMNS = (("seq", 10), ("time (UTC)", 30), ("op", 11), ("side", 4), ("symbol", 6),
                ("order_id", 12), ("client_ref", 12), ("price", 10), ("qty", 8), ("stop", 8),
                ("type", 10), ("tif", 3), ("account", 7), ("session", 8), ("aux", 6), ("flags", 5))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", metavar="DIR", help="WAL directory (e.g. var/wal)")
    parser.add_argument("--json", action="store_true", help="one JSON object per record, then a summary")
    parser.add_argument("--from", dest="from_seq", type=int, default=None, metavar="SEQ",
                        help="first seq to print (default: the first in the WAL)")
    parser.add_argument("--count", type=int, default=None, metavar="N", help="print at most N records")
    parser.add_argument("--summary", action="store_true", help="print only the per-segment summary")


def run(args: argparse.Namespace) -> int:
    from numbex.engine.wal import WalCorruptionError, WalReader, scan_wal

    directory = Path(args.directory)
    if not directory.is_dir():
        print(f"numbex wal dump: {directory} is not a directory", file=sys.stderr)
        return 2
    if args.count is not None and args.count < 0:
        print("numbex wal dump: --count must be >= 0", file=sys.stderr)
        return 2
    reader = WalReader(directory)
    first = reader.first_seq
    start = max(args.from_seq or 1, first or 1)
    printed = 0
    problem = None
    if not args.summary:
        if not args.json:
            print("  ".join(title.rjust(width) for title, width in TEXT_COLUMNS))
        try:
            for batch in reader.batches(from_seq=start):
                for record in _limit(batch, args.count, printed):
                    print(json.dumps(_fields(record)) if args.json else _text_line(record))
                    printed += 1
                if args.count is not None and printed >= args.count:
                    break
        except WalCorruptionError as error:
            problem = str(error)
    summary = _summary(directory, scan_wal, WalCorruptionError, problem)
    summary["printed"] = printed
    if args.json:
        print(json.dumps({"wal": summary}))
    else:
        _print_summary(summary)
    return 1 if summary["corruption"] else 0


def _limit(batch, count, printed):
    return batch if count is None else batch[: max(0, count - printed)]


def _fields(record) -> dict:
    from numbex.engine import records

    result = {name: int(record[name]) for name in record.dtype.names if name != "pad"}
    for name, mirror in (("op", records.Op), ("side", records.Side), ("ord_type", records.OrdType),
                         ("tif", records.Tif)):
        result[name] = _enum_name(mirror, result[name])
    return result


def _enum_name(mirror, value: int) -> str:
    try:
        return mirror(value).name
    except ValueError:
        return str(value)


def _timestamp(ts_ns: int) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(ts_ns // 1_000_000_000, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(ts_ns)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ts_ns % 1_000_000_000:09d}Z"


def _text_line(record) -> str:
    fields = _fields(record)
    values = (fields["seq"], _timestamp(fields["ts_ns"]), fields["op"], fields["side"], fields["symbol"],
              fields["order_id"], fields["client_ref"], fields["price"], fields["qty"], fields["stop_price"],
              fields["ord_type"], fields["tif"], fields["account"], fields["session"], fields["aux"],
              fields["flags"])
    return "  ".join(str(value).rjust(width) for value, (_, width) in zip(values, TEXT_COLUMNS))


def _summary(directory: Path, scan_wal, corruption_error, problem: str | None) -> dict:
    try:
        report = scan_wal(directory)
    except corruption_error as error:
        return {"directory": str(directory), "segments": [], "corruption": problem or str(error)}
    segments = [{"file": scan.path.name, "first_seq": scan.first_seq, "last_seq": scan.last_seq,
                 "records": scan.records, "bytes": scan.file_bytes} for scan in report.segments]
    torn = [{"file": cut.path.name, "offset": cut.offset, "seq": cut.seq, "bytes": cut.dropped_bytes,
             "reason": cut.reason} for cut in report.truncations]
    return {"directory": str(directory), "segments": segments, "first_seq": report.first_seq,
            "last_seq": report.last_seq, "records": report.records, "torn_tail": torn,
            "corruption": problem}


def _print_summary(summary: dict) -> None:
    out = sys.stderr
    for segment in summary["segments"]:
        print(f"{segment['file']}: seq {segment['first_seq']}..{segment['last_seq']}, "
              f"{segment['records']} records, {segment['bytes']} bytes", file=out)
    if summary.get("records") is not None:
        print(f"{summary['records']} records in {len(summary['segments'])} segment(s); "
              f"printed {summary['printed']}", file=out)
    for cut in summary.get("torn_tail", []):
        print(f"torn tail: {cut['file']} at byte {cut['offset']} (seq {cut['seq']}), {cut['bytes']} bytes: "
              f"{cut['reason']} (the engine truncates it on start)", file=out)
    if summary["corruption"]:
        print(f"CORRUPTION: {summary['corruption']}", file=out)
