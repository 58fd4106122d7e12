"""numbex.engine.ring: the shared-memory SPSC ring, from Python, Numba and other processes."""

from __future__ import annotations

import collections
import os
import random
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from numba import njit

from numbex.engine import ring_kernels as k
from numbex.engine.records import COMMAND, EVENT
from numbex.engine.ring import (
    PARK_READY,
    PARK_TIMEOUT,
    PARK_WOKEN,
    Ring,
    RingError,
    ring_path,
)

SUBPROCESS_SECONDS = 240


@pytest.fixture
def ring_name(request):
    name = f"numbex-test-{os.getpid()}-{request.node.name}".replace("[", "-").replace("]", "")
    ring_path(name).unlink(missing_ok=True)
    yield name
    ring_path(name).unlink(missing_ok=True)


def numbered(first: int, count: int, dtype=COMMAND) -> np.ndarray:
    records = np.zeros(count, dtype=dtype)
    records["seq"] = np.arange(first, first + count)
    records["price"] = records["seq"].astype(np.int64) * 3 + 1
    return records


def run_python(script: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True, text=True, timeout=SUBPROCESS_SECONDS,
    )
    return result


@njit(nogil=True)
def _numba_drain(header, data, out):
    """A Numba consumer: poll until empty, return (count, sum of seq)."""
    total = 0
    seq_sum = 0
    while True:
        taken = k.ring_poll(header, data, out)
        if taken == 0:
            return total, seq_sum
        for index in range(taken):
            seq_sum += out[index]["seq"]
        total += taken


@njit(nogil=True)
def _numba_produce(header, data, scratch, first, count):
    """A Numba producer: offer numbered records until full or done; return the next seq."""
    sequence = first
    while sequence < first + count:
        batch = min(len(scratch), first + count - sequence)
        for index in range(batch):
            scratch[index]["seq"] = sequence + index
        written = k.ring_offer(header, data, scratch, batch)
        if written == 0:
            break
        sequence += written
    return sequence


# -- creation and layout -------------------------------------------------------


def test_create_writes_the_header_and_sizes_the_file(ring_name):
    with Ring.create(ring_name, EVENT, 16) as ring:
        assert ring.path == ring_path(ring_name)
        assert str(ring.path).startswith("/dev/shm/") or not os.path.isdir("/dev/shm")
        assert ring.capacity == 16 and ring.size() == 0
        assert ring.path.stat().st_size == k.HEADER_BYTES + 16 * EVENT.itemsize
        assert int(ring.header[k.MAGIC_WORD]) == k.MAGIC
        assert int(ring.header[k.RECORD_SIZE_WORD]) == 128
        assert int(ring.header[k.DATA_OFFSET_WORD]) == k.HEADER_BYTES
        assert ring.data.ctypes.data % 64 == 0


def test_head_tail_parked_and_wake_words_sit_on_separate_cache_lines():
    lines = [word * 8 // k.CACHE_LINE_BYTES for word in
             (k.MAGIC_WORD, k.HEAD_WORD, k.TAIL_WORD, k.PARKED_WORD, k.WAKE_WORD)]
    assert len(set(lines)) == 5
    assert k.HEAD_CACHE_WORD * 8 // 64 == k.TAIL_WORD * 8 // 64  # producer-private, producer line


@pytest.mark.parametrize("slots", [0, 1, 3, 6, -4, 2.0, 12])
def test_slots_must_be_a_power_of_two(ring_name, slots):
    with pytest.raises(RingError, match="power of two"):
        Ring.create(ring_name, COMMAND, slots)
    assert not ring_path(ring_name).exists()


def test_create_refuses_an_existing_name_unless_replacing(ring_name):
    with Ring.create(ring_name, COMMAND, 8):
        with pytest.raises(RingError, match="already exists"):
            Ring.create(ring_name, COMMAND, 8)
        with Ring.create(ring_name, COMMAND, 32, replace=True) as replacement:
            assert replacement.capacity == 32
    assert not [p for p in ring_path(ring_name).parent.glob(f".{ring_name}.*")]


def test_object_dtypes_and_bad_names_are_rejected(ring_name):
    with pytest.raises(RingError, match="fixed-size"):
        Ring.create(ring_name, np.dtype(object), 8)
    with pytest.raises(RingError, match="invalid ring name"):
        ring_path(".hidden")
    assert ring_path("/tmp/x/ring") == ring_path("/tmp/x/ring")


