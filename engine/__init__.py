"""The matching engine: records, Numba book and matcher kernels, and the engine process."""
