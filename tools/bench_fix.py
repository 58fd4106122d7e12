"""``numbex bench fix``: FIX order round trip and pipelined throughput against a real server.

The server is started as a subprocess from a temporary config with a temporary
data directory and shared-memory instance name:

* default: ``numbex serve --config <temp> --roles engine,gateway``: the real
  pipeline, gateway process -> ring -> engine process (WAL with ``sync``
  durability: fdatasync per group before any acknowledgement) -> ring -> gateway;
* ``--local``: ``numbex gateway --local``: the gateway with an in-process engine
  (no WAL, no rings), to separate the gateway's own cost.

Measured, in this order:

(a) one order in flight, ``--orders`` times after ``--warmup``: time from sending
    a NewOrderSingle (an IOC buy below the market) to receiving its
    ExecutionReport (ExecType 0); then, in the same run, a raw TCP round trip of the
    same size through a minimal Python echo server process on 127.0.0.1;
    p50/p99/p99.9/max from HdrHistogram;
(b) pipelined throughput: ``--sessions`` sessions, each keeping up to ``--window``
    orders in flight for ``--seconds``; acknowledged orders per second.

Every phase is bounded in time; the server's processes are stopped in ``finally``
(SIGTERM to the process we started, then SIGKILL to it and to its own children
if it has not exited within 20 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 20.0
ORDER_BYTES = 170          # a NewOrderSingle of the bench, for the echo comparison


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--local", action="store_true",
                        help="gateway with an in-process engine (numbex gateway --local) instead of numbex serve")
    parser.add_argument("--mode", choices=("poll", "uvloop"), default="poll", help="gateway.mode")
    parser.add_argument("--idle", choices=("busy-spin", "backoff", "block"), default="backoff",
                        help="gateway.idle and engine.idle")
    parser.add_argument("--idle-yield-us", type=int, default=1000,
                        help="backoff: gateway.idle_yield_us and engine.idle_yield_us")
    parser.add_argument("--durability", choices=("sync", "async"), default="sync", help="engine.durability")
    parser.add_argument("--store-sync", choices=("batch", "always", "none"), default="batch",
                        help="gateway.fix.store_sync (FIX session stores; batch: durable before sending)")
    parser.add_argument("--orders", type=int, default=5000, help="round trips measured (one in flight)")
    parser.add_argument("--warmup", type=int, default=500, help="round trips before measuring")
    parser.add_argument("--sessions", type=int, default=4, help="sessions of the throughput phase")
    parser.add_argument("--window", type=int, default=200, help="orders in flight per session")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of the throughput phase")
    parser.add_argument("--dir", default=None, help="parent of the temporary data directory")


def bench_config(data_dir: Path, instance: str, port: int, sessions: int, args) -> str:
    names = "".join(f'[[sessions]]\ncomp_id = "BENCH{index}"\naccount = "BENCH"\n'
                    f"messages_per_second = 1000000\n" for index in range(max(1, sessions)))
    return f"""[exchange]
comp_id = "NUMBEX"
data_dir = "{data_dir}"
instance = "{instance}"
[engine]
idle = "{args.idle}"
idle_yield_us = {args.idle_yield_us}
durability = "{args.durability}"
max_orders = 65536
max_stops = 1024
[gateway]
idle = "{args.idle}"
idle_yield_us = {args.idle_yield_us}
mode = "{args.mode}"
[gateway.fix]
host = "127.0.0.1"
port = {port}
store_sync = "{args.store_sync}"
[[instruments]]
symbol = "TEST"
tick_size = "0.01"
reference_price = "100.00"
band_percent = 20
[[accounts]]
name = "BENCH"
{names}"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_listening(port: int, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc), to stop what a supervisor started."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(part) for part in text.split()]


