"""Agents, idle strategies and the runner every numbex role loop is built from.

Every role loop (engine, gateway, publisher) is an :class:`Agent`: ``do_work()``
does a bounded amount of work and returns how much it did; an
:class:`AgentRunner` calls the agents in turn, one duty cycle at a time, and hands
the cycle's total to an idle strategy, which decides how to wait when it was 0.

Idle strategies are one setting per role (``idle = "backoff"`` in the config)
and share one tiny protocol, ``idle(work_count)`` and ``reset()``:

``busy-spin`` (:class:`BusySpinIdle`)
    never gives up the core; for isolated cores in production.
``backoff`` (:class:`BackoffIdle`, the default)
    spins for a time budget, then calls ``os.sched_yield`` for a second budget,
    then parks with a bounded wait on the wake-up source the role provides (a
    ring consumer parks on the ring's futex), or sleeps when there is none.
``block`` (:class:`BlockIdle`)
    parks at once on every idle cycle.

A wake-up source is anything with ``park(timeout_ns) -> int``, such as
:class:`numbex.engine.ring.Ring`.  Every park and sleep is bounded, so a stop
request is seen within one park timeout even if no wake-up ever comes.

On a 2-core machine two pure spinners sharing a core make a round trip take
milliseconds; ``backoff`` keeps the latency of a spinner while work keeps coming
and gives the core back within ``spin_ns + yield_ns`` once it stops.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

IDLE_STRATEGY_NAMES = ("busy-spin", "backoff", "block")


@runtime_checkable
class WakeSource(Protocol):
    """Something an idle consumer can sleep on until a producer wakes it."""

    def park(self, timeout_ns: int) -> int:
        """Sleep until woken or ``timeout_ns`` elapses; return a status code."""
        ...


class IdleStrategy(Protocol):
    """How a loop waits when a duty cycle found no work."""

    name: str

    def idle(self, work_count: int) -> None:
        """Called after every duty cycle with the work it did (0: idle)."""
        ...

    def reset(self) -> None:
        """Forget any backoff state (the next idle cycle starts from the first phase)."""
        ...


class Agent(Protocol):
    """One role loop: bounded work per call, lifecycle hooks around the run."""

    role_name: str

    def on_start(self) -> None:
        """Called once, before the first ``do_work``."""
        ...

    def do_work(self) -> int:
        """Do a bounded amount of work; return how much (0 when there was none)."""
        ...

    def on_close(self) -> None:
        """Called once after the last ``do_work`` (also after a failure)."""
        ...


class BusySpinIdle:
    """Spin: return at once; with ``pause``, issue one CPU pause hint per idle cycle.

    Parameters
    ----------
    pause : bool
        Execute the ``pause`` instruction (through a tiny Numba kernel) on each
        idle cycle, which frees pipeline resources for a sibling hyper-thread.
    """

    name = "busy-spin"

    def __init__(self, pause: bool = False) -> None:
        self._pause = None
        if pause:
            from numbex.engine.atomics import spin_pause  # Numba only when asked for

            self._pause = spin_pause

    def idle(self, work_count: int) -> None:
        if work_count <= 0 and self._pause is not None:
            self._pause()

    def reset(self) -> None:
        """Nothing to reset."""


class BackoffIdle:
    """Spin for ``spin_ns``, yield for ``yield_ns``, then park (bounded) until work returns.

    Parameters
    ----------
    wake : WakeSource, optional
        What to park on (a ring's futex).  Without one, the park phase sleeps
        ``sleep_ns`` per idle cycle.
    spin_ns : int
        Time budget of the spin phase, from the first idle cycle after work.
    yield_ns : int
        Time budget of the ``sched_yield`` phase that follows.
    park_ns : int
        Upper bound of each park on ``wake``.
    sleep_ns : int
        Sleep per idle cycle in the park phase when there is no ``wake``.
    clock : callable
        Monotonic clock in nanoseconds (injectable for tests).
    """

    name = "backoff"

    def __init__(
        self,
        wake: WakeSource | None = None,
        *,
        spin_ns: int = 50_000,
        yield_ns: int = 200_000,
        park_ns: int = 1_000_000,
        sleep_ns: int = 100_000,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        for label, value in (("spin_ns", spin_ns), ("yield_ns", yield_ns)):
            if value < 0:
                raise ValueError(f"{label} must be >= 0, got {value}")
        for label, value in (("park_ns", park_ns), ("sleep_ns", sleep_ns)):
            if value <= 0:
                raise ValueError(f"{label} must be > 0, got {value}")
        self.wake = wake
        self.spin_ns = spin_ns
        self.yield_ns = yield_ns
        self.park_ns = park_ns
        self.sleep_ns = sleep_ns
        self._clock = clock
        self._idle_since = -1

    def idle(self, work_count: int) -> None:
        if work_count > 0:
            self._idle_since = -1
            return
        now = self._clock()
        if self._idle_since < 0:
            self._idle_since = now
        waited = now - self._idle_since
        if waited < self.spin_ns:
            return
        if waited < self.spin_ns + self.yield_ns:
            os.sched_yield()
        elif self.wake is not None:
            self.wake.park(self.park_ns)
        else:
            time.sleep(self.sleep_ns / 1e9)

    def reset(self) -> None:
        self._idle_since = -1


class BlockIdle:
    """Park at once on every idle cycle, at most ``park_ns`` (or sleep without ``wake``)."""

    name = "block"

    def __init__(self, wake: WakeSource | None = None, *, park_ns: int = 1_000_000) -> None:
        if park_ns <= 0:
            raise ValueError(f"park_ns must be > 0, got {park_ns}")
        self.wake = wake
        self.park_ns = park_ns

    def idle(self, work_count: int) -> None:
        if work_count > 0:
            return
        if self.wake is not None:
            self.wake.park(self.park_ns)
        else:
            time.sleep(self.park_ns / 1e9)

    def reset(self) -> None:
        """Nothing to reset."""


def make_idle_strategy(name: str, wake: WakeSource | None = None, **options) -> IdleStrategy:
    """Build the idle strategy called ``name`` in the config.

    Parameters
    ----------
    name : str
        ``"busy-spin"``, ``"backoff"`` or ``"block"``.
    wake : WakeSource, optional
        Wake-up source for ``backoff`` and ``block`` (ignored by ``busy-spin``).
    **options
        Keyword arguments of the strategy's class (``spin_ns``, ``park_ns``, ...).

    Raises
    ------
    ValueError
        For an unknown name (the message lists the valid ones).
    """
    if name == "busy-spin":
        return BusySpinIdle(**options)
    if name == "backoff":
        return BackoffIdle(wake, **options)
    if name == "block":
        return BlockIdle(wake, **options)
    raise ValueError(f"unknown idle strategy {name!r}; expected one of {', '.join(IDLE_STRATEGY_NAMES)}")


def role_idle_strategy(role_config, wake: WakeSource | None = None, **options) -> IdleStrategy:
    """The idle strategy a role's config section names (``idle``, and for ``backoff`` its
    ``idle_spin_us`` and ``idle_yield_us`` budgets); ``options`` as for :func:`make_idle_strategy`."""
    if role_config.idle == "backoff":
        options.setdefault("spin_ns", role_config.idle_spin_us * 1000)
        options.setdefault("yield_ns", role_config.idle_yield_us * 1000)
    return make_idle_strategy(role_config.idle, wake, **options)


class StopFlag:
    """A stop request settable from a signal handler (a plain attribute store, no lock)."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