# -- offer and poll ------------------------------------------------------------


def test_full_ring_returns_zero_and_partial_offers_a_prefix(ring_name):
    with Ring.create(ring_name, COMMAND, 8) as ring:
        assert ring.offer(numbered(0, 5)) == 5
        assert ring.offer(numbered(5, 5)) == 3  # only 3 slots were free
        assert ring.size() == 8
        assert ring.offer(numbered(8, 1)) == 0
        assert ring.offer(numbered(8, 0)) == 0
        out = np.zeros(16, COMMAND)
        assert ring.poll(out) == 8
        assert list(out["seq"][:8]) == list(range(8))
        assert ring.poll(out) == 0


def test_wrap_around_with_random_batch_sizes_matches_a_fifo_model(ring_name):
    generator = random.Random(7)
    model = collections.deque()
    next_seq = 0
    with Ring.create(ring_name, COMMAND, 8) as producer, Ring.attach(ring_name, COMMAND) as consumer:
        for _ in range(3000):
            batch = numbered(next_seq, generator.randint(0, 20))
            written = producer.offer(batch)
            assert written == min(len(batch), 8 - len(model))
            model.extend(batch["seq"][:written].tolist())
            next_seq += written
            out = np.zeros(generator.randint(1, 12), COMMAND)
            taken = consumer.poll(out)
            expected = [model.popleft() for _ in range(min(len(out), len(model)))]
            assert out["seq"][:taken].tolist() == expected
            assert (out["price"][:taken] == out["seq"][:taken].astype(np.int64) * 3 + 1).all()
        assert int(producer.header[k.TAIL_WORD]) == next_seq > 10 * 8


def test_offer_checks_its_argument(ring_name):
    with Ring.create(ring_name, COMMAND, 8) as ring:
        with pytest.raises(TypeError, match="ring's dtype"):
            ring.offer(numbered(0, 2, EVENT))
        with pytest.raises(TypeError, match="ring's dtype"):
            ring.offer(numbered(0, 4).reshape(2, 2))
        with pytest.raises(TypeError, match="ring's dtype"):
            ring.offer([1, 2])
        assert ring.offer(numbered(0, 6)[::2]) == 3  # strided input is copied first
        out = np.zeros(4, COMMAND)
        out.flags.writeable = False
        with pytest.raises(ValueError, match="writable"):
            ring.poll(out)
        with pytest.raises(TypeError):
            ring.poll(np.zeros(4, EVENT))
        fresh = np.zeros(4, COMMAND)
        assert ring.poll(fresh) == 3 and fresh["seq"][:3].tolist() == [0, 2, 4]


def test_zero_copy_claim_publish_peek_release_stop_at_the_wrap(ring_name):
    with Ring.create(ring_name, COMMAND, 8) as ring:
        assert ring.offer(numbered(0, 6)) == 6
        assert len(ring.peek(4)) == 4
        ring.release(4)
        view = ring.claim(10)  # tail at slot 6: 2 slots before the wrap
        assert len(view) == 2
        view["seq"] = [6, 7]
        with pytest.raises(ValueError, match="exceeds"):
            ring.publish(3)
        ring.publish(2)
        view = ring.claim(10)  # slots 0..3 are free again (head at 4)
        assert len(view) == 4
        view["seq"] = [8, 9, 10, 11]
        ring.publish(4)
        assert len(ring.claim(1)) == 0  # full
        ring.publish(0)
        peeked = ring.peek(10)
        assert peeked["seq"].tolist() == [4, 5, 6, 7] and not peeked.flags.writeable
        with pytest.raises(ValueError, match="exceeds"):
            ring.release(5)
        ring.release(4)
        assert ring.peek(10)["seq"].tolist() == [8, 9, 10, 11]
        ring.release(4)
        assert ring.size() == 0
        del view, peeked


def test_numba_kernels_interoperate_with_python_on_the_same_ring(ring_name):
    with Ring.create(ring_name, COMMAND, 16) as ring:
        assert ring.offer(numbered(0, 10)) == 10
        assert _numba_drain(ring.header, ring.data, np.zeros(4, COMMAND)) == (10, sum(range(10)))
        scratch = np.zeros(5, COMMAND)
        assert _numba_produce(ring.header, ring.data, scratch, 100, 40) == 116  # full at 16
        out = np.zeros(32, COMMAND)
        assert ring.poll(out) == 16 and out["seq"][:16].tolist() == list(range(100, 116))


