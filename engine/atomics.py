"""Explicit memory ordering for ``@njit`` kernels: acquire loads, release stores, fences.

Numba compiles an array access to a plain LLVM ``load``/``store``.  LLVM may then
hoist a load out of a loop (``while flag[0] == 0: pass`` becomes a jump to itself)
and may reorder plain stores with respect to each other.  Every word that one
process publishes to another (a ring's head and tail, a parked flag, a wake-up
sequence) is therefore read and written through the intrinsics below, which emit
LLVM atomics with the stated ordering:

``load_acquire(array, index)``
    ``load atomic ... acquire``: no later load or store of this thread moves above
    it, and it observes everything the writer did before its matching release
    store.  Never hoisted out of a loop.
``store_release(array, index, value)``
    ``store atomic ... release``: no earlier load or store of this thread moves
    below it.  The publication store of a single-writer word.
``fence_seq_cst()``
    ``fence seq_cst`` (``mfence`` or a locked instruction on x86-64): orders an
    earlier store before a later load, which acquire/release alone do not.  Needed
    where two sides each store one word and then load the other's (park/wake).
``cpu_pause()``
    the ``llvm.x86.sse2.pause`` spin-wait hint on x86; a compiler-only barrier
    (``fence syncscope("singlethread") seq_cst``, no instruction) elsewhere.

The array may be any one-dimensional integer array (``int64`` headers, ``int32``
words); the element must be naturally aligned, which numpy guarantees for the
mappings numbex creates.  The index is not bounds-checked: callers use fixed
header offsets validated when the mapping is attached.

``spin_pause(count)`` is an ``@njit`` wrapper of ``cpu_pause`` callable from Python.

The four are ``numba.extending.intrinsic`` functions: they only emit LLVM IR and
call no Python or ``ctypes`` object, so kernels using them compile with
``cache=True``; kernels that spin on them must also be ``nogil=True``.  Under
``NUMBA_DISABLE_JIT=1`` (kernels run as Python for tests and debugging) the same
names are plain-Python equivalents.

On x86-64 (total store order) an acquire load and a release store compile to plain
``mov`` instructions; what they buy there is that the *compiler* keeps them in
place.  On weakly ordered machines (AArch64, POWER) they also emit the required
``ldar``/``stlr`` or barriers, so the ring stays correct without change.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numbex.engine import jitcache  # noqa: F401  (must precede kernel definitions)
from numba import config, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

X86_MACHINES = ("x86_64", "amd64", "i386", "i686", "x86")


def _is_x86() -> bool:
    """Whether the code being generated runs on an x86 processor (pause exists)."""
    return platform.machine().lower() in X86_MACHINES


def _is_integer_vector(array) -> bool:
    return (
        isinstance(array, types.Array)
        and array.ndim == 1
        and isinstance(array.dtype, types.Integer)
    )


def _element_pointer(context, builder, array_type, array_value, index_type, index_value):
    """Address of ``array[index]`` (no wraparound, no bounds check)."""
    array = context.make_array(array_type)(context, builder, array_value)
    index = context.cast(builder, index_value, index_type, types.intp)
    return cgutils.get_item_pointer2(
        context,
        builder,
        data=array.data,
        shape=cgutils.unpack_tuple(builder, array.shape),
        strides=cgutils.unpack_tuple(builder, array.strides),
        layout=array_type.layout,
        inds=[index],
    )


@intrinsic
def _load_acquire_intrinsic(typingctx, array, index):
    """Return ``array[index]`` read with acquire ordering (``load atomic acquire``).

    Parameters
    ----------
    array : 1-d integer array
        The shared words, e.g. a ring header viewed as ``int64``.
    index : int
        Element index; must be in range (not checked).

    Returns
    -------
    int
        The element, of the array's integer type.
    """
    if not (_is_integer_vector(array) and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, arguments):
        array_type, index_type = signature.args
        pointer = _element_pointer(
            context, builder, array_type, arguments[0], index_type, arguments[1]
        )
        width = array_type.dtype.bitwidth // 8
        return builder.load_atomic(pointer, "acquire", width)

    return array.dtype(array, index), codegen


@intrinsic
def _store_release_intrinsic(typingctx, array, index, value):
    """Write ``array[index] = value`` with release ordering (``store atomic release``).

    Parameters
    ----------
    array : 1-d integer array
        The shared words; this process must be the word's only writer.
    index : int
        Element index; must be in range (not checked).
    value : int
        Converted to the array's integer type (wrapping, like numpy).
    """
    if not (
        _is_integer_vector(array)
        and isinstance(index, types.Integer)
        and isinstance(value, types.Integer)
    ):
        return None

    def codegen(context, builder, signature, arguments):
        array_type, index_type, value_type = signature.args
        pointer = _element_pointer(
            context, builder, array_type, arguments[0], index_type, arguments[1]
        )
        converted = context.cast(builder, arguments[2], value_type, array_type.dtype)
        width = array_type.dtype.bitwidth // 8
        builder.store_atomic(converted, pointer, "release", width)
        return context.get_dummy_value()

    return types.void(array, index, value), codegen


@intrinsic
def _fence_seq_cst_intrinsic(typingctx):
    """Emit a sequentially consistent fence: earlier stores complete before later loads."""

    def codegen(context, builder, signature, arguments):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _cpu_pause_intrinsic(typingctx):
    """Spin-wait hint: ``pause`` on x86, a compiler-only barrier elsewhere.

    ``pause`` lets the sibling hyper-thread run and avoids the memory-order
    mis-speculation penalty when the awaited cache line changes.  The compiler
    barrier on other machines keeps the spin loop from being folded away.
    """

    def codegen(context, builder, signature, arguments):
        if _is_x86():
            function_type = ir.FunctionType(ir.VoidType(), [])
            pause = cgutils.get_or_insert_function(
                builder.module, function_type, "llvm.x86.sse2.pause"
            )
            builder.call(pause, [])
        else:
            builder.fence("seq_cst", targetscope="singlethread")
        return context.get_dummy_value()

    return types.void(), codegen


def _load_acquire_python(array, index):
    return array[index]


def _store_release_python(array, index, value):
    array[index] = value


def _no_operation():
    return None


# With NUMBA_DISABLE_JIT=1 kernels run as plain Python, which cannot call an
# intrinsic; plain indexing stands in (a test and debug mode: CPython stores in
# program order, which x86-64 keeps; weakly ordered machines need the JIT).
if config.DISABLE_JIT:
    load_acquire = _load_acquire_python
    store_release = _store_release_python
    fence_seq_cst = cpu_pause = _no_operation
else:
    load_acquire = _load_acquire_intrinsic
    store_release = _store_release_intrinsic
    fence_seq_cst = _fence_seq_cst_intrinsic
    cpu_pause = _cpu_pause_intrinsic


@njit(cache=True, nogil=True)
def spin_pause(count=1):
    """Issue ``count`` CPU pause hints (callable from Python by busy-spin idle loops)."""
    for _ in range(count):
        cpu_pause()
