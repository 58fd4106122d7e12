"""The ``numbex`` command: one entry point, subcommands loaded on demand.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; importing lazily keeps ``numbex --help`` fast and keeps Numba
out of processes that do not match orders: a command module imports its heavy
dependencies inside ``run``, never at module level.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, help); nested groups use "group name".
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("numbex.server.supervisor", "start the whole exchange (engine, gateways, publisher)"),
    "engine": ("numbex.engine.process", "run the engine role alone"),
    "gateway": ("numbex.server.gateway", "run the gateway role alone"),
    "publisher": ("numbex.feed.publisher", "run the market-data publisher role alone"),
    "config": ("numbex.tools.config_check", "check a config file and print it resolved"),
    "bench engine": ("numbex.tools.bench_engine", "matching engine throughput and latency"),
    "bench ring": ("numbex.tools.bench_ring", "shared-memory ring throughput and latency"),
    "bench wal": ("numbex.tools.bench_wal", "WAL group-commit throughput vs raw fdatasync"),
    "bench recovery": ("numbex.tools.bench_recovery", "recovery time from snapshot plus WAL"),
    "bench fix": ("numbex.tools.bench_fix", "FIX round trip and throughput"),
    "bench all": ("numbex.tools.bench_all", "every benchmark in turn"),
    "wal dump": ("numbex.tools.wal_dump", "print WAL records"),
    "wal verify": ("numbex.tools.wal_verify", "replay the WAL and check outputs hash identically"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="numbex", description="numbex exchange server")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, (module, help_text) in COMMANDS.items():
        words = name.split()
        holder = top
        if len(words) == 2:
            if words[0] not in groups:
                group = top.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
                group.set_defaults(_group=group)
            holder = groups[words[0]]
        sub = holder.add_parser(words[-1], help=help_text, description=help_text)
        sub.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(sub)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise
            sub.set_defaults(_missing=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        (getattr(args, "_group", None) or parser).print_help()
        return 2
    if getattr(args, "_missing", False):
        print(f"numbex: '{args.command} {getattr(args, 'subcommand', '') or ''}'".rstrip() +
              " is not available in this build", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    profile_dir = os.environ.get("NUMBEX_PROFILE")
    if not profile_dir:
        return int(module.run(args) or 0)
    return _profiled(module, args, profile_dir)


def _profiled(module, args: argparse.Namespace, directory: str) -> int:
    """Run a command under cProfile; the stats go to ``<directory>/<command>-<pid>.prof``.

    Set ``NUMBEX_PROFILE=DIR`` to profile each role of ``numbex serve`` (children inherit
    the variable); read the files with ``python -m pstats``.
    """
    import cProfile

    profiler = cProfile.Profile()
    try:
        return int(profiler.runcall(module.run, args) or 0)
    finally:
        os.makedirs(directory, exist_ok=True)
        profiler.dump_stats(os.path.join(directory, f"{args.command}-{os.getpid()}.prof"))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
