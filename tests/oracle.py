"""The plain-Python reference matcher (the oracle) for docs/SEMANTICS.md.

:class:`ReferenceMatcher` implements the matching semantics straightforwardly,
with dicts and lists, so that it can be read against the document line by line.
The Numba engine (``numbex.engine.matcher.Engine``) must agree with it event for
event, field for field, on any command stream.

Layout (per instrument):

- a :class:`BookSide` per side: ``price -> {order_id: order}``; a Python dict keeps
  insertion order, which is time priority within the level; a sorted list of keys
  (``price`` for asks, ``-price`` for bids) puts the best level first;
- a :class:`StopList`: ``{order_id: order}`` in arrival order, plus two heaps of
  trigger prices so that "does any stop trigger at this price?" is cheap.

Only numpy and ``numbex.engine.records`` / ``numbex.engine.spec`` are imported, so
benchmarks can load this file on its own.
"""

from __future__ import annotations

import bisect
import heapq
from typing import NamedTuple

import numpy as np

from numbex.engine import records as r
from numbex.engine.spec import EngineSpec

_U64_MASK = (1 << 64) - 1
NOWHERE, IN_BOOK, IN_STOPS = 0, 1, 2


class Command(NamedTuple):
    """The COMMAND fields matching reads, as Python ints (other fields are ignored)."""

    seq: int
    ts_ns: int
    order_id: int
    client_ref: int
    price: int
    qty: int
    stop_price: int
    aux: int
    account: int
    session: int
    symbol: int
    op: int
    side: int
    ord_type: int
    tif: int
    flags: int


class Order:
    """An accepted order: fields as entered plus its current price and quantities."""

    __slots__ = ("order_id", "account", "session", "symbol", "side", "ord_type", "tif",
                 "post_only", "price", "stop_price", "qty", "leaves", "cum", "arrival", "where")

    def __init__(self, command: Command, arrival: int) -> None:
        self.order_id = command.order_id
        self.account = command.account
        self.session = command.session
        self.symbol = command.symbol
        self.side = command.side
        self.ord_type = command.ord_type
        self.tif = command.tif
        self.post_only = bool(command.flags & r.CMD_FLAG_POST_ONLY)
        has_limit = command.ord_type in (r.ORD_LIMIT, r.ORD_STOP_LIMIT)
        has_stop = command.ord_type in (r.ORD_STOP, r.ORD_STOP_LIMIT)
        self.price = command.price if has_limit else 0  # "price of the order"
        self.stop_price = command.stop_price if has_stop else 0
        self.qty = command.qty
        self.leaves = command.qty
        self.cum = 0
        self.arrival = arrival
        self.where = NOWHERE


class BookSide:
    """One side of one instrument's book; levels best first, FIFO within a level."""

    def __init__(self, side: int) -> None:
        self.sign = -1 if side == r.SIDE_BUY else 1
        self.levels: dict[int, dict[int, Order]] = {}
        self.keys: list[int] = []  # sign * price, ascending: best level first

    def best_price(self) -> int | None:
        return self.sign * self.keys[0] if self.keys else None

    def oldest_at(self, price: int) -> Order:
        return next(iter(self.levels[price].values()))

    def add(self, order: Order) -> None:
        level = self.levels.get(order.price)
        if level is None:
            level = self.levels[order.price] = {}
            bisect.insort(self.keys, self.sign * order.price)
        level[order.order_id] = order

    def remove(self, order: Order) -> None:
        level = self.levels[order.price]
        del level[order.order_id]
        if not level:
            del self.levels[order.price]
            del self.keys[bisect.bisect_left(self.keys, self.sign * order.price)]

    def in_priority(self):
        """Yield the resting orders best price first, time priority within a level."""
        for key in self.keys:
            yield from self.levels[self.sign * key].values()

    def snapshot(self) -> list[tuple[int, list[tuple[int, int]]]]:
        return [(self.sign * key, [(o.order_id, o.leaves) for o in self.levels[self.sign * key].values()])
                for key in self.keys]


