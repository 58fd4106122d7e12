"""numbex.agent: idle strategies, the agent runner, stop on signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from numbex import agent as agents
from numbex.agent import (
    AgentRunner,
    BackoffIdle,
    BlockIdle,
    BusySpinIdle,
    StopFlag,
    make_idle_strategy,
    stop_on_signals,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000

    def __call__(self) -> int:
        return self.now


class FakeWake:
    def __init__(self) -> None:
        self.parks: list[int] = []

    def park(self, timeout_ns: int) -> int:
        self.parks.append(timeout_ns)
        return 2


class CountingAgent:
    """Does ``work[i]`` on call i (0 when the list is used up) and records its lifecycle."""

    def __init__(self, name: str, work: list[int], log: list[str], fail_at: int = -1) -> None:
        self.role_name = name
        self.work = list(work)
        self.log = log
        self.calls = 0
        self.fail_at = fail_at

    def on_start(self) -> None:
        self.log.append(f"start {self.role_name}")

    def do_work(self) -> int:
        if self.calls == self.fail_at:
            raise RuntimeError(f"{self.role_name} failed")
        done = self.work[self.calls] if self.calls < len(self.work) else 0
        self.calls += 1
        return done

    def on_close(self) -> None:
        self.log.append(f"close {self.role_name}")


@pytest.fixture
def yields(monkeypatch):
    calls = []
    monkeypatch.setattr(agents.os, "sched_yield", lambda: calls.append(1))
    return calls


def test_strategies_are_chosen_by_config_name():
    assert isinstance(make_idle_strategy("busy-spin"), BusySpinIdle)
    assert isinstance(make_idle_strategy("backoff", spin_ns=5), BackoffIdle)
    wake = FakeWake()
    block = make_idle_strategy("block", wake, park_ns=7)
    assert isinstance(block, BlockIdle) and block.wake is wake and block.park_ns == 7
    with pytest.raises(ValueError, match="unknown idle strategy 'spin'.*busy-spin, backoff, block"):
        make_idle_strategy("spin")
    from numbex.config import IDLE_STRATEGIES

    assert tuple(IDLE_STRATEGIES) == agents.IDLE_STRATEGY_NAMES


def test_a_roles_config_sets_the_backoff_budgets():
    from numbex.config import loads

    config = loads('[engine]\nidle_spin_us = 7\nidle_yield_us = 900\n[gateway]\nidle = "block"\n'
                   '[[instruments]]\nsymbol = "X"\n[[accounts]]\nname = "A"\n')
    wake = FakeWake()
    backoff = agents.role_idle_strategy(config.engine, wake)
    assert isinstance(backoff, BackoffIdle) and backoff.wake is wake
    assert (backoff.spin_ns, backoff.yield_ns) == (7_000, 900_000)
    assert isinstance(agents.role_idle_strategy(config.gateway, wake), BlockIdle)


def test_bad_budgets_are_rejected():
    with pytest.raises(ValueError, match="spin_ns"):
        BackoffIdle(spin_ns=-1)
    with pytest.raises(ValueError, match="park_ns"):
        BackoffIdle(park_ns=0)
    with pytest.raises(ValueError, match="park_ns"):
        BlockIdle(park_ns=-5)


@pytest.mark.parametrize("pause", [False, True])
def test_busy_spin_returns_at_once(pause, yields):
    idle = BusySpinIdle(pause=pause)
    idle.idle(0)
    began = time.perf_counter()
    for _ in range(10_000):
        idle.idle(0)
        idle.idle(3)
    idle.reset()
    assert time.perf_counter() - began < 2.0
    assert yields == []


def test_backoff_spins_then_yields_then_parks_then_resets_on_work(yields):
    clock, wake = FakeClock(), FakeWake()
    idle = BackoffIdle(wake, spin_ns=100, yield_ns=1_000, park_ns=5_000, clock=clock)
    idle.idle(0)  # spin phase starts
    clock.now += 99
    idle.idle(0)
    assert yields == [] and wake.parks == []
    clock.now += 1  # 100 ns idle: yield phase
    idle.idle(0)
    clock.now += 999
    idle.idle(0)
    assert len(yields) == 2 and wake.parks == []
    clock.now += 1  # 1100 ns idle: park phase, bounded by park_ns
    idle.idle(0)
    idle.idle(0)
    assert wake.parks == [5_000, 5_000] and len(yields) == 2
    idle.idle(1)  # work resets to the spin phase
    clock.now += 50
    idle.idle(0)
    assert wake.parks == [5_000, 5_000] and len(yields) == 2
    clock.now += 10_000
    idle.reset()
    idle.idle(0)
    assert wake.parks == [5_000, 5_000] and len(yields) == 2


def test_backoff_without_a_wake_source_sleeps_a_bounded_time(yields):
    idle = BackoffIdle(spin_ns=0, yield_ns=0, sleep_ns=200_000)
    began = time.perf_counter()
    for _ in range(20):
        idle.idle(0)
    elapsed = time.perf_counter() - began
    assert 20 * 0.0002 <= elapsed < 2.0
    assert yields == []


def test_backoff_gives_the_core_back_after_its_budgets():
    # With real time: 2 ms spin + 2 ms yield, then 1 ms sleeps.  Over 100 ms of
    # idling a spinner would use ~100 ms of CPU; backoff uses ~5 ms.
    idle = BackoffIdle(spin_ns=2_000_000, yield_ns=2_000_000, sleep_ns=1_000_000)
    cpu_began, wall_began = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall_began < 0.1:
        idle.idle(0)
    cpu_used = time.process_time() - cpu_began
    assert cpu_used < 0.05


def test_block_parks_on_every_idle_cycle_and_never_on_work():
    wake = FakeWake()
    idle = BlockIdle(wake, park_ns=3_000)
    idle.idle(0)
    idle.idle(5)
    idle.idle(0)
    idle.reset()
    assert wake.parks == [3_000, 3_000]


def test_block_without_wake_sleeps_its_bound():
    idle = BlockIdle(park_ns=2_000_000)
    began = time.perf_counter()
    idle.idle(0)
    assert 0.002 <= time.perf_counter() - began < 1.0


def test_block_on_a_ring_wakes_when_a_record_arrives():
    from numbex.engine.records import COMMAND
    from numbex.engine.ring import Ring, ring_path

    name = f"numbex-test-{os.getpid()}-agent-block"
    ring_path(name).unlink(missing_ok=True)
    try:
        with Ring.create(name, COMMAND, 8) as ring:
            ring.park(1000)  # load the kernels before timing
            idle = make_idle_strategy("block", ring, park_ns=10_000_000_000)
            thread = threading.Thread(target=idle.idle, args=(0,))
            thread.start()
            try:
                deadline = time.monotonic() + 10
                while not ring.consumer_parked() and time.monotonic() < deadline:
                    time.sleep(0.001)
                began = time.monotonic()
                ring.offer(np.zeros(1, COMMAND))
                thread.join(timeout=10)
                assert time.monotonic() - began < 1.0
            finally:
                if thread.is_alive():
                    ring.offer(np.zeros(1, COMMAND))
                    thread.join(timeout=10)
            assert not thread.is_alive()
    finally:
        ring_path(name).unlink(missing_ok=True)


# -- runner ----------------------------------------------------------------------


def test_runner_cycles_agents_in_order_and_passes_total_work_to_idle():
    log: list[str] = []
    first = CountingAgent("gateway", [1, 0, 2], log)
    second = CountingAgent("engine", [0, 0, 3], log)
    seen: list[int] = []

    class RecordingIdle:
        name = "recording"

        def idle(self, work_count: int) -> None:
            seen.append(work_count)

        def reset(self) -> None:
            seen.append(-1)

    runner = AgentRunner([first, second], RecordingIdle())
    assert runner.role_name == "gateway+engine"
    summary = runner.run(max_cycles=4)
    assert seen == [-1, 1, 0, 5, 0]
    assert (summary.cycles, summary.work, summary.idle_cycles, summary.reason) == (4, 6, 2, "cycles")
    assert log == ["start gateway", "start engine", "close engine", "close gateway"]


def test_runner_stops_on_its_flag_and_on_a_time_bound():
    log: list[str] = []
    stop = threading.Event()

    class StoppingAgent(CountingAgent):
        def do_work(self) -> int:
            if self.calls == 9:
                stop.set()
            return super().do_work()

    runner = AgentRunner(StoppingAgent("engine", [1] * 5, log), BusySpinIdle(), stop)
    assert runner.run(max_cycles=1_000_000).reason == "stop"
    assert runner.agents[0].calls == 10
    timed = AgentRunner(CountingAgent("idle", [], []), BlockIdle(park_ns=1_000_000))
    summary = timed.run(max_seconds=0.05)
    assert summary.reason == "seconds" and 0.05 <= summary.seconds < 2.0
    assert summary.work == 0 and summary.idle_cycles == summary.cycles


def test_runner_closes_started_agents_when_one_fails():
    log: list[str] = []
    runner = AgentRunner(
        [CountingAgent("a", [1], log), CountingAgent("b", [1], log, fail_at=2)], BusySpinIdle()
    )
    with pytest.raises(RuntimeError, match="b failed"):
        runner.run(max_cycles=10)
    assert log == ["start a", "start b", "close b", "close a"]

    class BrokenStart(CountingAgent):
        def on_start(self) -> None:
            raise OSError("cannot bind")

    log.clear()
    runner = AgentRunner([CountingAgent("a", [], log), BrokenStart("b", [], log)], BusySpinIdle())
    with pytest.raises(OSError, match="cannot bind"):
        runner.run(max_cycles=10)
    assert log == ["start a", "close a"]
    with pytest.raises(ValueError, match="at least one agent"):
        AgentRunner([], BusySpinIdle())


def test_stop_on_signals_restores_previous_handlers():
    before = signal.getsignal(signal.SIGUSR1)
    stop = StopFlag()
    with stop_on_signals(stop, (signal.SIGUSR1,)):
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.001)
    assert stop.is_set()
    assert signal.getsignal(signal.SIGUSR1) is before


SIGTERM_ROLE = """
import sys
from numbex.agent import AgentRunner, StopFlag, make_idle_strategy, stop_on_signals

class Idle:
    role_name = "test-role"
    def on_start(self):
        print("started", flush=True)
    def do_work(self):
        return 0
    def on_close(self):
        print("closed", flush=True)

stop = StopFlag()
with stop_on_signals(stop):
    summary = AgentRunner(Idle(), make_idle_strategy(sys.argv[1]), stop).run(max_seconds=60)
print(summary.reason, flush=True)
"""


@pytest.mark.parametrize("strategy", ["backoff", "block"])
def test_sigterm_stops_a_role_process_cleanly(strategy):
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SIGTERM_ROLE), strategy],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "started"
        time.sleep(0.05)
        cpu_before = _process_cpu_seconds(process.pid)
        time.sleep(0.3)
        cpu_idle = _process_cpu_seconds(process.pid) - cpu_before
        began = time.monotonic()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=20)
        stopped_after = time.monotonic() - began
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    assert stdout.split() == ["closed", "stop"]
    assert stopped_after < 5.0
    if cpu_idle is not None:  # an idle role parks: well under one core over 0.3 s
        assert cpu_idle < 0.2


def _process_cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
