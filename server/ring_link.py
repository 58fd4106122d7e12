"""RingLink: the gateway's EngineLink over the instance's shared-memory rings.

Producer of ``<instance>-in-<g>`` (COMMAND), consumer of ``<instance>-out-<g>``
(EVENT), reader of the engine status block, and owner of the read side of the
doorbell FIFO the engine rings when this gateway sleeps.

Events are delivered at least once by the engine (after a crash it republishes
what it cannot prove it published); :meth:`poll` delivers them exactly once by
dropping sequenced events whose exec id is not above the last one seen.

:meth:`poll` copies events out of the outbound ring without freeing their slots;
:meth:`commit` frees them once the gateway has made its replies durable.  If the
gateway dies in between, the next gateway run reads the same events again (and
skips those its restored session stores show as already reported, see
``numbex.server.fix_restore``): an event taken from the engine is never lost.
"""

from __future__ import annotations

import numpy as np

from numbex.engine import ring_kernels as k
from numbex.engine.channels import doorbell, inbound_ring, outbound_ring, status_block
from numbex.engine.records import COMMAND, EVENT
from numbex.engine.ring import Ring


class RingLink:
    """See the module docstring; implements ``numbex.server.engine_link.EngineLink``."""

    def __init__(self, instance: str, gateway_index: int, slots: int) -> None:
        # the ring kernels compiled or loaded now, not on the first order
        Ring.warm_up(COMMAND)
        Ring.warm_up(EVENT)
        self.gateway_index = gateway_index
        self.inbound = inbound_ring(instance, gateway_index, slots)
        self.outbound = outbound_ring(instance, gateway_index, slots)
        self.bell = doorbell(instance, gateway_index)
        self.status = status_block(instance)
        self.last_exec_id = 0
        self.duplicates_dropped = 0
        self._held = 0                  # events read but not released (see commit)
        self._scratch = np.zeros(4096, dtype=EVENT)

    @classmethod
    def attach(cls, config, gateway_index: int = 0) -> "RingLink":
        return cls(config.exchange.instance, gateway_index, config.gateway.ring_slots)

    def submit(self, commands: np.ndarray) -> int:
        if not len(commands):
            return 0
        return self.inbound.offer(commands)

    def poll(self, out: np.ndarray) -> int:
        held = self._held
        view = self.outbound.peek(held + len(out))    # contiguous from the ring's head
        count = len(view) - held
        if count <= 0:
            return 0
        out[:count] = view[held:]
        self._held = held + count
        events = out[:count]
        exec_ids = events["exec_id"]
        sequenced = events["seq"] != 0
        if sequenced.any():
            last = self.last_exec_id
            keep = ~sequenced | (exec_ids > np.uint64(last))
            seen = exec_ids[sequenced]
            self.last_exec_id = max(last, int(seen.max()))
            if not keep.all():
                kept = int(keep.sum())
                self.duplicates_dropped += count - kept
                out[:kept] = events[keep]
                count = kept
        return count

    def commit(self) -> None:
        if self._held:
            self.outbound.release(self._held)   # poll's last peek covered at least these
            self._held = 0

    @property
    def held(self) -> int:
        return self._held

    def engine_up(self) -> bool:
        return self.status.engine_up()

    def fileno(self) -> int | None:
        return self.bell.fileno()

    def prepare_park(self) -> bool:
        return int(k.ring_prepare_park(self.outbound.header)) >= 0

    def unpark(self) -> None:
        k.ring_unpark(self.outbound.header)
        self.bell.drain()

    def close(self) -> None:
        self.inbound.close()
        self.outbound.close()
        self.bell.close()
        self.status.close()