class StopList:
    """Untriggered stop orders of one instrument in arrival order."""

    def __init__(self) -> None:
        self.orders: dict[int, Order] = {}
        # Lazily cleaned heaps of (key, arrival, order_id): buy key = stop price
        # (triggers when last >= the smallest), sell key = -stop price.
        self._buy_heap: list[tuple[int, int, int]] = []
        self._sell_heap: list[tuple[int, int, int]] = []

    def __len__(self) -> int:
        return len(self.orders)

    def add(self, order: Order) -> None:
        self.orders[order.order_id] = order
        if order.side == r.SIDE_BUY:
            heapq.heappush(self._buy_heap, (order.stop_price, order.arrival, order.order_id))
        else:
            heapq.heappush(self._sell_heap, (-order.stop_price, order.arrival, order.order_id))
        if len(self._buy_heap) + len(self._sell_heap) > 4 * len(self.orders) + 64:
            self._rebuild_heaps()

    def remove(self, order: Order) -> None:
        del self.orders[order.order_id]

    def first_triggered(self, last: int) -> Order | None:
        """The first stop in arrival order whose condition holds at ``last``."""
        buy_top = self._live_top(self._buy_heap)
        sell_top = self._live_top(self._sell_heap)
        if (buy_top is None or last < buy_top) and (sell_top is None or last > -sell_top):
            return None
        for order in self.orders.values():
            if order.side == r.SIDE_BUY and last >= order.stop_price:
                return order
            if order.side == r.SIDE_SELL and last <= order.stop_price:
                return order
        raise AssertionError(f"stop heaps out of step with the stop list at last={last}")

    def _live_top(self, heap: list[tuple[int, int, int]]) -> int | None:
        while heap:
            key, arrival, order_id = heap[0]
            order = self.orders.get(order_id)
            if order is not None and order.arrival == arrival:
                return key
            heapq.heappop(heap)
        return None

    def _rebuild_heaps(self) -> None:
        self._buy_heap = [(o.stop_price, o.arrival, o.order_id)
                          for o in self.orders.values() if o.side == r.SIDE_BUY]
        self._sell_heap = [(-o.stop_price, o.arrival, o.order_id)
                           for o in self.orders.values() if o.side == r.SIDE_SELL]
        heapq.heapify(self._buy_heap)
        heapq.heapify(self._sell_heap)


