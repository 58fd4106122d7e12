"""numbex.engine.atomics: acquire/release intrinsics, fences and the pause hint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from numba import njit

from numbex.engine.atomics import (
    cpu_pause,
    fence_seq_cst,
    load_acquire,
    spin_pause,
    store_release,
)

SPIN_LIMIT = 200_000_000


@njit(nogil=True)
def _spin_until_set(flags, limit):
    """Spin on flags[0] with acquire loads; return the number of pauses taken."""
    spins = 0
    while load_acquire(flags, 0) == 0 and spins < limit:
        cpu_pause()
        spins += 1
    return spins


@njit(nogil=True)
def _spin_plain(flags):
    """The broken spin loop: a plain load, which LLVM hoists out of the loop."""
    while flags[0] == 0:
        pass
    return 1


@njit(nogil=True)
def _publish(words, index, value):
    store_release(words, index, value)


@njit(nogil=True)
def _store_then_load(words, value):
    store_release(words, 1, value)
    fence_seq_cst()
    return load_acquire(words, 1)


def _function_body(llvm_text: str, name: str) -> str:
    """The optimised IR of the native (not the CPython wrapper) function ``name``."""
    for chunk in llvm_text.split("\ndefine ")[1:]:
        header = chunk.split("\n", 1)[0]
        if f"{name}B" in header and "cpython" not in header:
            return chunk.split("\n}\n", 1)[0]
    raise AssertionError(f"no native function {name} in the IR")


def _self_loop_blocks(body: str) -> list[str]:
    """Basic blocks whose terminator branches back to themselves (a spin loop)."""
    blocks = re.split(r"\n(?=[\w.\-]+:)", body)
    loops = []
    for block in blocks:
        label = block.split(":", 1)[0].strip()
        last = block.strip().splitlines()[-1]
        if last.lstrip().startswith("br ") and f"label %{label}" in last:
            loops.append(block)
    return loops


def test_store_release_then_load_acquire_round_trip():
    words64 = np.zeros(4, dtype=np.int64)
    assert _store_then_load(words64, -(2**40) - 3) == -(2**40) - 3
    assert words64[1] == -(2**40) - 3
    words32 = np.zeros(4, dtype=np.int32)
    assert _store_then_load(words32, 7) == 7
    # Wider values wrap to the array's type, as numpy assignments do.
    assert _store_then_load(words32, 2**32 + 5) == 5
    assert words32[1] == 5


def test_spin_pause_runs_and_returns():
    began = time.perf_counter()
    spin_pause(10_000)
    spin_pause()
    assert time.perf_counter() - began < 1.0


def test_acquire_load_sees_a_store_from_another_thread():
    flags = np.zeros(8, dtype=np.int64)
    _spin_until_set(flags, 1)  # compile before timing
    _publish(flags, 1, 0)  # compile before timing
    timer = threading.Timer(0.02, lambda: _publish(flags, 0, 1))
    timer.start()
    try:
        began = time.perf_counter()
        spins = _spin_until_set(flags, SPIN_LIMIT)
        elapsed = time.perf_counter() - began
    finally:
        flags[0] = 1
        timer.cancel()
        timer.join()
    assert spins < SPIN_LIMIT, "the spin loop never saw the flag: its load was hoisted"
    assert elapsed < 10.0


def test_atomic_load_stays_inside_the_spin_loop():
    flags = np.zeros(8, dtype=np.int64)
    _spin_until_set(flags, 1)
    body = _function_body(next(iter(_spin_until_set.inspect_llvm().values())), "_spin_until_set")
    loops = [block for block in _self_loop_blocks(body) if "llvm.x86.sse2.pause" in block
             or "fence syncscope" in block]
    assert loops, f"no spin loop found in:\n{body}"
    assert any("load atomic i64" in block and "acquire" in block for block in loops), body


def test_plain_load_is_hoisted_which_is_why_atomics_exist():
    # The checker above must be able to fail: a plain load leaves an empty self-loop.
    _spin_plain.compile("(int64[::1],)")
    body = _function_body(next(iter(_spin_plain.inspect_llvm().values())), "_spin_plain")
    loops = _self_loop_blocks(body)
    assert loops, body
    assert all(" load " not in block for block in loops), body


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="x86 check on Linux only")
def test_pause_instruction_in_machine_code():
    if os.uname().machine not in ("x86_64", "amd64"):
        pytest.skip("pause is x86-only")
    flags = np.zeros(8, dtype=np.int64)
    _spin_until_set(flags, 1)
    assembly = next(iter(_spin_until_set.inspect_asm().values()))
    assert re.search(r"\bpause\b", assembly)


CACHE_PROBE = """
import numpy as np
from numbex.engine import ring_kernels as k
from numbex.engine.records import COMMAND
header = np.zeros(k.HEADER_WORDS, dtype=np.int64)
header[k.SLOTS_WORD] = 8
data = np.zeros(8, dtype=COMMAND)
records = np.zeros(3, dtype=COMMAND)
assert k.ring_offer(header, data, records, 3) == 3
assert k.ring_poll(header, data, records) == 3
assert k.ring_prepare_park(header) == 0
k.ring_unpark(header)
functions = (k.ring_offer, k.ring_poll, k.ring_prepare_park, k.ring_unpark)
print(sum(sum(f.stats.cache_hits.values()) for f in functions),
      sum(sum(f.stats.cache_misses.values()) for f in functions))
"""


def test_ring_kernels_compile_with_cache_true(tmp_path):
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    counts = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-c", CACHE_PROBE],
            env=environment, capture_output=True, text=True, timeout=240,
        )
        assert result.returncode == 0, result.stderr
        counts.append(tuple(int(word) for word in result.stdout.split()))
    (first_hits, first_misses), (second_hits, second_misses) = counts
    assert first_misses == 4 and first_hits == 0
    assert second_hits == 4 and second_misses == 0
    assert any(path.suffix == ".nbc" for path in (tmp_path / "cache").rglob("*"))
