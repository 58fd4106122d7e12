"""The engine benchmark tool: workload generation, the interchange format, errors."""

from __future__ import annotations

import json

import numpy as np

from numbex.cli import main
from numbex.engine import records as r
from numbex.tools import workload
from numbex.tools.bench_engine import run_engine


def test_generated_workload_replays_through_engine_and_reference(tmp_path):
    records, prefill = workload.generate(ops=3000, instruments=3, seed=5, depth=40, clients=4)
    assert records.dtype == r.BENCH_ORDER and records.dtype.itemsize == 40
    assert prefill == 3 * 40 and len(records) == prefill + 3000
    ops = records["op"][prefill:]
    assert {0, 1, 2, 3} <= set(ops.tolist())  # adds, market, cancels, replaces
    assert 0.25 < np.mean(ops == 2) < 0.55  # cancels around 40%
    result = run_engine(records, prefill, reference_ops=3000, with_reference=True, repeat=2)
    assert result["ops"] == 3000 and result["ops_per_s"] > 0
    assert result["p50_ns"] <= result["p99_ns"] <= result["p999_ns"]
    assert result["bytes_per_order"] == 64.0
    assert result["trades"] > 0 and result["reference_ops"] == 3000
    # cancels name live orders: few are rejected as unknown
    from numbex.engine.matcher import Engine

    events = Engine(workload.spec_for(records)).process(workload.to_commands(records))
    rejected = np.sum(events["kind"] == r.EV_CANCEL_REJECTED)
    assert rejected < 0.05 * np.sum(records["op"] == 2)


def test_bench_engine_command_line(tmp_path, capsys):
    path = tmp_path / "w.npy"
    assert main(["bench", "engine", "--generate", "--ops", "500", "--instruments", "1",
                 "--depth", "20", "--out", str(path), "--no-reference", "--repeat", "1",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("ops", "seconds", "ops_per_s", "p50_ns", "p99_ns", "p999_ns", "trades",
                "traded_qty", "resting_orders", "bytes_per_order", "reference_ops_per_s"):
        assert key in result
    assert result["prefill"] == 20


def test_bench_engine_rejects_bad_input(tmp_path, capsys):
    assert main(["bench", "engine"]) == 2
    assert "--generate or --workload" in capsys.readouterr().err
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros(4, dtype=np.int64))
    assert main(["bench", "engine", "--workload", str(wrong)]) == 2
    assert "not the 40-byte bench order format" in capsys.readouterr().err
    assert main(["bench", "engine", "--workload", str(tmp_path / "absent.npy")]) == 2
    good = tmp_path / "good.npy"
    np.save(good, np.zeros(4, dtype=r.BENCH_ORDER))
    assert main(["bench", "engine", "--workload", str(good), "--prefill", "9"]) == 2
    assert "--prefill 9 outside" in capsys.readouterr().err
