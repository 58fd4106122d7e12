"""Crash tests of the engine process: SIGKILL under load, restart, recover, compare.

After every cycle and at the end: nothing acknowledged is lost or acknowledged twice,
no event leaves the engine before its command is durable (status block), every
acknowledgement equals the event a clean replay of the WAL produces, every submitted
command is journaled exactly once, and the recovered engine state equals a clean
replay of the whole WAL.  The loop and the checks live in ``tests/engine_process.py``
(the fault tests run them in async durability too).
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine_process import EngineHarness, Flow, assert_exact_recovery, crash_cycles  # noqa: E402

CYCLES = int(os.environ.get("NUMBEX_CRASH_CYCLES", "60" if os.environ.get("NUMBEX_STRESS") else "20"))


@pytest.mark.timeout(600)
def test_sigkill_under_load_recovers_exactly(tmp_path):
    with EngineHarness(tmp_path, "crash") as harness:
        received, submitted = crash_cycles(harness, CYCLES, Flow(seed=7), random.Random(11))
    assert_exact_recovery(harness, received, submitted)
