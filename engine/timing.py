"""Cycle-counter timing of single commands, for the engine benchmark only.

``read_cycles`` is ``llvm.readcyclecounter`` (RDTSC on x86-64); ``process_timed``
runs commands one at a time and records each one's cycles.  Matching kernels
themselves never read a clock.
"""

from __future__ import annotations

import time


from numbex.engine import jitcache  # noqa: F401  (must precede kernel definitions)
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from numbex.engine.commands import process_one, worst_case


@intrinsic
def read_cycles(typingctx):
    """The CPU cycle counter as int64."""

    def codegen(context, builder, signature, args):
        function_type = ir.FunctionType(ir.IntType(64), [])
        function = builder.module.declare_intrinsic("llvm.readcyclecounter", fnty=function_type)
        return builder.call(function, [])

    return types.int64(), codegen


@njit(cache=True, _nrt=False)
def cycles_now():
    return read_cycles()


@njit(cache=True, nogil=True, _nrt=False)
def process_timed(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, stp,
                  commands, out, cycles):
    """Process every command, storing each one's cycles in ``cycles``; events are discarded.

    Returns the number of events produced.
    """
    n = 0
    produced = 0
    capacity = out.shape[0]
    for i in range(commands.shape[0]):
        cmd = commands[i]
        if n + worst_case(inst, glob, cmd) > capacity:
            produced += n
            n = 0
        start = read_cycles()
        n = process_one(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                        stp, cmd, out, n)
        cycles[i] = read_cycles() - start
    return produced + n


def cycles_per_ns(seconds: float = 0.2) -> float:
    """Calibrate the cycle counter against the monotonic clock."""
    cycles_now()
    c0, t0 = cycles_now(), time.perf_counter_ns()
    time.sleep(seconds)
    c1, t1 = cycles_now(), time.perf_counter_ns()
    return (c1 - c0) / max(1, t1 - t0)
