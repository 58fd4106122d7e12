"""Multi-process ring stress: order, gaps, torn records and lost wake-ups.

A producer process and a consumer process share a 16-slot ring, so every record
crosses a wrap-around many times over.  Each record carries its sequence number
and a checksum of its payload; the consumer checks both.  The checks must be
able to fail: a producer kernel that publishes the tail before writing the
records is run against the same consumer and the corruption must be reported.

``NUMBEX_STRESS=1`` (``make stress``) runs millions of records and tens of
thousands of park/wake cycles; the default run is bounded to a few seconds per
case on two cores.  Both sides idle with ``backoff`` (spin, yield, park), never
a pure spin.  Every process is killed in ``finally``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from numbex.engine import futex
from numbex.engine.records import COMMAND
from numbex.engine.ring import Ring, ring_path

WORKER = Path(__file__).with_name("ring_stress_worker.py")
STRESS = os.environ.get("NUMBEX_STRESS") == "1"
RECORDS = 10_000_000 if STRESS else 1_000_000
WAKE_CYCLES = 50_000 if STRESS else 3_000
RUN_SECONDS = 600.0 if STRESS else 90.0
SLOTS = 16


@pytest.fixture
def ring_name(request):
    name = f"numbex-stress-{os.getpid()}-{request.node.name}".replace("[", "-").replace("]", "")
    ring_path(name).unlink(missing_ok=True)
    with Ring.create(name, COMMAND, SLOTS):
        yield name
    ring_path(name).unlink(missing_ok=True)


def start(role: str, name: str, *options: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(WORKER), role, "--path", name, "--seconds", str(RUN_SECONDS),
         *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=RUN_SECONDS + 120)
    assert process.returncode == 0, stderr
    return json.loads(stdout.strip().splitlines()[-1])


def kill(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        for stream in (process.stdout, process.stderr):
            stream.close()


@pytest.mark.parametrize(
    ("producer_mode", "consumer_mode"), [("python", "numba"), ("numba", "python")]
)
def test_every_record_arrives_once_in_order_and_intact(ring_name, producer_mode, consumer_mode):
    count = str(RECORDS)
    consumer = start("consumer", ring_name, "--count", count, "--mode", consumer_mode,
                     "--batch", "8")
    producer = start("producer", ring_name, "--count", count, "--mode", producer_mode,
                     "--batch", "8")
    try:
        consumed = finish(consumer)
        produced = finish(producer)
    finally:
        kill(consumer, producer)
    assert produced["sent"] == RECORDS
    assert consumed == {
        "received": RECORDS, "order_errors": 0, "checksum_errors": 0, "first_bad_seq": -1,
        "seconds": consumed["seconds"],
    }


@pytest.mark.parametrize("consumer_mode", ["numba", "python"])
def test_checker_catches_a_tail_published_before_the_records(ring_name, consumer_mode):
    count = str(300_000)
    consumer = start("consumer", ring_name, "--count", count, "--mode", consumer_mode,
                     "--stop-after-errors", "100")
    producer = start("producer", ring_name, "--count", count, "--mode", "broken",
                     "--delay", "100")
    try:
        consumed = finish(consumer)
    finally:
        kill(consumer, producer)  # the broken producer may be stuck on a full ring
    assert consumed["order_errors"] + consumed["checksum_errors"] > 0, consumed
    assert consumed["first_bad_seq"] >= 0


@pytest.mark.skipif(not futex.FUTEX_SUPPORTED, reason="needs futex")
def test_no_wake_up_is_lost_over_many_park_wake_cycles(ring_name):
    cycles = str(WAKE_CYCLES)
    consumer = start("wake-consumer", ring_name, "--count", cycles,
                     "--timeout-ns", str(2_000_000_000))
    producer = start("wake-producer", ring_name, "--count", cycles, "--mode", "good")
    try:
        produced = finish(producer)
        consumed = finish(consumer)
    finally:
        kill(consumer, producer)
    assert produced["sent"] == WAKE_CYCLES
    assert consumed["received"] == WAKE_CYCLES
    assert consumed["order_errors"] == consumed["checksum_errors"] == 0
    # Most cycles really slept and were woken; a lost wake-up would be a timeout.
    assert produced["seen_parked"] > WAKE_CYCLES // 2
    assert consumed["woken"] >= produced["seen_parked"] // 2
    assert consumed["timeouts"] == 0, consumed


@pytest.mark.skipif(not futex.FUTEX_SUPPORTED, reason="needs futex")
def test_timeout_count_catches_a_producer_that_never_wakes(ring_name):
    consumer = start("wake-consumer", ring_name, "--count", "20", "--timeout-ns", "20000000")
    producer = start("wake-producer", ring_name, "--count", "20", "--mode", "no-wake")
    try:
        produced = finish(producer)
        consumed = finish(consumer)
    finally:
        kill(consumer, producer)
    assert produced["sent"] == consumed["received"] == 20
    assert consumed["timeouts"] > 0, consumed
