"""Engine: the Python face of the Numba matching kernels.

Owns the preallocated state arrays (see :mod:`numbex.engine.book` for the layout),
feeds batches of COMMAND records to :func:`numbex.engine.commands.process_batch`
and hands back EVENT records.  The whole state is a dict of numpy arrays, so a
snapshot is a copy of them and recovery is loading them back.
"""

from __future__ import annotations

import numba
import numpy as np

from numbex.engine import book as b
from numbex.engine.commands import process_batch
from numbex.engine.kernel import STATUS_DONE
from numbex.engine.records import COMMAND, EVENT
from numbex.engine.spec import EngineSpec

STATE_ARRAYS = (
    "pool", "stops", "index", "inst", "level_head", "level_tail", "level_qty", "bits", "glob", "stp",
)


class Engine:
    """A matching engine for the instruments and accounts of ``spec``.

    Parameters
    ----------
    spec : EngineSpec
        Bands, limits, states, STP modes and capacities.
    output_events : int
        Initial size of the reusable event buffer; it grows when one command's
        worst case does not fit.
    """

    def __init__(self, spec: EngineSpec, output_events: int = 1 << 16) -> None:
        self.spec = spec
        n = spec.n_instruments
        inst = np.zeros((n, b.I_COLUMNS), dtype=np.int64)
        level_base = 0
        bits_base = 0
        for i in range(n):
            width = spec.band_high[i] - spec.band_low[i] + 1
            inst[i, b.I_LOW] = spec.band_low[i]
            inst[i, b.I_HIGH] = spec.band_high[i]
            inst[i, b.I_MAX_LOTS] = spec.max_order_lots[i]
            inst[i, b.I_STATE] = spec.states[i]
            inst[i, b.I_LEVEL_BASE] = level_base
            inst[i, b.I_BITS_BASE] = bits_base
            level_base += width
            bits_base += (width + 63) // 64
        inst[:, b.I_BEST_BID] = -1
        inst[:, b.I_BEST_ASK] = -1
        inst[:, b.I_STOP_HEAD] = -1
        inst[:, b.I_STOP_TAIL] = -1
        pool = np.zeros(spec.max_orders, dtype=b.ORDER_SLOT)
        pool["next"] = np.arange(1, spec.max_orders + 1, dtype=np.int32)
        pool["next"][-1] = -1
        stops = np.zeros(spec.max_stops, dtype=b.STOP_SLOT)
        stops["next"] = np.arange(1, spec.max_stops + 1, dtype=np.int32)
        stops["next"][-1] = -1
        size = b.index_size(spec.max_orders, spec.max_stops)
        if spec.max_orders + spec.max_stops >= 2**31 - 1:
            raise ValueError("EngineSpec: capacities exceed int32 slot numbers")
        glob = np.zeros(b.G_COLUMNS, dtype=np.int64)
        glob[b.G_FREE] = 0
        glob[b.G_STOP_FREE] = 0
        glob[b.G_MAX_ORDERS] = spec.max_orders
        glob[b.G_MAX_STOPS] = spec.max_stops
        glob[b.G_INDEX_MASK] = size - 1
        glob[b.G_INDEX_SHIFT] = size.bit_length() - 1
        glob[b.G_INSTRUMENTS] = n
        glob[b.G_ACCOUNTS] = spec.n_accounts
        self.state = {
            "pool": pool,
            "stops": stops,
            "index": np.full(size, -1, dtype=np.int32),
            "inst": inst,
            "level_head": np.full(level_base, -1, dtype=np.int32),
            "level_tail": np.full(level_base, -1, dtype=np.int32),
            "level_qty": np.zeros(level_base, dtype=np.int64),
            "bits": np.zeros(max(bits_base, 1), dtype=np.uint64),
            "glob": glob,
            "stp": np.array(spec.stp_modes, dtype=np.int64),
        }
        self._interpreted = bool(numba.config.DISABLE_JIT)
        self._args = tuple(self._kernel_view(self.state[name]) for name in STATE_ARRAYS)
        self.out = np.zeros(output_events, dtype=EVENT)

    def _kernel_view(self, array: np.ndarray) -> np.ndarray:
        """Under NUMBA_DISABLE_JIT the kernels run as Python: records need attribute access."""
        if self._interpreted and array.dtype.names:
            return array.view(np.recarray)
        return array

    # ------------------------------------------------------------------ processing
    def process(self, commands: np.ndarray) -> np.ndarray:
        """Process a COMMAND array; return a new EVENT array of everything it produced."""
        if commands.dtype != COMMAND:
            raise TypeError(f"commands must have the COMMAND dtype, not {commands.dtype}")
        chunks = []
        for events in self.process_chunks(commands):
            chunks.append(events.copy())
        if not chunks:
            return np.zeros(0, dtype=EVENT)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)

    def warm_up(self) -> None:
        """Compile (or load from the cache) the kernels now rather than on the first command."""
        empty = self._kernel_view(np.zeros(0, dtype=COMMAND))
        process_batch(*self._args, empty, 0, self._kernel_view(self.out), 0)

    def process_chunks(self, commands: np.ndarray):
        """Yield views of the event buffer; each view is valid until the next one."""
        start = 0
        total = commands.shape[0]
        commands = self._kernel_view(commands)
        while start < total:
            out = self._kernel_view(self.out)
            status, next_command, n = process_batch(*self._args, commands, start, out, 0)
            if status == STATUS_DONE or next_command > start or n > 0:
                if n:
                    yield self.out[:n]
                start = next_command
                continue
            self.out = np.zeros(self.out.shape[0] * 2, dtype=EVENT)

    # ------------------------------------------------------------------ inspection
    @property
    def resting_count(self) -> int:
        return int(self.state["glob"][b.G_RESTING])

    @property
    def stop_count(self) -> int:
        return int(self.state["glob"][b.G_STOPS])

    def last_price(self, symbol: int) -> int:
        return int(self.state["inst"][symbol, b.I_LAST])

    def instrument_state(self, symbol: int) -> int:
        return int(self.state["inst"][symbol, b.I_STATE])

    def best(self, symbol: int) -> tuple[int, int]:
        """(best bid, best ask) in ticks, -1 where that side is empty."""
        row = self.state["inst"][symbol]
        return int(row[b.I_BEST_BID]), int(row[b.I_BEST_ASK])

    def book(self, symbol: int, side: int) -> list[tuple[int, list[tuple[int, int]]]]:
        """Levels of one side, best first: ``[(price, [(order_id, leaves), ...]), ...]``."""
        inst = self.state["inst"]
        pool = self.state["pool"]
        head = self.state["level_head"]
        low = int(inst[symbol, b.I_LOW])
        base = int(inst[symbol, b.I_LEVEL_BASE])
        best = int(inst[symbol, b.I_BEST_BID if side == 0 else b.I_BEST_ASK])
        levels = []
        if best < 0:
            return levels
        if side == 0:
            prices = range(best, low - 1, -1)
        else:
            prices = range(best, int(inst[symbol, b.I_HIGH]) + 1)
        for price in prices:
            slot = int(head[base + price - low])
            orders = []
            while slot >= 0:
                if pool[slot]["side"] != side:
                    break
                orders.append((int(pool[slot]["order_id"]), int(pool[slot]["leaves"])))
                slot = int(pool[slot]["next"])
            if orders:
                levels.append((price, orders))
        return levels

    def stops(self, symbol: int) -> list[int]:
        """Untriggered stop order ids of ``symbol`` in arrival order."""
        stops = self.state["stops"]
        slot = int(self.state["inst"][symbol, b.I_STOP_HEAD])
        ids = []
        while slot >= 0:
            ids.append(int(stops[slot]["order_id"]))
            slot = int(stops[slot]["next"])
        return ids

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held by each state array."""
        return {name: int(array.nbytes) for name, array in self.state.items()}

    def bytes_per_order(self) -> float:
        """Pool plus index bytes per resting-order slot (levels are per price, not per order)."""
        return (self.state["pool"].nbytes + self.state["index"].nbytes) / self.spec.max_orders

    # ------------------------------------------------------------------ snapshots
    def save_state(self) -> dict[str, np.ndarray]:
        """A copy of every state array (for snapshots)."""
        return {name: array.copy() for name, array in self.state.items()}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Replace the state with ``arrays`` from :meth:`save_state` of the same spec."""
        for name in STATE_ARRAYS:
            if name not in arrays:
                raise ValueError(f"snapshot lacks state array {name!r}")
            mine = self.state[name]
            theirs = arrays[name]
            if theirs.shape != mine.shape or theirs.dtype != mine.dtype:
                raise ValueError(
                    f"snapshot array {name!r} is {theirs.dtype}{theirs.shape}, "
                    f"engine expects {mine.dtype}{mine.shape} (different config?)"
                )
            mine[...] = theirs
