"""The engine's kernels run as plain Python (``NUMBA_DISABLE_JIT=1``) and still agree.

Numba reads ``NUMBA_DISABLE_JIT`` when it is first imported, so each run is a
subprocess (``python tests/differential.py SPEC SEED COUNT``) with the variable
set; a few thousand commands in all, bounded by a timeout.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
TIMEOUT_SECONDS = 240


@pytest.mark.parametrize(("spec_name", "seed", "count"), [
    ("one_instrument", 11, 2000),
    ("several_instruments", 12, 1500),
    ("tiny_capacity", 13, 1000),
])
def test_engine_without_jit_agrees_with_reference(spec_name, seed, count):
    environment = dict(os.environ, NUMBA_DISABLE_JIT="1")
    result = subprocess.run([sys.executable, str(TESTS / "differential.py"), spec_name, str(seed), str(count)],
                            env=environment, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                            cwd=TESTS.parent)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"
    assert f"{count} commands" in result.stdout
