"""Benchmark workloads: the 40-byte interchange format, a generator, and conversion.

The file is a ``.npy`` array of ``BENCH_ORDER`` records (engine/records.py):
``order_id u8, price i8 (ticks), qty i8, client u4, symbol u4, op u1 (0 new limit,
1 new market, 2 cancel, 3 replace: new price and new open quantity), side u1
(0 buy, 1 sell), tif u1 (0 GTC, 1 IOC, 2 FOK)``.  A sidecar ``FILE.json`` records the
prefill count and the generator's parameters.

The generator models order flow on published NASDAQ ITCH statistics: about 45%
new passive orders resting near the touch at power-law distances, 40% cancels,
10% replaces, 5% aggressive orders (IOC, FOK, market, crossing limits), books held
near a target depth per instrument, and Zipf-skewed activity across instruments.
It tracks which orders are live by running the generated stream through the engine
in batches, so cancels and replaces nearly always name live orders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from numbex.engine import records as r

MID = 100_000  # starting mid price in ticks
BAND = 20_000  # band half-width in ticks used when replaying generated files


def to_commands(orders: np.ndarray) -> np.ndarray:
    """Convert BENCH_ORDER records to COMMAND records (seq from 1, STP off)."""
    commands = np.zeros(orders.shape[0], dtype=r.COMMAND)
    commands["seq"] = np.arange(1, orders.shape[0] + 1, dtype=np.uint64)
    commands["order_id"] = orders["order_id"]
    commands["price"] = orders["price"]
    commands["qty"] = orders["qty"]
    commands["account"] = orders["client"]
    commands["symbol"] = orders["symbol"].astype(np.uint16)
    commands["side"] = orders["side"]
    commands["tif"] = orders["tif"]
    op = orders["op"]
    commands["op"] = np.select(
        [op == 0, op == 1, op == 2, op == 3], [r.OP_NEW, r.OP_NEW, r.OP_CANCEL, r.OP_REPLACE], 0
    )
    commands["ord_type"] = np.where(op == 1, r.ORD_MARKET, r.ORD_LIMIT)
    commands["flags"] = np.where(op == 3, r.CMD_FLAG_QTY_IS_LEAVES, 0)
    return commands


def spec_for(orders: np.ndarray, max_orders: int = 1 << 20):
    """An EngineSpec covering the file: one band spanning every price, STP off."""
    from numbex.engine.spec import EngineSpec

    priced = orders["price"][orders["op"] != 1]
    low = int(priced.min()) if priced.size else 1
    high = int(priced.max()) if priced.size else 2
    n_instruments = int(orders["symbol"].max()) + 1
    n_accounts = int(orders["client"].max()) + 1
    return EngineSpec.uniform(n_instruments, max(1, low), max(high, low + 1), n_accounts=n_accounts,
                              max_orders=max_orders, max_stops=16)


class _Generator:
    def __init__(self, instruments: int, seed: int, depth: int, clients: int) -> None:
        from numbex.engine.matcher import Engine
        from numbex.engine.spec import EngineSpec

        self.rng = np.random.default_rng(seed)
        self.instruments = instruments
        self.depth = depth
        self.clients = clients
        self.mid = np.full(instruments, MID, dtype=np.int64)
        self.live: list[dict[int, tuple[int, int, int]]] = [{} for _ in range(instruments)]
        self.live_list: list[list[int]] = [[] for _ in range(instruments)]
        self.next_id = 1
        weights = 1.0 / np.arange(1, instruments + 1)
        self.weights = weights / weights.sum()
        spec = EngineSpec.uniform(instruments, MID - BAND, MID + BAND, n_accounts=clients,
                                  max_orders=max(1 << 16, 4 * depth * instruments), max_stops=16)
        self.engine = Engine(spec)
        self.pending: list[tuple] = []

    def _offset(self) -> int:
        return 1 + int(min(self.rng.pareto(1.3) * 2.0, 400))

    def passive(self, symbol: int) -> None:
        side = int(self.rng.integers(2))
        mid = int(self.mid[symbol])
        price = mid - self._offset() + 1 if side == 0 else mid + self._offset()
        qty = int(self.rng.choice((100, 100, 100, 200, 300, 500, 1000)))
        self._add(symbol, 0, side, price, qty, 0)

    def aggressive(self, symbol: int) -> None:
        side = int(self.rng.integers(2))
        mid = int(self.mid[symbol])
        roll = self.rng.random()
        qty = int(self.rng.choice((100, 200, 300, 500)))
        through = int(self.rng.integers(1, 4))
        price = mid + through if side == 0 else mid - through
        if roll < 0.2:
            self._add(symbol, 1, side, 0, qty, 0)
        elif roll < 0.6:
            self._add(symbol, 0, side, price, qty, 1)
        elif roll < 0.8:
            self._add(symbol, 0, side, price, qty, 2)
        else:
            self._add(symbol, 0, side, price, qty, 0)

    def _add(self, symbol, op, side, price, qty, tif) -> None:
        order_id = self.next_id
        self.next_id += 1
        client = int(self.rng.integers(self.clients))
        self.pending.append((order_id, price, qty, client, symbol, op, side, tif))

    def _pick_live(self, symbol: int):
        ids = self.live_list[symbol]
        while ids:
            k = int(self.rng.integers(len(ids)))
            order_id = ids[k]
            ids[k] = ids[-1]
            ids.pop()
            if order_id in self.live[symbol]:
                return order_id
        return None

    def cancel(self, symbol: int) -> bool:
        order_id = self._pick_live(symbol)
        if order_id is None:
            return False
        price, side, client = self.live[symbol].pop(order_id)
        self.pending.append((order_id, price, 0, client, symbol, 2, side, 0))
        return True

    def replace(self, symbol: int) -> bool:
        order_id = self._pick_live(symbol)
        if order_id is None:
            return False
        price, side, client = self.live[symbol].pop(order_id)
        qty = int(self.rng.choice((100, 200, 300, 500)))
        if self.rng.random() < 0.5:
            new_price = price
        else:
            new_price = price + int(self.rng.integers(-2, 3))
            mid = int(self.mid[symbol])
            new_price = min(new_price, mid - 1) if side == 0 else max(new_price, mid + 1)
        self.pending.append((order_id, new_price, qty, client, symbol, 3, side, 0))
        return True

    def flush(self) -> np.ndarray:
        """Run pending records through the engine and learn which orders rest."""
        batch = np.array(self.pending, dtype=r.BENCH_ORDER)
        self.pending = []
        commands = to_commands(batch)
        events = self.engine.process(commands)
        gone = (events["kind"] == r.EV_CANCELLED) | (
            (events["kind"] == r.EV_REPLACED) & (events["leaves"] == 0)
        )
        for order_id, symbol in zip(events["order_id"][gone], events["symbol"][gone]):
            self.live[int(symbol)].pop(int(order_id), None)
        filled = (events["kind"] == r.EV_TRADE) & (events["other_leaves"] == 0)
        for order_id, symbol in zip(events["other_id"][filled], events["symbol"][filled]):
            self.live[int(symbol)].pop(int(order_id), None)
        kept = (events["kind"] == r.EV_REPLACED) & (events["leaves"] > 0) & (
            (events["flags"] & r.EV_FLAG_REMOVED) == 0
        )
        for symbol in range(self.instruments):
            bid, ask = self.engine.best(symbol)
            if bid > 0 and ask > 0:
                self.mid[symbol] = (bid + ask) // 2
            elif bid > 0:
                self.mid[symbol] = bid + 1
            elif ask > 0:
                self.mid[symbol] = ask - 1
        added = events[(events["kind"] == r.EV_BOOK_ADD) | kept]
        for event in added:
            symbol = int(event["symbol"])
            order_id = int(event["order_id"])
            if order_id not in self.live[symbol]:
                self.live_list[symbol].append(order_id)
            self.live[symbol][order_id] = (int(event["price"]), int(event["side"]),
                                           int(event["account"]))
        return batch


def generate(ops: int, instruments: int, seed: int, depth: int = 2000,
             clients: int = 64, batch: int = 2048) -> tuple[np.ndarray, int]:
    """Return ``(records, prefill)``: ``prefill`` passive orders building each book to
    ``depth``, then ``ops`` steady-state records."""
    gen = _Generator(instruments, seed, depth, clients)
    chunks = []
    for _round in range(depth):
        for symbol in range(instruments):
            gen.passive(symbol)
        if len(gen.pending) >= batch:
            chunks.append(gen.flush())
    if gen.pending:
        chunks.append(gen.flush())
    prefill = sum(len(c) for c in chunks)
    produced = 0
    symbols = gen.rng.choice(instruments, size=ops, p=gen.weights)
    rolls = gen.rng.random(ops)
    for symbol, roll in zip(symbols.tolist(), rolls.tolist()):
        live = len(gen.live[symbol])
        if roll < 0.45:
            kind = 0
        elif roll < 0.85:
            kind = 1
        elif roll < 0.95:
            kind = 2
        else:
            kind = 3
        if kind == 0 and live > depth * 1.1:
            kind = 1
        elif kind in (1, 2) and live < depth * 0.9:
            kind = 0
        if kind == 1 and not gen.cancel(symbol):
            kind = 0
        if kind == 2 and not gen.replace(symbol):
            kind = 0
        if kind == 0:
            gen.passive(symbol)
        elif kind == 3:
            gen.aggressive(symbol)
        produced += 1
        if len(gen.pending) >= batch:
            chunks.append(gen.flush())
    if gen.pending:
        chunks.append(gen.flush())
    return np.concatenate(chunks), prefill


def save(path: str | Path, records: np.ndarray, prefill: int, **meta) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, records)
    Path(str(path) + ".json").write_text(json.dumps({"prefill": prefill, **meta}, indent=2))


def load(path: str | Path) -> tuple[np.ndarray, int | None]:
    """Load a workload file and its sidecar's prefill count (None without a sidecar)."""
    records = np.load(path)
    if records.dtype != r.BENCH_ORDER:
        raise ValueError(f"{path}: dtype {records.dtype} is not the 40-byte bench order format")
    sidecar = Path(str(path) + ".json")
    prefill = json.loads(sidecar.read_text())["prefill"] if sidecar.exists() else None
    return records, prefill