# -- other processes -----------------------------------------------------------

PRODUCER_THEN_DIE = """
import os, signal, sys
import numpy as np
from numbex.engine.records import COMMAND
from numbex.engine.ring import Ring
mode, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
ring = Ring.create(name, COMMAND, 64) if mode == "create" else Ring.attach(name, COMMAND)
records = np.zeros(count, COMMAND)
records["seq"] = np.arange(count)
assert ring.offer(records) == count
os.kill(os.getpid(), signal.SIGKILL)  # die without closing or unlinking
"""


@pytest.mark.parametrize("mode", ["attach", "create"])
def test_records_survive_a_producer_killed_after_publishing(ring_name, mode):
    parent = Ring.create(ring_name, COMMAND, 64) if mode == "attach" else None
    result = run_python(PRODUCER_THEN_DIE, mode, ring_name, "50")
    assert result.returncode == -9, result.stderr
    with Ring.attach(ring_name, COMMAND) as consumer:
        out = np.zeros(64, COMMAND)
        assert consumer.poll(out) == 50
        assert out["seq"][:50].tolist() == list(range(50))
    if parent is not None:
        parent.close()


NUMBA_CONSUMER = """
import sys
import numpy as np
from numba import njit
from numbex.engine import ring_kernels as k
from numbex.engine.records import COMMAND
from numbex.engine.ring import Ring

@njit(nogil=True)
def drain(header, data, out, expected_count):
    seen = 0
    spins = 0
    while seen < expected_count and spins < 2_000_000_000:
        taken = k.ring_poll(header, data, out)
        for index in range(taken):
            if out[index]["seq"] != seen:
                return -1
            seen += 1
        spins += 1
    return seen

ring = Ring.attach(sys.argv[1], COMMAND)
print(drain(ring.header, ring.data, np.zeros(7, COMMAND), int(sys.argv[2])))
"""


def test_python_producer_to_numba_consumer_in_another_process(ring_name):
    count = 20_000
    with Ring.create(ring_name, COMMAND, 16) as ring:
        consumer = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(NUMBA_CONSUMER), ring_name, str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            sent = 0
            deadline = time.monotonic() + SUBPROCESS_SECONDS
            while sent < count and time.monotonic() < deadline and consumer.poll() is None:
                written = ring.offer(numbered(sent, min(10, count - sent)))
                sent += written
                if written == 0:
                    time.sleep(0.0001)
            stdout, stderr = consumer.communicate(timeout=SUBPROCESS_SECONDS)
        finally:
            if consumer.poll() is None:
                consumer.kill()
                consumer.wait()
    assert consumer.returncode == 0, stderr
    assert sent == count and stdout.split() == [str(count)]


# -- bad attach ------------------------------------------------------------------


def test_attach_missing_ring(ring_name):
    with pytest.raises(RingError, match="no ring at"):
        Ring.attach(ring_name, COMMAND)


def test_attach_wrong_magic(ring_name):
    ring_path(ring_name).write_bytes(os.urandom(8192))
    with pytest.raises(RingError, match="bad magic .*not a numbex ring"):
        Ring.attach(ring_name, COMMAND)


def test_attach_file_too_small(ring_name):
    ring_path(ring_name).write_bytes(b"NUMBEXR1")
    with pytest.raises(RingError, match="smaller than a ring header"):
        Ring.attach(ring_name, COMMAND)


def test_attach_wrong_record_size(ring_name):
    with Ring.create(ring_name, COMMAND, 8):
        message = f"{COMMAND.itemsize}-byte records, but the dtype's itemsize is {EVENT.itemsize}"
        with pytest.raises(RingError, match=message):
            Ring.attach(ring_name, EVENT)