def stop_server(process: subprocess.Popen) -> None:
    children = child_pids(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pid in children:                  # roles left behind by a supervisor that was killed
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def latency_summary(samples: list[int]) -> dict:
    from hdrh.histogram import HdrHistogram

    if not samples:
        return {"count": 0}
    histogram = HdrHistogram(1, 60_000_000_000, 3)
    for value in samples:
        histogram.record_value(max(1, value))
    return {
        "count": len(samples),
        "p50_us": round(histogram.get_value_at_percentile(50) / 1000, 1),
        "p99_us": round(histogram.get_value_at_percentile(99) / 1000, 1),
        "p99_9_us": round(histogram.get_value_at_percentile(99.9) / 1000, 1),
        "max_us": round(histogram.get_max_value() / 1000, 1),
        "mean_us": round(histogram.get_mean_value() / 1000, 1),
    }


def run(args: argparse.Namespace) -> int:
    from numbex.tools.bench_fix_clients import (
        BenchError, echo_round_trips, order_round_trips, pipelined_throughput,
    )

    if args.orders <= 0 or args.warmup < 0 or args.sessions <= 0 or args.window <= 0 or args.seconds <= 0:
        print("numbex bench fix: --orders, --sessions, --window and --seconds must be positive", file=sys.stderr)
        return 2
    parent = Path(args.dir) if args.dir else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="numbex-bench-fix-", dir=parent))
    instance = f"benchfix{os.getpid()}"
    port = free_port()
    config_path = workdir / "bench.toml"
    config_path.write_text(bench_config(workdir / "data", instance, port, args.sessions, args))
    command = [sys.executable, "-m", "numbex.cli"]
    if args.local:
        command += ["gateway", "--local", "--config", str(config_path)]
    else:
        command += ["serve", "--config", str(config_path), "--roles", "engine,gateway"]
    log_path = workdir / "server.log"
    result: dict = {"server": "numbex gateway --local" if args.local else "numbex serve (engine + gateway)",
                    "gateway_mode": args.mode, "idle": args.idle, "idle_yield_us": args.idle_yield_us,
                    "store_sync": args.store_sync,
                    "durability": "none (in-process engine)" if args.local else args.durability}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
        try:
            wait_listening(port, process, START_TIMEOUT_SECONDS)
            max_seconds = 60.0
            orders = order_round_trips(port, args.orders, args.warmup, max_seconds)
            result["order_round_trip"] = latency_summary(orders)
            echo = echo_round_trips(args.orders, args.warmup, ORDER_BYTES, max_seconds)
            result["tcp_echo_round_trip"] = latency_summary(echo)
            result["throughput"] = pipelined_throughput(port, args.sessions, args.window, args.seconds)
        except (BenchError, RuntimeError, OSError) as error:
            print(f"numbex bench fix: {error}", file=sys.stderr)
            print(f"server log ({log_path}):\n{log_path.read_text(errors='replace')[-3000:]}", file=sys.stderr)
            return 1
        finally:
            stop_server(process)
            if not args.local:
                from numbex.engine.channels import remove_all

                remove_all(instance)          # the rings of this run's instance in /dev/shm
    shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"server: {result['server']}, gateway {args.mode}, idle {args.idle}, durability {result['durability']}, "
          f"FIX store sync {args.store_sync}")
    for label, key in (("order -> ExecutionReport", "order_round_trip"), ("raw TCP echo", "tcp_echo_round_trip")):
        figures = result[key]
        print(f"{label:26s} p50 {figures['p50_us']:8.1f} us  p99 {figures['p99_us']:8.1f} us  "
              f"p99.9 {figures['p99_9_us']:8.1f} us  max {figures['max_us']:9.1f} us  ({figures['count']} round trips)")
    throughput = result["throughput"]
    print(f"pipelined: {throughput['orders_per_second']:,} acknowledged orders/s ({throughput['sessions']} sessions, "
          f"{throughput['window']} in flight each, {throughput['orders']:,} orders in {throughput['seconds']} s)")
    return 0
