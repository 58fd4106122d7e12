"""``numbex bench all``: every benchmark of this build in turn, each as its own process."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

BENCHES = (
    ("engine", "numbex.tools.bench_engine",
     ["--generate", "--ops", "1000000", "--instruments", "1", "--seed", "1"]),
    ("engine", "numbex.tools.bench_engine",
     ["--generate", "--ops", "1000000", "--instruments", "100", "--seed", "1"]),
    ("ring", "numbex.tools.bench_ring", []),
    ("wal", "numbex.tools.bench_wal", []),
    ("recovery", "numbex.tools.bench_recovery", []),
    ("fix", "numbex.tools.bench_fix", []),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="pass --json to every benchmark")


def run(args: argparse.Namespace) -> int:
    failures = 0
    for name, module, extra in BENCHES:
        if importlib.util.find_spec(module) is None:
            print(f"== bench {name}: not in this build", flush=True)
            continue
        argv = [sys.executable, "-m", "numbex.cli", "bench", name, *extra]
        if args.json:
            argv.append("--json")
        print(f"== {' '.join(argv[3:])}", flush=True)
        code = subprocess.call(argv)
        if code:
            print(f"== bench {name} exited with {code}", flush=True)
            failures += 1
    return 1 if failures else 0
