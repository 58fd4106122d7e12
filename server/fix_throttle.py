"""Per-session message throttle: a token bucket plus an abuse detector.

Each application message takes one token; tokens refill at
``messages_per_second`` up to a burst of one second's worth.  A message that
finds the bucket empty is *excess*: the gateway rejects it (ExecutionReport or
OrderCancelReject with Text "throttled") and it does not reach the engine.

Sustained abuse ends the session with a Logout: ``logout_excess`` excess
messages in a row, or excess messages for ``logout_seconds`` without a single
message being allowed in between.  Integer arithmetic only (token units of
1e-9 message), time comes in as ``now_ns``.
"""

from __future__ import annotations

NANOS = 1_000_000_000
DEFAULT_LOGOUT_EXCESS = 1000
DEFAULT_LOGOUT_SECONDS = 5.0


class Throttle:
    """Token bucket of one session.

    Parameters
    ----------
    messages_per_second : int
        Refill rate; also the burst size (bucket capacity), unless ``burst`` is given.
    now_ns : int
        Start time; the bucket starts full.
    burst : int, optional
        Capacity in messages.
    logout_excess : int
        Consecutive excess messages that count as abuse.
    logout_seconds : float
        Duration of an unbroken run of excess messages that counts as abuse.
    """

    __slots__ = ("rate", "capacity", "credit", "last_ns", "logout_excess", "logout_ns", "excess_run",
                 "excess_since", "excess_total")

    def __init__(self, messages_per_second: int, now_ns: int, burst: int | None = None,
                 logout_excess: int = DEFAULT_LOGOUT_EXCESS,
                 logout_seconds: float = DEFAULT_LOGOUT_SECONDS) -> None:
        if messages_per_second <= 0:
            raise ValueError(f"messages_per_second must be positive, got {messages_per_second}")
        if logout_excess <= 0 or logout_seconds <= 0:
            raise ValueError("logout_excess and logout_seconds must be positive")
        self.rate = messages_per_second
        self.capacity = (burst if burst is not None else messages_per_second) * NANOS
        self.credit = self.capacity
        self.last_ns = now_ns
        self.logout_excess = logout_excess
        self.logout_ns = int(logout_seconds * NANOS)
        self.excess_run = 0
        self.excess_since = 0
        self.excess_total = 0

    def allow(self, now_ns: int) -> bool:
        """Take one token; False (an excess message) when the bucket is empty."""
        elapsed = now_ns - self.last_ns
        credit = self.credit
        if elapsed > 0:
            credit += elapsed * self.rate
            if credit > self.capacity:
                credit = self.capacity
            self.last_ns = now_ns
        if credit >= NANOS:
            self.credit = credit - NANOS
            self.excess_run = 0
            return True
        self.credit = credit
        if self.excess_run == 0:
            self.excess_since = now_ns
        self.excess_run += 1
        self.excess_total += 1
        return False

    def abusive(self, now_ns: int) -> bool:
        """True when the current run of excess messages is long enough for a Logout."""
        run = self.excess_run
        return run > 0 and (run >= self.logout_excess or now_ns - self.excess_since >= self.logout_ns)
