"""How a gateway reaches the engine: submit COMMAND records, poll EVENT records.

Addressing (shared by every gateway and the engine):

* ``session`` field = ``gateway_index << 16 | session_index``; the engine routes an
  event to gateway ``session >> 16``, and a TRADE also to ``other_session >> 16`` (one
  delivery when both sides belong to the same gateway: the gateway handles both).
* order ids are chosen by the gateway, unique across gateways and restarts:
  :func:`order_id_base` gives ``gateway_index << 56 | epoch << 40``; add a counter.

Two links implement :class:`EngineLink`: :class:`LocalLink` runs a matching engine
in-process (tests, tools), and ``numbex.server.ring_link.RingLink`` talks to the engine
process through shared-memory rings.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from numbex.engine import records as r

GATEWAY_SHIFT = 16
ORDER_GATEWAY_SHIFT = 56
ORDER_EPOCH_SHIFT = 40
MAX_GATEWAYS = 256
MAX_EPOCH = (1 << (ORDER_GATEWAY_SHIFT - ORDER_EPOCH_SHIFT)) - 1


def session_field(gateway_index: int, session_index: int) -> int:
    """The COMMAND/EVENT ``session`` value for a gateway's session."""
    if not 0 <= gateway_index < MAX_GATEWAYS or not 0 <= session_index <= 0xFFFF:
        raise ValueError(f"gateway {gateway_index} / session {session_index} out of range")
    return gateway_index << GATEWAY_SHIFT | session_index


def order_id_base(gateway_index: int, epoch: int) -> int:
    """First bits of the order ids a gateway assigns in one run (``epoch`` counts restarts)."""
    if not 0 <= gateway_index < MAX_GATEWAYS:
        raise ValueError(f"gateway index {gateway_index} out of range 0..{MAX_GATEWAYS - 1}")
    return gateway_index << ORDER_GATEWAY_SHIFT | (epoch & MAX_EPOCH) << ORDER_EPOCH_SHIFT


def events_for_gateway(events: np.ndarray, gateway_index: int) -> np.ndarray:
    """The events one gateway receives (see the module docstring)."""
    mine = (events["session"] >> GATEWAY_SHIFT) == gateway_index
    trades = (events["kind"] == r.EV_TRADE) & (
        (events["other_session"] >> GATEWAY_SHIFT) == gateway_index
    )
    return events[mine | trades]


class EngineLink(Protocol):
    """The gateway's view of the engine."""

    gateway_index: int

    def submit(self, commands: np.ndarray) -> int:
        """Queue COMMAND records (seq and ts are stamped by the engine); returns how many
        were taken, a prefix; fewer than given means the ring is full (reject the rest
        with REASON_SYSTEM_BUSY)."""

    def poll(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` EVENT records for this gateway into ``out``; returns n.

        Polled events stay held by the link (redelivered to the next gateway run if this
        one dies) until :meth:`commit`."""

    def commit(self) -> None:
        """Every polled event is handled and its replies are durable: let them go."""

    @property
    def held(self) -> int:
        """Events polled and not yet committed."""

    def engine_up(self) -> bool:
        """False while the engine is down or recovering (reject with REASON_ENGINE_DOWN)."""

    def fileno(self) -> int | None:
        """A descriptor that becomes readable when events arrive after :meth:`prepare_park`,
        for epoll/uvloop; None when the link has none (then poll with a timeout)."""

    def prepare_park(self) -> bool:
        """Announce that the gateway is about to sleep; False if events are already waiting."""

    def unpark(self) -> None:
        """The gateway is awake again (call after every :meth:`prepare_park` that returned True)."""

    def close(self) -> None:
        """Release the link's resources."""


class LocalLink:
    """An in-process matching engine behind the EngineLink interface.

    Commands are sequenced and matched synchronously inside :meth:`submit`; events
    wait in a queue for :meth:`poll`.  No WAL: for tests and tools only.

    Parameters
    ----------
    spec : numbex.engine.spec.EngineSpec
    gateway_index : int
    clock_ns : callable returning int, optional
        Sequencing timestamps; defaults to ``time.time_ns``.
    """

    def __init__(self, spec, gateway_index: int = 0, clock_ns=None) -> None:
        import time

        from numbex.engine.matcher import Engine

        self.engine = Engine(spec)
        self.engine.warm_up()  # compile or load the kernels now, not on the first order
        self.gateway_index = gateway_index
        self._clock = clock_ns or time.time_ns
        self._seq = 0
        self._pending: list[np.ndarray] = []
        self._pending_offset = 0           # events of _pending[0] already committed
        self._held = 0                     # events polled, not committed
        self.up = True
        self.capacity: int | None = None  # set to simulate a full ring (commands per submit)
        self.submitted = 0

    def submit(self, commands: np.ndarray) -> int:
        if not self.up:
            return 0
        count = len(commands) if self.capacity is None else min(len(commands), self.capacity)
        if count == 0:
            return 0
        batch = np.array(commands[:count], dtype=r.COMMAND)
        batch["seq"] = np.arange(self._seq + 1, self._seq + 1 + count, dtype=np.uint64)
        batch["ts_ns"] = self._clock()
        self._seq += count
        self.submitted += count
        events = events_for_gateway(self.engine.process(batch), self.gateway_index)
        if len(events):
            self._pending.append(events)
        return count

    def poll(self, out: np.ndarray) -> int:
        filled = 0
        skip = self._pending_offset + self._held        # read past the committed events
        for chunk in self._pending:
            if filled == len(out):
                break
            if skip >= len(chunk):
                skip -= len(chunk)
                continue
            take = min(len(out) - filled, len(chunk) - skip)
            out[filled:filled + take] = chunk[skip:skip + take]
            filled += take
            skip = 0
        self._held += filled
        return filled

    def commit(self) -> None:
        """Drop the events polled so far (held until now, like the ring's slots)."""
        offset = self._pending_offset + self._held
        while self._pending and offset >= len(self._pending[0]):
            offset -= len(self._pending.pop(0))
        self._pending_offset = offset
        self._held = 0

    @property
    def held(self) -> int:
        return self._held

    def rewind(self) -> None:
        """Forget what was polled and not committed: the next poll reads it again (what a
        gateway run started after one that died sees in the ring)."""
        self._held = 0

    def engine_up(self) -> bool:
        return self.up

    def fileno(self) -> int | None:
        return None

    def prepare_park(self) -> bool:
        return sum(len(chunk) for chunk in self._pending) <= self._pending_offset + self._held

    def unpark(self) -> None:
        pass

    def close(self) -> None:
        self._pending.clear()
        self._pending_offset = self._held = 0
