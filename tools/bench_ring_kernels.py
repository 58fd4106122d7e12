"""Numba side of ``numbex bench ring``: a monotonic clock and the timing consumer.

Kept apart from :mod:`numbex.tools.bench_ring` so that the command module stays
free of Numba until it runs.  Matching kernels never read a clock; this one is a
benchmark probe only.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from numbex.engine.atomics import cpu_pause
from numbex.engine.ring_kernels import ring_poll

CLOCK_MONOTONIC = 1  # Linux; the clock behind time.perf_counter_ns and time.monotonic_ns


@intrinsic
def monotonic_ns(typingctx):
    """``clock_gettime(CLOCK_MONOTONIC)`` in nanoseconds, called by symbol (cacheable)."""

    def codegen(context, builder, signature, arguments):
        int32 = ir.IntType(32)
        int64 = ir.IntType(64)
        timespec = ir.LiteralStructType([int64, int64])
        function_type = ir.FunctionType(int32, [int32, timespec.as_pointer()])
        clock_gettime = cgutils.get_or_insert_function(builder.module, function_type, "clock_gettime")
        storage = cgutils.alloca_once(builder, timespec)
        builder.call(clock_gettime, [ir.Constant(int32, CLOCK_MONOTONIC), storage])
        seconds = builder.load(cgutils.gep_inbounds(builder, storage, 0, 0))
        nanoseconds = builder.load(cgutils.gep_inbounds(builder, storage, 0, 1))
        return builder.add(builder.mul(seconds, ir.Constant(int64, 1_000_000_000)), nanoseconds)

    return types.int64(), codegen


@njit(cache=True, nogil=True)
def clock_now():
    """:func:`monotonic_ns` callable from Python (to check it matches ``perf_counter_ns``)."""
    return monotonic_ns()


@njit(cache=True, nogil=True)
def drain_and_stamp(header, data, out, latencies, marks, received, spin_limit):
    """Poll the ring, storing ``now - ts_ns`` of record ``seq`` in ``latencies[seq]``.

    Spins with ``cpu_pause`` while the ring is empty, at most ``spin_limit`` times
    in a row, then returns so the caller can idle.  ``marks[0]`` is set to the
    receive time of record ``marks[1]`` (the last of the throughput phase).

    Returns
    -------
    int
        Records received so far (``received`` plus this call's).
    """
    total = len(latencies)
    spins = 0
    while received < total and spins < spin_limit:
        taken = ring_poll(header, data, out)
        if taken == 0:
            spins += 1
            cpu_pause()
            continue
        now = monotonic_ns()
        for index in range(taken):
            sequence = np.int64(out[index]["seq"])
            if sequence < total:
                latencies[sequence] = now - out[index]["ts_ns"]
                if sequence == marks[1]:
                    marks[0] = now
        received += taken
        spins = 0
    return received
