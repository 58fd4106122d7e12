"""One side of a ring stress run, as a separate process (driven by test_ring_stress.py).

Roles (first argument):

``producer``
    writes ``--count`` COMMAND records; record ``s`` carries ``seq = s``, payload
    fields derived from ``s`` and, in ``aux``, a checksum of all of them.
    ``--mode python`` offers through :meth:`Ring.offer`; ``--mode numba`` runs an
    ``@njit`` loop calling ``ring_offer`` then :meth:`Ring.wake_consumer`;
    ``--mode broken`` uses a deliberately wrong kernel that publishes the tail
    *before* copying the records (``--delay`` pause hints in between).
``consumer``
    reads until ``--count`` records, checking ``seq`` is the next expected number
    (no gap, no repeat, no stale slot) and the checksum matches (no torn record).
    ``--mode python`` polls through :meth:`Ring.poll`; ``--mode numba`` polls from
    an ``@njit`` loop calling ``ring_poll``.
``wake-producer`` / ``wake-consumer``
    park/wake cycles: the consumer idles with ``block`` on the ring (every idle
    cycle a futex park with ``--timeout-ns``) and counts parks that timed out;
    the producer sends one record per cycle, mostly right after it sees the
    consumer parked.  ``--mode no-wake`` publishes without waking (a control).

Both stress sides idle with ``backoff``; every loop is bounded by a count and by
``--seconds`` of wall time.  Each process prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import numpy as np
from numba import njit

from numbex.agent import BackoffIdle, BlockIdle
from numbex.engine import ring_kernels as k
from numbex.engine.atomics import cpu_pause, load_acquire, store_release
from numbex.engine.records import COMMAND
from numbex.engine.ring import Ring

MIX_A = np.uint64(0x9E3779B97F4A7C15)
MIX_B = np.uint64(0xBF58476D1CE4E5B9)
PAYLOAD_FIELDS = 6


@njit(cache=True, nogil=True)
def mix(value):
    value = (value ^ (value >> np.uint64(31))) * MIX_B
    return value ^ (value >> np.uint64(29))


@njit(cache=True, nogil=True)
def checksum(record):
    digest = np.uint64(record["seq"]) * MIX_A
    digest = mix(digest ^ np.uint64(record["ts_ns"]))
    digest = mix(digest ^ np.uint64(record["order_id"]))
    digest = mix(digest ^ np.uint64(record["client_ref"]))
    digest = mix(digest ^ np.uint64(record["price"]))
    digest = mix(digest ^ np.uint64(record["qty"]))
    digest = mix(digest ^ np.uint64(record["stop_price"]))
    digest = mix(digest ^ np.uint64(record["account"]))
    return np.int64(digest >> np.uint64(1))


@njit(cache=True, nogil=True)
def fill(records, first, count):
    for index in range(count):
        record = records[index]
        sequence = np.uint64(first + index)
        value = mix(sequence * MIX_A + np.uint64(1))
        record["seq"] = sequence
        record["ts_ns"] = np.int64(value >> np.uint64(2))
        record["order_id"] = mix(value)
        record["client_ref"] = mix(value + np.uint64(1))
        record["price"] = np.int64(mix(value + np.uint64(2)) >> np.uint64(3))
        record["qty"] = np.int64(mix(value + np.uint64(3)) >> np.uint64(40))
        record["stop_price"] = np.int64(mix(value + np.uint64(4)) >> np.uint64(3))
        record["account"] = np.uint32(value & np.uint64(0xFFFFFFFF))
        record["aux"] = checksum(record)


@njit(cache=True, nogil=True)
def verify(records, count, expected, errors):
    """Check ``records[:count]``; errors = [order, checksum, first bad seq]; return next expected."""
    for index in range(count):
        record = records[index]
        sequence = np.int64(record["seq"])
        if sequence != expected:
            errors[0] += 1
            if errors[2] < 0:
                errors[2] = expected
        elif record["aux"] != checksum(record):
            errors[1] += 1
            if errors[2] < 0:
                errors[2] = expected
        expected += 1
    return expected


@njit(cache=True, nogil=True)
def produce(header, data, scratch, next_seq, end_seq):
    """Fill and ``ring_offer`` batches until the ring is full or all are sent; return next seq."""
    while next_seq < end_seq:
        batch = min(len(scratch), end_seq - next_seq)
        fill(scratch, next_seq, batch)
        written = k.ring_offer(header, data, scratch, batch)
        if written == 0:
            break
        next_seq += written
    return next_seq


@njit(cache=True, nogil=True)
def offer_publish_first(header, data, records, count, delay):
    """BROKEN on purpose: publishes TAIL before the records are copied into the slots."""
    slots = header[k.SLOTS_WORD]
    tail = header[k.TAIL_WORD]
    free = slots - (tail - load_acquire(header, k.HEAD_WORD))
    written = min(count, free)
    if written <= 0:
        return 0
    store_release(header, k.TAIL_WORD, tail + written)
    for _ in range(delay):
        cpu_pause()
    for index in range(written):
        data[(tail + index) & (slots - 1)] = records[index]
    return written


@njit(cache=True, nogil=True)
def consume(header, data, out, expected, errors, spin_limit):
    """Poll and verify until nothing arrives for ``spin_limit`` pauses; return (expected, taken)."""
    taken = 0
    spins = 0
    while spins < spin_limit:
        polled = k.ring_poll(header, data, out)
        if polled == 0:
            spins += 1
            cpu_pause()
            continue
        expected = verify(out, polled, expected, errors)
        taken += polled
        spins = 0
        if taken >= 4096:
            break
    return expected, taken


def backoff(ring: Ring | None) -> BackoffIdle:
    return BackoffIdle(ring, spin_ns=20_000, yield_ns=50_000, park_ns=1_000_000, sleep_ns=50_000)


def run_producer(args: argparse.Namespace) -> dict:
    ring = Ring.attach(args.path, COMMAND)
    idle = backoff(None)
    scratch = np.zeros(args.batch, COMMAND)
    deadline = time.monotonic() + args.seconds
    sent = 0
    while sent < args.count and time.monotonic() < deadline:
        if args.mode == "numba":
            progress = produce(ring.header, ring.data, scratch, sent, args.count) - sent
            if progress:
                ring.wake_consumer()
        else:
            batch = min(args.batch, args.count - sent)
            fill(scratch, sent, batch)
            if args.mode == "python":
                progress = ring.offer(scratch[:batch])
            else:
                progress = int(offer_publish_first(ring.header, ring.data, scratch, batch, args.delay))
                if progress:
                    ring.wake_consumer()
        sent += progress
        idle.idle(progress)
    return {"sent": sent}


def run_consumer(args: argparse.Namespace) -> dict:
    ring = Ring.attach(args.path, COMMAND)
    idle = backoff(ring)
    out = np.zeros(args.batch, COMMAND)
    errors = np.array([0, 0, -1], dtype=np.int64)
    deadline = time.monotonic() + args.seconds
    expected = received = 0
    while received < args.count and time.monotonic() < deadline:
        if args.mode == "numba":
            expected, taken = consume(ring.header, ring.data, out, expected, errors, 200)
        else:
            taken = ring.poll(out)
            expected = verify(out, taken, expected, errors)
        received += taken
        if errors[0] + errors[1] >= args.stop_after_errors:
            break
        idle.idle(taken)
    return {
        "received": int(received),
        "order_errors": int(errors[0]),
        "checksum_errors": int(errors[1]),
        "first_bad_seq": int(errors[2]),
    }


class CountingWake:
    """Park on the ring and count how each park ended."""

    def __init__(self, ring: Ring) -> None:
        self.ring = ring
        self.statuses = [0, 0, 0, 0]

    def park(self, timeout_ns: int) -> int:
        status = self.ring.park(timeout_ns)
        self.statuses[status] += 1
        return status


def run_wake_consumer(args: argparse.Namespace) -> dict:
    ring = Ring.attach(args.path, COMMAND)
    wake = CountingWake(ring)
    idle = BlockIdle(wake, park_ns=args.timeout_ns)
    out = np.zeros(4, COMMAND)
    errors = np.array([0, 0, -1], dtype=np.int64)
    deadline = time.monotonic() + args.seconds
    expected = 0
    while expected < args.count and time.monotonic() < deadline:
        taken = ring.poll(out)
        expected = verify(out, taken, expected, errors)
        idle.idle(taken)
    ready, woken, timeouts, interrupted = wake.statuses
    return {"received": int(expected), "ready": ready, "woken": woken, "timeouts": timeouts,
            "interrupted": interrupted, "order_errors": int(errors[0]),
            "checksum_errors": int(errors[1])}


def run_wake_producer(args: argparse.Namespace) -> dict:
    ring = Ring.attach(args.path, COMMAND)
    generator = random.Random(args.count)
    record = np.zeros(1, COMMAND)
    deadline = time.monotonic() + args.seconds
    sent = seen_parked = 0
    while sent < args.count and time.monotonic() < deadline:
        while ring.size() and time.monotonic() < deadline:  # previous record consumed
            time.sleep(0.00002)
        style = generator.random()
        if style < 0.8:  # usually: let the consumer fall asleep first
            give_up = time.monotonic() + 1.0
            while not ring.consumer_parked() and time.monotonic() < give_up:
                time.sleep(0.00002)
            seen_parked += ring.consumer_parked()
            if style < 0.4:
                time.sleep(generator.random() * 0.0002)
        fill(record, sent, 1)
        if args.mode == "no-wake":
            sent += int(k.ring_offer(ring.header, ring.data, record, 1))
        else:
            sent += ring.offer(record)
    return {"sent": sent, "seen_parked": seen_parked}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["producer", "consumer", "wake-producer", "wake-consumer"])
    parser.add_argument("--path", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mode", default="python",
                        choices=["python", "numba", "broken", "good", "no-wake"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--delay", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--stop-after-errors", type=int, default=1 << 62)
    parser.add_argument("--timeout-ns", type=int, default=1_000_000_000)
    args = parser.parse_args(argv)
    runner = {"producer": run_producer, "consumer": run_consumer,
              "wake-producer": run_wake_producer, "wake-consumer": run_wake_consumer}[args.role]
    began = time.monotonic()
    result = runner(args)
    result["seconds"] = round(time.monotonic() - began, 3)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