def test_attach_same_size_different_layout(ring_name):
    other = np.dtype([(f"field{index}", "<u8") for index in range(COMMAND.itemsize // 8)])
    assert other.itemsize == COMMAND.itemsize
    with Ring.create(ring_name, COMMAND, 8):
        with pytest.raises(RingError, match="record layout differs"):
            Ring.attach(ring_name, other)


def test_attach_other_version_and_truncated_file(ring_name):
    with Ring.create(ring_name, COMMAND, 8) as ring:
        ring.header[k.VERSION_WORD] = 99
        with pytest.raises(RingError, match="layout version 99"):
            Ring.attach(ring_name, COMMAND)
        ring.header[k.VERSION_WORD] = k.LAYOUT_VERSION
    os.truncate(ring_path(ring_name), k.HEADER_BYTES + 3 * COMMAND.itemsize)
    with pytest.raises(RingError, match="corrupt header"):
        Ring.attach(ring_name, COMMAND)


# -- parking ---------------------------------------------------------------------


def test_park_returns_ready_when_records_are_waiting(ring_name):
    with Ring.create(ring_name, COMMAND, 8) as ring:
        ring.offer(numbered(0, 1))
        assert ring.park(1_000_000_000) == PARK_READY
        assert not ring.consumer_parked()


def test_park_times_out_within_its_bound(ring_name):
    with Ring.create(ring_name, COMMAND, 8) as ring:
        began = time.monotonic()
        assert ring.park(20_000_000) == PARK_TIMEOUT
        assert 0.015 < time.monotonic() - began < 2.0
        assert not ring.consumer_parked()
        assert ring.wake_consumer() is False


def test_offer_wakes_a_parked_consumer_thread(ring_name):
    with Ring.create(ring_name, COMMAND, 8) as producer, Ring.attach(ring_name, COMMAND) as consumer:
        consumer.park(1000)  # load the kernels before timing
        statuses = []
        thread = threading.Thread(target=lambda: statuses.append(consumer.park(10_000_000_000)))
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while not producer.consumer_parked() and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.01)
            began = time.monotonic()
            assert producer.offer(numbered(0, 1)) == 1
            thread.join(timeout=10)
            woke_after = time.monotonic() - began
        finally:
            if thread.is_alive():
                producer.offer(numbered(1, 1))
                thread.join(timeout=10)
    assert statuses == [PARK_WOKEN]
    assert woke_after < 1.0


DISABLED_JIT_ROUND_TRIP = """
import numpy as np
from numbex.engine.records import COMMAND
from numbex.engine.ring import Ring
import sys
with Ring.create(sys.argv[1], COMMAND, 4) as ring:
    records = np.zeros(6, COMMAND)
    records["seq"] = np.arange(6)
    out = np.zeros(6, COMMAND)
    got = [ring.offer(records), ring.poll(out), ring.offer(records[4:]), ring.poll(out[4:])]
    print(got, out["seq"].tolist())
    ring.unlink()
"""


def test_kernels_run_as_plain_python_with_jit_disabled(ring_name):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(DISABLED_JIT_ROUND_TRIP), ring_name],
        capture_output=True, text=True, timeout=SUBPROCESS_SECONDS,
        env=dict(os.environ, NUMBA_DISABLE_JIT="1"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[4, 4, 2, 2] [0, 1, 2, 3, 4, 5]"


def test_bench_ring_measures_a_small_run():
    from numbex.tools.bench_ring import measure

    result = measure(count=5_000, latency_count=200, interval_ns=2_000, batch=16, slots=64)
    assert result["records"] == 5_000 and result["latency_probes"] == 200
    assert result["throughput_msgs_per_s"] > 0
    for key in ("loaded_latency_ns", "latency_ns"):
        figures = result[key]
        assert 0 < figures["p50"] <= figures["p99"] <= figures["max"] < 60_000_000_000


# -- warm-up ---------------------------------------------------------------------

def test_warm_up_compiles_every_kernel_on_a_private_ring_and_leaves_no_file(tmp_path):
    def warm_files() -> set:
        return {name for name in os.listdir(ring_path("x").parent) if name.startswith(".numbex-warm-")}

    before = warm_files()
    Ring.warm_up(COMMAND)
    Ring.warm_up(EVENT, directory=tmp_path)
    kernels = (k.ring_offer_signal, k.ring_poll, k.ring_claim, k.ring_publish, k.ring_peek,
               k.ring_release, k.ring_signal_consumer, k.ring_prepare_park, k.ring_unpark,
               k.ring_size, k.ring_consumer_parked)
    for kernel in kernels:
        assert kernel.signatures, f"{kernel.__name__} was not compiled by the warm-up"
    assert warm_files() - before == set()
    assert list(tmp_path.iterdir()) == []