@contextmanager
def stop_on_signals(
    stop: StopFlag, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT)
) -> Iterator[StopFlag]:
    """Within the block, the given signals set ``stop``; previous handlers come back after.

    Must be entered from the main thread (Python delivers signals there).
    """
    previous = {number: signal.getsignal(number) for number in signals}
    for number in signals:
        signal.signal(number, lambda signum, frame: stop.set())
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@dataclass(frozen=True)
class RunSummary:
    """What an :meth:`AgentRunner.run` did: duty cycles, total work, idle cycles, seconds."""

    cycles: int
    work: int
    idle_cycles: int
    seconds: float
    reason: str


class AgentRunner:
    """Run agents in duty cycles under one idle strategy until stopped.

    Each duty cycle calls every agent's ``do_work`` once, in order, and passes the
    total to ``idle.idle``.  The stop flag is checked between cycles; since agents
    do bounded work per call and every park is bounded, a stop is seen within one
    cycle plus one park timeout.

    Parameters
    ----------
    agents : Agent or sequence of Agent
        The role's loops, polled in a fixed order.
    idle : IdleStrategy
        How to wait after a cycle with no work.
    stop : object with ``is_set()``, optional
        A :class:`StopFlag`, ``threading.Event`` or ``multiprocessing.Event``;
        a new :class:`StopFlag` if omitted (see :attr:`stop`).
    """

    def __init__(self, agents: Agent | Sequence[Agent], idle: IdleStrategy, stop=None) -> None:
        self.agents = [agents] if hasattr(agents, "do_work") else list(agents)
        if not self.agents:
            raise ValueError("AgentRunner needs at least one agent")
        self.idle = idle
        self.stop = stop if stop is not None else StopFlag()

    @property
    def role_name(self) -> str:
        return "+".join(agent.role_name for agent in self.agents)

    def run(self, max_cycles: int | None = None, max_seconds: float | None = None) -> RunSummary:
        """Start the agents, cycle until stopped (or a bound is reached), then close them.

        Parameters
        ----------
        max_cycles : int, optional
            Stop after this many duty cycles.
        max_seconds : float, optional
            Stop after this much wall time.

        Returns
        -------
        RunSummary
            Counts, elapsed time and why the run ended (``"stop"``, ``"cycles"``,
            ``"seconds"``).  An exception from an agent propagates after every
            started agent's ``on_close`` has run.
        """
        started = []
        cycles = work_total = idle_cycles = 0
        reason = "stop"
        begin = time.monotonic()
        deadline = None if max_seconds is None else begin + max_seconds
        try:
            for agent in self.agents:
                agent.on_start()
                started.append(agent)
            self.idle.reset()
            while not self.stop.is_set():
                if max_cycles is not None and cycles >= max_cycles:
                    reason = "cycles"
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    reason = "seconds"
                    break
                work = 0
                for agent in self.agents:
                    work += agent.do_work()
                cycles += 1
                work_total += work
                if work <= 0:
                    idle_cycles += 1
                self.idle.idle(work)
        finally:
            _close_all(reversed(started))
        return RunSummary(cycles, work_total, idle_cycles, time.monotonic() - begin, reason)


def _close_all(agents) -> None:
    """Close every agent even if one's ``on_close`` raises; re-raise the first error."""
    first_error = None
    for agent in agents:
        try:
            agent.on_close()
        except Exception as error:  # noqa: BLE001 - keep closing the others
            first_error = first_error or error
    if first_error is not None:
        raise first_error
