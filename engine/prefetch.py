"""``prefetch(array, index)``: a cache hint for ``array[index]`` (``llvm.prefetch``).

Used by the batch loop to start the memory loads of commands a few positions ahead
(their order-index slot, then their order record) while the current command runs.
It never faults and changes no value; under NUMBA_DISABLE_JIT it does nothing.
"""

from __future__ import annotations

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from numbex.engine import jitcache  # noqa: F401  (must precede kernel definitions)


@intrinsic
def _prefetch_intrinsic(typingctx, array, index):
    if not (isinstance(array, types.Array) and array.ndim == 1 and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, arguments):
        array_type, index_type = signature.args
        view = context.make_array(array_type)(context, builder, arguments[0])
        position = context.cast(builder, arguments[1], index_type, types.intp)
        pointer = cgutils.get_item_pointer2(
            context, builder, data=view.data, shape=cgutils.unpack_tuple(builder, view.shape),
            strides=cgutils.unpack_tuple(builder, view.strides), layout=array_type.layout,
            inds=[position])
        byte_pointer = builder.bitcast(pointer, ir.IntType(8).as_pointer())
        function_type = ir.FunctionType(
            ir.VoidType(), [ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(32), ir.IntType(32)])
        function = cgutils.get_or_insert_function(builder.module, function_type, "llvm.prefetch.p0i8")
        i32 = ir.IntType(32)
        builder.call(function, [byte_pointer, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.none(array, index), codegen


def _prefetch_python(array, index):
    return None


prefetch = _prefetch_python if numba.config.DISABLE_JIT else _prefetch_intrinsic