class ReferenceMatcher:
    """Reference implementation of docs/SEMANTICS.md.

    Parameters
    ----------
    spec : EngineSpec
        Bands, limits, initial states, STP modes and capacities.
    """

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        n = spec.n_instruments
        self._states = list(spec.states)
        self._last = [0] * n
        self._books = [(BookSide(r.SIDE_BUY), BookSide(r.SIDE_SELL)) for _ in range(n)]
        self._stops = [StopList() for _ in range(n)]
        self._live: dict[int, Order] = {}  # resting or untriggered stop, all instruments
        self._resting = 0
        self._stopped = 0
        self._arrivals = 0
        self._command: Command | None = None
        self._events: list[tuple] = []
        self._event_index = 0

    # ------------------------------------------------------------------ queries
    @property
    def resting_count(self) -> int:
        """Orders resting in books, all instruments."""
        return self._resting

    @property
    def stop_count(self) -> int:
        """Untriggered stop orders, all instruments."""
        return self._stopped

    def book(self, symbol: int, side: int) -> list[tuple[int, list[tuple[int, int]]]]:
        """Price levels best first, each with ``[(order_id, leaves), ...]`` in time priority."""
        self._check_symbol(symbol)
        if side not in (r.SIDE_BUY, r.SIDE_SELL):
            raise ValueError(f"book: side {side} is not SIDE_BUY or SIDE_SELL")
        return self._books[symbol][side].snapshot()

    def stops(self, symbol: int) -> list[int]:
        """Untriggered stop order ids of ``symbol`` in arrival order."""
        self._check_symbol(symbol)
        return list(self._stops[symbol].orders)

    def last_price(self, symbol: int) -> int:
        """Last trade price of ``symbol`` in ticks (0 = no trade yet)."""
        self._check_symbol(symbol)
        return self._last[symbol]

    def _check_symbol(self, symbol: int) -> None:
        if not 0 <= symbol < self.spec.n_instruments:
            raise ValueError(f"symbol {symbol} outside 0..{self.spec.n_instruments - 1}")

    # ------------------------------------------------------------------ driver
    def process(self, commands: np.ndarray) -> np.ndarray:
        """Process a batch of COMMAND records; return the EVENT records they produce."""
        if commands.dtype != r.COMMAND:
            raise TypeError(f"process: expected a COMMAND array, got dtype {commands.dtype}")
        self._events = []
        handlers = {r.OP_NEW: self._new, r.OP_CANCEL: self._cancel_command,
                    r.OP_REPLACE: self._replace, r.OP_MASS_CANCEL: self._mass_cancel,
                    r.OP_SET_STATE: self._set_state}
        for row in commands[list(Command._fields)].tolist():
            command = self._command = Command(*row)
            self._event_index = 0
            handler = handlers.get(command.op)
            if handler is None:
                self._reject(r.REASON_UNKNOWN_OP)
            else:
                handler(command)
        return np.array(self._events, dtype=r.EVENT)

    # ------------------------------------------------------------------ events
    def _emit(self, kind: int, order_id: int = 0, other_id: int = 0, price: int = 0, qty: int = 0,
              leaves: int = 0, cum: int = 0, other_leaves: int = 0, other_cum: int = 0, aux: int = 0,
              account: int = 0, other_account: int = 0, session: int = 0, symbol: int = 0,
              side: int = 0, reason: int = 0, ord_type: int = 0, tif: int = 0, flags: int = 0,
              other_session: int = 0) -> None:
        command = self._command
        exec_id = ((command.seq << r.EXEC_ID_SHIFT) | self._event_index) & _U64_MASK
        self._event_index += 1
        # The command's client_ref goes on events about the command's own order and on
        # events with order_id 0 (MASS_CANCEL_DONE, STATE_CHANGED, rejects of id 0).
        client_ref = command.client_ref if order_id in (0, command.order_id) else 0
        self._events.append((command.seq, command.ts_ns, exec_id, order_id, other_id, client_ref,
                             price, qty, leaves, cum, other_leaves, other_cum, aux, account,
                             other_account, session, symbol, kind, side, reason, ord_type, tif,
                             flags, other_session))

    def _emit_for(self, kind: int, order: Order, **fields) -> None:
        """Emit an event carrying the order fields of ``order``."""
        flags = fields.pop("flags", 0) | (r.EV_FLAG_POST_ONLY if order.post_only else 0)
        self._emit(kind, order_id=order.order_id, account=order.account, session=order.session,
                   symbol=order.symbol, side=order.side, ord_type=order.ord_type, tif=order.tif,
                   flags=flags, **fields)

    def _reject(self, reason: int) -> None:
        c = self._command
        self._emit(r.EV_REJECTED, order_id=c.order_id, price=c.price, qty=c.qty, aux=c.stop_price,
                   account=c.account, session=c.session, symbol=c.symbol, side=c.side,
                   ord_type=c.ord_type, tif=c.tif, reason=reason)

    def _reject_order_command(self, kind: int, reason: int) -> None:
        c = self._command
        extra = {"price": c.price, "qty": c.qty} if kind == r.EV_REPLACE_REJECTED else {}
        self._emit(kind, order_id=c.order_id, account=c.account, session=c.session,
                   symbol=c.symbol, side=c.side, reason=reason, **extra)

    # ------------------------------------------------------------------ order state
    def _rest(self, order: Order) -> None:
        self._books[order.symbol][order.side].add(order)
        order.where = IN_BOOK
        self._live[order.order_id] = order
        self._resting += 1
        self._emit_for(r.EV_BOOK_ADD, order, price=order.price, qty=order.leaves,
                       leaves=order.leaves, cum=order.cum)

    def _take_off(self, order: Order) -> None:
        """Remove a live order from its book or stop list (no event)."""
        if order.where == IN_BOOK:
            self._books[order.symbol][order.side].remove(order)
            self._resting -= 1
        elif order.where == IN_STOPS:
            self._stops[order.symbol].remove(order)
            self._stopped -= 1
        if order.where != NOWHERE:
            del self._live[order.order_id]
        order.where = NOWHERE

    def _cancel(self, order: Order, cause: int) -> None:
        """CANCELLED for ``order`` (live or an aggressor in flight) with ``cause``."""
        flags = r.EV_FLAG_ON_BOOK if order.where == IN_BOOK else 0
        aux = order.stop_price if order.where == IN_STOPS else 0
        self._take_off(order)
        self._emit_for(r.EV_CANCELLED, order, price=order.price, qty=order.leaves, leaves=0,
                       cum=order.cum, aux=aux, reason=cause, flags=flags)
        order.leaves = 0

    def _would_cross(self, order: Order) -> bool:
        best = self._books[order.symbol][1 - order.side].best_price()
        if best is None:
            return False
        return best <= order.price if order.side == r.SIDE_BUY else best >= order.price

    # ------------------------------------------------------------------ NEW
    def _new_reject_reason(self, c: Command) -> int:
        """The first failing NEW check (SEMANTICS.md, NEW 1-10), or REASON_NONE."""
        spec = self.spec
        if c.order_id == 0:
            return r.REASON_BAD_ORDER_ID
        if c.symbol >= spec.n_instruments:
            return r.REASON_UNKNOWN_INSTRUMENT
        if c.account >= spec.n_accounts:
            return r.REASON_UNKNOWN_ACCOUNT
        if c.order_id in self._live:
            return r.REASON_DUPLICATE_ORDER_ID
        if c.side > r.SIDE_SELL:
            return r.REASON_BAD_SIDE
        if c.ord_type > r.ORD_STOP_LIMIT:
            return r.REASON_BAD_ORDER_TYPE
        if c.tif > r.TIF_DAY:
            return r.REASON_BAD_TIF
        state = self._states[c.symbol]
        if state == r.STATE_HALTED:
            return r.REASON_HALTED
        if state == r.STATE_CLOSED:
            return r.REASON_CLOSED
        if c.qty <= 0:
            return r.REASON_BAD_QUANTITY
        if c.qty > spec.max_order_lots[c.symbol]:
            return r.REASON_QTY_ABOVE_MAX
        low, high = spec.band_low[c.symbol], spec.band_high[c.symbol]
        is_stop = c.ord_type in (r.ORD_STOP, r.ORD_STOP_LIMIT)
        if c.ord_type in (r.ORD_LIMIT, r.ORD_STOP_LIMIT) and not low <= c.price <= high:
            return r.REASON_OUTSIDE_BAND
        if is_stop and not low <= c.stop_price <= high:
            return r.REASON_OUTSIDE_BAND
        if c.flags & r.CMD_FLAG_POST_ONLY and (c.ord_type != r.ORD_LIMIT or c.tif in (r.TIF_IOC, r.TIF_FOK)):
            return r.REASON_BAD_COMBINATION
        if not is_stop and self._resting >= spec.max_orders:
            return r.REASON_BOOK_FULL
        if is_stop and self._stopped >= spec.max_stops:
            return r.REASON_STOPS_FULL
        return r.REASON_NONE

    def _new(self, c: Command) -> None:
        reason = self._new_reject_reason(c)
        if reason != r.REASON_NONE:
            self._reject(reason)
            return
        self._arrivals += 1
        order = Order(c, self._arrivals)
        self._emit_for(r.EV_ACCEPTED, order, price=order.price, qty=order.qty, leaves=order.qty,
                       aux=order.stop_price)
        if order.ord_type in (r.ORD_STOP, r.ORD_STOP_LIMIT):
            self._stops[order.symbol].add(order)
            self._stopped += 1
            order.where = IN_STOPS
            self._live[order.order_id] = order
        elif order.post_only:
            if self._would_cross(order):
                self._cancel(order, r.CAUSE_POST_ONLY)
            else:
                self._rest(order)
        else:
            self._execute(order)
        self._run_triggers(order.symbol)

    # ------------------------------------------------------------------ execute
    def _execute(self, order: Order) -> None:
        """Match ``order`` as an aggressor, then rest or cancel what is left."""
        spec = self.spec
        opposite = self._books[order.symbol][1 - order.side]
        buying = order.side == r.SIDE_BUY
        if order.ord_type in (r.ORD_LIMIT, r.ORD_STOP_LIMIT):
            limit = order.price
        else:  # market orders take liquidity only within the band
            limit = spec.band_high[order.symbol] if buying else spec.band_low[order.symbol]
        stp = spec.stp_modes[order.account]

        def acceptable(price: int | None) -> bool:
            return price is not None and (price <= limit if buying else price >= limit)

        if order.tif == r.TIF_FOK and self._fok_available(order, opposite, acceptable, stp) < order.leaves:
            self._cancel(order, r.CAUSE_FOK)
            return
        stopped_by_stp = False
        while order.leaves > 0 and acceptable(opposite.best_price()):
            resting = opposite.oldest_at(opposite.best_price())
            if stp != r.STP_OFF and resting.account == order.account:
                if stp in (r.STP_CANCEL_RESTING, r.STP_CANCEL_BOTH):
                    self._cancel(resting, r.CAUSE_STP)
                if stp in (r.STP_CANCEL_AGGRESSOR, r.STP_CANCEL_BOTH):
                    stopped_by_stp = True
                    break
                continue
            self._trade(order, resting)
        if order.leaves == 0:
            return
        if stopped_by_stp:
            self._cancel(order, r.CAUSE_STP)
        elif order.ord_type in (r.ORD_MARKET, r.ORD_STOP) and order.tif != r.TIF_FOK:
            self._cancel(order, r.CAUSE_MARKET_REMAINDER)
        elif order.tif == r.TIF_IOC:
            self._cancel(order, r.CAUSE_IOC)
        elif order.tif == r.TIF_FOK:
            self._cancel(order, r.CAUSE_FOK)
        else:
            self._rest(order)

    @staticmethod
    def _fok_available(order: Order, opposite: BookSide, acceptable, stp: int) -> int:
        """Resting quantity a FOK aggressor could take (SEMANTICS.md, FOK pre-check)."""
        total = 0
        for resting in opposite.in_priority():
            if not acceptable(resting.price) or total >= order.leaves:
                break
            if stp != r.STP_OFF and resting.account == order.account:
                if stp == r.STP_CANCEL_RESTING:
                    continue
                break
            total += resting.leaves
        return total

    def _trade(self, order: Order, resting: Order) -> None:
        quantity = min(order.leaves, resting.leaves)
        order.leaves -= quantity
        order.cum += quantity
        resting.leaves -= quantity
        resting.cum += quantity
        self._last[order.symbol] = resting.price
        self._emit_for(r.EV_TRADE, order, other_id=resting.order_id, other_account=resting.account,
                       other_session=resting.session, price=resting.price, qty=quantity,
                       leaves=order.leaves, cum=order.cum, other_leaves=resting.leaves,
                       other_cum=resting.cum)
        if resting.leaves == 0:
            self._take_off(resting)

    def _run_triggers(self, symbol: int) -> None:
        stops = self._stops[symbol]
        while self._last[symbol] != 0:
            order = stops.first_triggered(self._last[symbol])
            if order is None:
                return
            self._take_off(order)
            self._emit_for(r.EV_STOP_TRIGGERED, order, price=order.price, qty=order.qty,
                           leaves=order.qty, aux=order.stop_price)
            if self._resting >= self.spec.max_orders:
                self._cancel(order, r.CAUSE_BOOK_FULL)
            else:
                self._execute(order)

    # ------------------------------------------------------------------ CANCEL / REPLACE
    def _cancel_command(self, c: Command) -> None:
        order = self._live.get(c.order_id)
        if order is None:
            self._reject_order_command(r.EV_CANCEL_REJECTED, r.REASON_UNKNOWN_ORDER)
        elif order.account != c.account:
            self._reject_order_command(r.EV_CANCEL_REJECTED, r.REASON_NOT_OWNER)
        else:
            self._cancel(order, r.CAUSE_USER)

    def _replace_reject_reason(self, c: Command, order: Order | None) -> int:
        """The first failing REPLACE check; limits are those of the order's instrument."""
        if order is None:
            return r.REASON_UNKNOWN_ORDER
        if order.account != c.account:
            return r.REASON_NOT_OWNER
        if order.where == IN_STOPS:
            return r.REASON_NOT_REPLACEABLE
        state = self._states[order.symbol]
        if state == r.STATE_HALTED:
            return r.REASON_HALTED
        if state == r.STATE_CLOSED:
            return r.REASON_CLOSED
        if c.qty <= 0:
            return r.REASON_BAD_QUANTITY
        if c.qty > self.spec.max_order_lots[order.symbol]:
            return r.REASON_QTY_ABOVE_MAX
        if not self.spec.band_low[order.symbol] <= c.price <= self.spec.band_high[order.symbol]:
            return r.REASON_OUTSIDE_BAND
        return r.REASON_NONE

    def _replace(self, c: Command) -> None:
        order = self._live.get(c.order_id)
        reason = self._replace_reject_reason(c, order)
        if reason != r.REASON_NONE:
            self._reject_order_command(r.EV_REPLACE_REJECTED, reason)
            return
        new_leaves = c.qty if c.flags & r.CMD_FLAG_QTY_IS_LEAVES else c.qty - order.cum
        old_leaves = order.leaves
        if new_leaves <= 0:  # the order finishes
            self._take_off(order)
            order.leaves = 0
            order.qty = order.cum
            self._emit_for(r.EV_REPLACED, order, price=c.price, qty=order.cum, leaves=0, cum=order.cum,
                           aux=old_leaves, flags=r.EV_FLAG_REMOVED)
        elif c.price == order.price and new_leaves <= old_leaves:  # keeps its place
            order.leaves = new_leaves
            order.qty = order.cum + new_leaves
            flags = r.EV_FLAG_REDUCED if new_leaves < old_leaves else 0
            self._emit_for(r.EV_REPLACED, order, price=order.price, qty=order.qty, leaves=new_leaves,
                           cum=order.cum, aux=old_leaves, flags=flags)
        else:  # loses priority: off its level, then in again as an aggressor
            self._take_off(order)
            order.price = c.price
            order.leaves = new_leaves
            order.qty = order.cum + new_leaves
            self._emit_for(r.EV_REPLACED, order, price=order.price, qty=order.qty, leaves=new_leaves,
                           cum=order.cum, aux=old_leaves, flags=r.EV_FLAG_REMOVED)
            if order.post_only and self._would_cross(order):
                self._cancel(order, r.CAUSE_POST_ONLY)
            else:
                self._execute(order)
        self._run_triggers(order.symbol)

    # ------------------------------------------------------------------ MASS_CANCEL / SET_STATE
    def _orders_in_mass_cancel_order(self, symbol: int) -> list[Order]:
        """Live orders of ``symbol``: bids best first, asks best first, then stops by arrival."""
        bids, asks = self._books[symbol]
        return [*bids.in_priority(), *asks.in_priority(), *self._stops[symbol].orders.values()]

    def _mass_cancel(self, c: Command) -> None:
        n = self.spec.n_instruments
        if c.symbol != r.ALL_SYMBOLS and c.symbol >= n:
            self._reject(r.REASON_UNKNOWN_INSTRUMENT)
            return
        if c.side > r.SIDE_BOTH:
            self._reject(r.REASON_BAD_SIDE)
            return
        symbols = range(n) if c.symbol == r.ALL_SYMBOLS else (c.symbol,)
        cancelled = 0
        for symbol in symbols:
            for order in self._orders_in_mass_cancel_order(symbol):
                if ((c.side == r.SIDE_BOTH or order.side == c.side)
                        and (c.account == r.ALL_ACCOUNTS or order.account == c.account)
                        and (c.aux == -1 or order.session == c.aux)):
                    self._cancel(order, r.CAUSE_MASS)
                    cancelled += 1
        self._emit(r.EV_MASS_CANCEL_DONE, account=c.account, session=c.session, symbol=c.symbol,
                   side=c.side, aux=c.aux, qty=cancelled)

    def _set_state(self, c: Command) -> None:
        if c.symbol >= self.spec.n_instruments:
            self._reject(r.REASON_UNKNOWN_INSTRUMENT)
            return
        if c.aux not in (r.STATE_OPEN, r.STATE_HALTED, r.STATE_CLOSED):
            self._reject(r.REASON_BAD_STATE)
            return
        cancelled = 0
        if c.flags & r.CMD_FLAG_CANCEL_ALL:
            for order in self._orders_in_mass_cancel_order(c.symbol):
                self._cancel(order, r.CAUSE_HALT)
                cancelled += 1
        elif c.aux == r.STATE_CLOSED:
            for order in self._orders_in_mass_cancel_order(c.symbol):
                if order.tif == r.TIF_DAY:
                    self._cancel(order, r.CAUSE_EXPIRED)
                    cancelled += 1
        self._states[c.symbol] = c.aux
        self._emit(r.EV_STATE_CHANGED, account=c.account, session=c.session, symbol=c.symbol,
                   aux=c.aux, qty=cancelled)
