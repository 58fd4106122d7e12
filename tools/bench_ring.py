"""``numbex bench ring``: shared-memory ring throughput and one-way latency.

A Python producer (this process, through :meth:`Ring.offer`) sends COMMAND
records to a Numba consumer in another process (``drain_and_stamp``, an
``@njit`` loop on ``ring_poll``).  Each record carries its send time in
``ts_ns`` from ``time.perf_counter_ns`` (``CLOCK_MONOTONIC``, one clock for
every process on the machine); the consumer subtracts it from its own
``clock_gettime(CLOCK_MONOTONIC)`` on receipt.

Two phases, one ring:

- throughput: ``--count`` records offered in batches of ``--batch`` as fast as
  the producer can; messages/s from the first send to the last receipt (the
  latency of this phase is reported as "loaded": it includes queueing);
- latency: ``--latency-count`` single records, one every ``--interval-ns``;
  one-way latency percentiles from HdrHistogram.

The consumer idles with ``backoff`` (a bounded spin in the kernel, then yield,
then a futex park on the ring), as the engine does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

RESULT_SECONDS = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=1_000_000,
                        help="records in the throughput phase (default 1,000,000)")
    parser.add_argument("--latency-count", type=int, default=100_000,
                        help="single paced records in the latency phase (default 100,000)")
    parser.add_argument("--interval-ns", type=int, default=10_000,
                        help="gap between latency probes, ns (default 10,000)")
    parser.add_argument("--batch", type=int, default=64, help="records per offer (default 64)")
    parser.add_argument("--slots", type=int, default=4096,
                        help="ring slots, a power of two (default 4096)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _percentiles(values) -> dict:
    """p50/p90/p99/p99.9/max of nanosecond values through HdrHistogram."""
    import numpy as np
    from hdrh.histogram import HdrHistogram

    histogram = HdrHistogram(1, 60_000_000_000, 3)
    clipped = np.clip(values, 1, 60_000_000_000)
    for value, count in zip(*np.unique(clipped, return_counts=True)):
        histogram.record_value(int(value), int(count))
    result = {f"p{label}": histogram.get_value_at_percentile(percentile)
              for label, percentile in (("50", 50.0), ("90", 90.0), ("99", 99.0),
                                        ("99.9", 99.9))}
    result["max"] = int(histogram.get_max_value())
    return result


def _consumer(name: str, throughput_count: int, total: int, connection) -> None:
    """The other process: attach, report ready, drain and stamp, send the results."""
    import numpy as np

    from numbex.agent import BackoffIdle
    from numbex.engine.records import COMMAND
    from numbex.engine.ring import Ring
    from numbex.tools.bench_ring_kernels import clock_now, drain_and_stamp

    ring = Ring.attach(name, COMMAND)
    out = np.zeros(256, COMMAND)
    latencies = np.full(total, -1, dtype=np.int64)
    marks = np.array([0, throughput_count - 1], dtype=np.int64)
    drain_and_stamp(ring.header, ring.data, out, latencies[:0], marks, 0, 1)  # compile/load
    clock_now()
    idle = BackoffIdle(ring)
    connection.send("ready")
    received = 0
    deadline = time.monotonic() + RESULT_SECONDS
    while received < total and time.monotonic() < deadline:
        before = received
        received = drain_and_stamp(ring.header, ring.data, out, latencies, marks, received, 20_000)
        idle.idle(received - before)
    connection.send({"received": int(received), "last_receive_ns": int(marks[0])})
    connection.send_bytes(latencies.tobytes())
    ring.close()


def _produce(ring, first: int, count: int, batch: int, idle) -> int:
    """Offer records ``first .. first+count-1`` in batches, stamping each batch; return the first send time."""
    import numpy as np

    records = np.zeros(batch, ring.dtype)
    sent = 0
    first_send = 0
    deadline = time.monotonic() + RESULT_SECONDS
    while sent < count and time.monotonic() < deadline:
        size = min(batch, count - sent)
        records["seq"][:size] = np.arange(first + sent, first + sent + size)
        stamp = time.perf_counter_ns()
        records["ts_ns"][:size] = stamp
        written = ring.offer(records[:size])
        if sent == 0 and written:
            first_send = stamp
        sent += written
        idle.idle(written)
    return first_send


def _paced(ring, first: int, count: int, interval_ns: int) -> None:
    """Send single records ``interval_ns`` apart (a busy wait: the pacing itself)."""
    import numpy as np

    record = np.zeros(1, ring.dtype)
    next_send = time.perf_counter_ns()
    deadline = time.monotonic() + RESULT_SECONDS
    for sequence in range(first, first + count):
        while time.perf_counter_ns() < next_send:
            pass
        record["seq"] = sequence
        record["ts_ns"] = time.perf_counter_ns()
        while ring.offer(record) == 0 and time.monotonic() < deadline:
            time.sleep(0)
        next_send += interval_ns


def measure(count: int, latency_count: int, interval_ns: int, batch: int, slots: int) -> dict:
    """Run both phases against a consumer process and return the figures."""
    import multiprocessing

    import numpy as np

    from numbex.agent import BackoffIdle
    from numbex.engine.records import COMMAND
    from numbex.engine.ring import Ring
    from numbex.tools.bench_ring_kernels import clock_now

    skew = abs(clock_now() - time.perf_counter_ns())
    if skew > 1_000_000:
        raise RuntimeError(f"perf_counter_ns is not CLOCK_MONOTONIC here (skew {skew} ns)")
    name = f"numbex-bench-ring-{os.getpid()}"
    total = count + latency_count
    ring = Ring.create(name, COMMAND, slots, replace=True)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_consumer, args=(name, count, total, sender),
                              name="numbex bench ring consumer", daemon=True)
    try:
        process.start()
        sender.close()
        if not receiver.poll(RESULT_SECONDS) or receiver.recv() != "ready":
            raise RuntimeError("the consumer process did not start")
        first_send = _produce(ring, 0, count, batch, BackoffIdle(spin_ns=20_000, yield_ns=50_000))
        _paced(ring, count, latency_count, interval_ns)
        if not receiver.poll(RESULT_SECONDS):
            raise RuntimeError("the consumer process did not finish")
        summary = receiver.recv()
        latencies = np.frombuffer(receiver.recv_bytes(), dtype=np.int64)
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()
        ring.unlink()
        ring.close()
    if summary["received"] != total or (latencies < 0).any():
        raise RuntimeError(f"the consumer received {summary['received']} of {total} records")
    seconds = (summary["last_receive_ns"] - first_send) / 1e9
    return {
        "benchmark": "ring",
        "record_bytes": COMMAND.itemsize,
        "slots": slots,
        "batch": batch,
        "records": count,
        "throughput_msgs_per_s": round(count / seconds),
        "throughput_mb_per_s": round(count * COMMAND.itemsize / seconds / 1e6, 1),
        "loaded_latency_ns": _percentiles(latencies[:count]),
        "latency_probes": latency_count,
        "latency_interval_ns": interval_ns,
        "latency_ns": _percentiles(latencies[count:]),
    }


def run(args: argparse.Namespace) -> int:
    slots = args.slots
    if slots < 2 or slots & (slots - 1):
        print(f"numbex bench ring: --slots must be a power of two >= 2, got {slots}", file=sys.stderr)
        return 2
    for label, value in (("--count", args.count), ("--latency-count", args.latency_count),
                         ("--batch", args.batch)):
        if value < 1:
            print(f"numbex bench ring: {label} must be >= 1, got {value}", file=sys.stderr)
            return 2
    if args.interval_ns < 0:
        print(f"numbex bench ring: --interval-ns must be >= 0, got {args.interval_ns}",
              file=sys.stderr)
        return 2
    result = measure(args.count, args.latency_count, args.interval_ns, args.batch, slots)
    if args.json:
        print(json.dumps(result))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="numbex bench ring: Python producer -> Numba consumer (other process)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("records (throughput phase)", f"{result['records']:,} x {result['record_bytes']} B")
    table.add_row("ring slots / offer batch", f"{slots:,} / {args.batch}")
    table.add_row("throughput", f"{result['throughput_msgs_per_s']:,} msg/s")
    table.add_row("", f"{result['throughput_mb_per_s']:,} MB/s")
    for label, key in (("loaded latency", "loaded_latency_ns"), ("one-way latency", "latency_ns")):
        for percentile, value in result[key].items():
            table.add_row(f"{label} {percentile}", f"{value:,} ns")
        if key == "loaded_latency_ns":
            table.add_row("latency probes", f"{result['latency_probes']:,} every "
                          f"{result['latency_interval_ns']:,} ns")
    Console().print(table)
    return 0
