"""``numbex bench fix --local`` runs end to end, briefly, and reports every figure."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.timeout(300)
def test_bench_fix_local_smoke(tmp_path):
    environment = dict(os.environ)
    environment.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(__file__), "..", "..", ".numba_cache"))
    completed = subprocess.run(
        [sys.executable, "-m", "numbex.cli", "bench", "fix", "--local", "--json", "--orders", "50", "--warmup", "10",
         "--sessions", "2", "--window", "20", "--seconds", "0.5", "--idle-yield-us", "300", "--dir", str(tmp_path)],
        capture_output=True, text=True, timeout=280, env=environment)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["order_round_trip"]["count"] == 50
    assert result["idle"] == "backoff" and result["idle_yield_us"] == 300
    assert result["tcp_echo_round_trip"]["count"] == 50
    assert result["order_round_trip"]["p50_us"] > 0
    assert result["throughput"]["orders_per_second"] > 0
    assert list(tmp_path.iterdir()) == []              # the temporary data directory is removed
