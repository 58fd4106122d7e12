"""Test-session setup: compile (or load from the cache) the engine kernels once, first.

Subprocess-based tests (engine process, supervisor) and threads with short timeouts
then find the kernels in the on-disk Numba cache instead of compiling under a
deadline on a fresh checkout.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels():
    import numba

    if numba.config.DISABLE_JIT:
        return
    from numbex.engine.matcher import Engine
    from numbex.engine.spec import EngineSpec

    Engine(EngineSpec.uniform(1, 100, 200, max_orders=16, max_stops=4)).warm_up()
