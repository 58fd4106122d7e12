"""Command handlers and the batch entry point of the matching engine.

``process_batch(state arrays..., commands, start, out, n_out) -> (status, next, n_out)``
processes commands from ``start`` while the output has room for the next command's
worst case (see :func:`worst_case`); the caller drains ``out`` and calls again.
"""

from __future__ import annotations

import numpy as np

from numbex.engine import jitcache  # noqa: F401  (must precede kernel definitions)
from numba import njit

from numbex.engine.book import (
    G_INSTRUMENTS,
    G_MAX_ORDERS,
    G_RESTING,
    G_STOP_FREE,
    G_STOPS,
    I_ASKS,
    I_BEST_ASK,
    I_BEST_BID,
    I_BIDS,
    I_HIGH,
    I_LEVEL_BASE,
    I_LOW,
    I_MAX_LOTS,
    I_STATE,
    I_STOP_HEAD,
    I_STOPS,
    index_find,
    index_home,
    index_insert,
    next_level_down,
    next_level_up,
    slot_alloc,
    stop_append,
)
from numbex.engine.prefetch import prefetch
from numbex.engine.kernel import (
    STATUS_DONE,
    STATUS_OUTPUT_FULL,
    _emit,
    _emit_resting,
    _emit_stop,
    _execute,
    _reject_new,
    _remove_resting,
    _remove_stop,
    _run_triggers,
    _validate_new,
    _would_cross,
)
from numbex.engine.records import (
    ALL_ACCOUNTS,
    ALL_SYMBOLS,
    CAUSE_EXPIRED,
    CAUSE_HALT,
    CAUSE_MASS,
    CAUSE_POST_ONLY,
    CAUSE_USER,
    CMD_FLAG_CANCEL_ALL,
    CMD_FLAG_POST_ONLY,
    CMD_FLAG_QTY_IS_LEAVES,
    EV_ACCEPTED,
    EV_CANCEL_REJECTED,
    EV_CANCELLED,
    EV_FLAG_ON_BOOK,
    EV_FLAG_POST_ONLY,
    EV_FLAG_REDUCED,
    EV_FLAG_REMOVED,
    EV_MASS_CANCEL_DONE,
    EV_REJECTED,
    EV_REPLACE_REJECTED,
    EV_REPLACED,
    EV_STATE_CHANGED,
    OP_CANCEL,
    OP_MASS_CANCEL,
    OP_NEW,
    OP_REPLACE,
    OP_SET_STATE,
    ORD_LIMIT,
    ORD_STOP,
    ORD_STOP_LIMIT,
    REASON_BAD_QUANTITY,
    REASON_BAD_SIDE,
    REASON_BAD_STATE,
    REASON_CLOSED,
    REASON_HALTED,
    REASON_NOT_OWNER,
    REASON_NOT_REPLACEABLE,
    REASON_OUTSIDE_BAND,
    REASON_QTY_ABOVE_MAX,
    REASON_UNKNOWN_INSTRUMENT,
    REASON_UNKNOWN_OP,
    REASON_UNKNOWN_ORDER,
    SIDE_BOTH,
    STATE_CLOSED,
    STATE_HALTED,
    TIF_DAY,
)


PREFETCH_INDEX_AHEAD = 8
PREFETCH_ORDER_AHEAD = 4


@njit(cache=True, _nrt=False)
def _new(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, stp, out, n,
         cmd, base):
    reason = _validate_new(index, pool, stops, inst, glob, cmd)
    if reason != 0:
        return _reject_new(out, n, cmd, base, EV_REJECTED, reason)
    symbol = np.int64(cmd.symbol)
    ord_type = cmd.ord_type
    post_flag = EV_FLAG_POST_ONLY if cmd["flags"] & CMD_FLAG_POST_ONLY else 0
    is_stop = ord_type == ORD_STOP or ord_type == ORD_STOP_LIMIT
    limit = cmd.price if (ord_type == ORD_LIMIT or ord_type == ORD_STOP_LIMIT) else 0
    n = _emit(out, n, cmd, base, EV_ACCEPTED, cmd.order_id, np.uint64(0), limit, cmd.qty,
              cmd.qty, 0, 0, 0, cmd.stop_price if is_stop else 0, cmd.account, np.uint32(0),
              cmd.session, np.uint32(0), cmd.symbol, cmd.side, 0, ord_type, cmd.tif, post_flag)
    if is_stop:
        slot = slot_alloc(stops, glob, G_STOP_FREE)
        stop = stops[slot]
        stop.order_id = cmd.order_id
        stop.qty = cmd.qty
        stop.price = limit
        stop.stop_price = cmd.stop_price
        stop.account = cmd.account
        stop.session = cmd.session
        stop.symbol = cmd.symbol
        stop.side = cmd.side
        stop.ord_type = ord_type
        stop.tif = cmd.tif
        stop["flags"] = cmd["flags"]
        stop_append(stops, inst, slot)
        index_insert(index, glob, cmd.order_id, glob[G_MAX_ORDERS] + slot)
        glob[G_STOPS] += 1
        return _run_triggers(pool, stops, index, inst, level_head, level_tail, level_qty, bits,
                             glob, stp, out, n, cmd, base, symbol)
    if cmd["flags"] & CMD_FLAG_POST_ONLY and _would_cross(inst, symbol, cmd.side, limit):
        return _emit(out, n, cmd, base, EV_CANCELLED, cmd.order_id, np.uint64(0), limit, cmd.qty,
                     0, 0, 0, 0, 0, cmd.account, np.uint32(0), cmd.session, np.uint32(0),
                     cmd.symbol, cmd.side, CAUSE_POST_ONLY, ord_type, cmd.tif, post_flag)
    n, traded = _execute(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                         stp, out, n, cmd, base, cmd.order_id, cmd.side, ord_type, cmd.tif,
                         cmd["flags"], limit, cmd.qty, cmd.qty, 0, cmd.account, cmd.session, symbol)
    if traded and inst[symbol, I_STOP_HEAD] >= 0:
        n = _run_triggers(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                          stp, out, n, cmd, base, symbol)
    return n


@njit(cache=True, _nrt=False)
def _cancel(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, out, n, cmd,
            base):
    value = index_find(index, pool, stops, glob, cmd.order_id) if cmd.order_id != 0 else -1
    if value < 0:
        return _reject_new(out, n, cmd, base, EV_CANCEL_REJECTED, REASON_UNKNOWN_ORDER)
    max_orders = glob[G_MAX_ORDERS]
    if value < max_orders:
        if pool[value].account != cmd.account:
            return _reject_new(out, n, cmd, base, EV_CANCEL_REJECTED, REASON_NOT_OWNER)
        n = _emit_resting(out, n, cmd, base, pool, value, EV_CANCELLED, pool[value].leaves, 0, 0,
                          CAUSE_USER, EV_FLAG_ON_BOOK)
        _remove_resting(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                        value)
        return n
    slot = value - max_orders
    if stops[slot].account != cmd.account:
        return _reject_new(out, n, cmd, base, EV_CANCEL_REJECTED, REASON_NOT_OWNER)
    n = _emit_stop(out, n, cmd, base, stops, slot, EV_CANCELLED, CAUSE_USER)
    _remove_stop(pool, stops, index, inst, glob, slot)
    return n


@njit(cache=True, _nrt=False)
def _replace(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, stp, out, n,
             cmd, base):
    value = index_find(index, pool, stops, glob, cmd.order_id) if cmd.order_id != 0 else -1
    if value < 0:
        return _reject_new(out, n, cmd, base, EV_REPLACE_REJECTED, REASON_UNKNOWN_ORDER)
    max_orders = glob[G_MAX_ORDERS]
    owner = pool[value].account if value < max_orders else stops[value - max_orders].account
    if owner != cmd.account:
        return _reject_new(out, n, cmd, base, EV_REPLACE_REJECTED, REASON_NOT_OWNER)
    if value >= max_orders:
        return _reject_new(out, n, cmd, base, EV_REPLACE_REJECTED, REASON_NOT_REPLACEABLE)
    slot = value
    symbol = np.int64(pool[slot].symbol)
    state = inst[symbol, I_STATE]
    reason = 0
    if state == STATE_HALTED:
        reason = REASON_HALTED
    elif state == STATE_CLOSED:
        reason = REASON_CLOSED
    elif cmd.qty <= 0:
        reason = REASON_BAD_QUANTITY
    elif cmd.qty > inst[symbol, I_MAX_LOTS]:
        reason = REASON_QTY_ABOVE_MAX
    elif cmd.price < inst[symbol, I_LOW] or cmd.price > inst[symbol, I_HIGH]:
        reason = REASON_OUTSIDE_BAND
    if reason != 0:
        return _reject_new(out, n, cmd, base, EV_REPLACE_REJECTED, reason)
    order = pool[slot]
    old_leaves = order.leaves
    cum = order.cum
    if cmd["flags"] & CMD_FLAG_QTY_IS_LEAVES:
        new_leaves = cmd.qty
    else:
        new_leaves = cmd.qty - cum
    post_flag = EV_FLAG_POST_ONLY if order["flags"] & CMD_FLAG_POST_ONLY else 0
    if new_leaves <= 0:
        n = _emit_resting(out, n, cmd, base, pool, slot, EV_REPLACED, cum, 0, old_leaves, 0,
                          EV_FLAG_REMOVED)
        out[n - 1].price = cmd.price
        _remove_resting(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                        slot)
        return n
    if cmd.price == order.price and new_leaves <= old_leaves:
        level = inst[symbol, I_LEVEL_BASE] + order.price - inst[symbol, I_LOW]
        level_qty[level] -= old_leaves - new_leaves
        order.leaves = new_leaves
        flags = EV_FLAG_REDUCED if new_leaves < old_leaves else 0
        return _emit_resting(out, n, cmd, base, pool, slot, EV_REPLACED, cum + new_leaves,
                             new_leaves, old_leaves, 0, flags)
    order_id = order.order_id
    side = order.side
    ord_type = order.ord_type
    tif = order.tif
    order_flags = order["flags"]
    account = order.account
    session = order.session
    _remove_resting(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, slot)
    price = cmd.price
    n = _emit(out, n, cmd, base, EV_REPLACED, order_id, np.uint64(0), price, cum + new_leaves,
              new_leaves, cum, 0, 0, old_leaves, account, np.uint32(0), session, np.uint32(0),
              symbol, side, 0, ord_type, tif, EV_FLAG_REMOVED | post_flag)
    if order_flags & CMD_FLAG_POST_ONLY and _would_cross(inst, symbol, side, price):
        return _emit(out, n, cmd, base, EV_CANCELLED, order_id, np.uint64(0), price, new_leaves,
                     0, cum, 0, 0, 0, account, np.uint32(0), session, np.uint32(0), symbol, side,
                     CAUSE_POST_ONLY, ord_type, tif, post_flag)
    n, traded = _execute(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                         stp, out, n, cmd, base, order_id, side, ord_type, tif, order_flags,
                         price, cum + new_leaves, new_leaves, cum, account, session, symbol)
    if traded and inst[symbol, I_STOP_HEAD] >= 0:
        n = _run_triggers(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                          stp, out, n, cmd, base, symbol)
    return n


@njit(cache=True, _nrt=False)
def _cancel_where(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, out, n,
                  cmd, base, symbol, side, account, session, day_only, cause):
    """Cancel matching orders of ``symbol``: bids best first, asks best first, then stops.

    Filters: side (SIDE_BOTH any), account (ALL_ACCOUNTS any), session (-1 any),
    ``day_only`` (tif DAY only).  Returns ``(n, count)``.
    """
    count = 0
    level_base = inst[symbol, I_LEVEL_BASE] - inst[symbol, I_LOW]
    for book_side in range(2):
        if side != SIDE_BOTH and side != book_side:
            continue
        price = inst[symbol, I_BEST_BID] if book_side == 0 else inst[symbol, I_BEST_ASK]
        while price >= 0:
            slot = level_head[level_base + price]
            while slot >= 0:
                following = pool[slot].next
                order = pool[slot]
                if ((account == ALL_ACCOUNTS or order.account == account)
                        and (session == -1 or np.int64(order.session) == session)
                        and (not day_only or order.tif == TIF_DAY)):
                    n = _emit_resting(out, n, cmd, base, pool, slot, EV_CANCELLED, order.leaves,
                                      0, 0, cause, EV_FLAG_ON_BOOK)
                    _remove_resting(pool, stops, index, inst, level_head, level_tail, level_qty,
                                    bits, glob, slot)
                    count += 1
                slot = following
            if book_side == 0:
                price = next_level_down(bits, inst, symbol, price)
            else:
                price = next_level_up(bits, inst, symbol, price)
    slot = inst[symbol, I_STOP_HEAD]
    while slot >= 0:
        following = stops[slot].next
        stop = stops[slot]
        if ((side == SIDE_BOTH or stop.side == side)
                and (account == ALL_ACCOUNTS or stop.account == account)
                and (session == -1 or np.int64(stop.session) == session)
                and (not day_only or stop.tif == TIF_DAY)):
            n = _emit_stop(out, n, cmd, base, stops, slot, EV_CANCELLED, cause)
            _remove_stop(pool, stops, index, inst, glob, slot)
            count += 1
        slot = following
    return n, count


@njit(cache=True, _nrt=False)
def _mass_cancel(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, out, n,
                 cmd, base):
    symbol = np.int64(cmd.symbol)
    if symbol != ALL_SYMBOLS and symbol >= glob[G_INSTRUMENTS]:
        return _reject_new(out, n, cmd, base, EV_REJECTED, REASON_UNKNOWN_INSTRUMENT)
    if cmd.side > SIDE_BOTH:
        return _reject_new(out, n, cmd, base, EV_REJECTED, REASON_BAD_SIDE)
    total = 0
    first = 0 if symbol == ALL_SYMBOLS else symbol
    last = glob[G_INSTRUMENTS] if symbol == ALL_SYMBOLS else symbol + 1
    account = np.int64(cmd.account)
    for instrument in range(first, last):
        n, count = _cancel_where(pool, stops, index, inst, level_head, level_tail, level_qty, bits,
                                 glob, out, n, cmd, base, instrument, cmd.side, account, cmd.aux,
                                 False, CAUSE_MASS)
        total += count
    return _emit(out, n, cmd, base, EV_MASS_CANCEL_DONE, np.uint64(0), np.uint64(0), 0, total, 0,
                 0, 0, 0, cmd.aux, cmd.account, np.uint32(0), cmd.session, np.uint32(0),
                 cmd.symbol, cmd.side, 0, 0, 0, 0)


@njit(cache=True, _nrt=False)
def _set_state(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, out, n,
               cmd, base):
    symbol = np.int64(cmd.symbol)
    if symbol >= glob[G_INSTRUMENTS]:
        return _reject_new(out, n, cmd, base, EV_REJECTED, REASON_UNKNOWN_INSTRUMENT)
    state = cmd.aux
    if state < 0 or state > STATE_CLOSED:
        return _reject_new(out, n, cmd, base, EV_REJECTED, REASON_BAD_STATE)
    count = 0
    if cmd["flags"] & CMD_FLAG_CANCEL_ALL:
        n, count = _cancel_where(pool, stops, index, inst, level_head, level_tail, level_qty, bits,
                                 glob, out, n, cmd, base, symbol, SIDE_BOTH, ALL_ACCOUNTS, -1,
                                 False, CAUSE_HALT)
    elif state == STATE_CLOSED:
        n, count = _cancel_where(pool, stops, index, inst, level_head, level_tail, level_qty, bits,
                                 glob, out, n, cmd, base, symbol, SIDE_BOTH, ALL_ACCOUNTS, -1,
                                 True, CAUSE_EXPIRED)
    inst[symbol, I_STATE] = state
    return _emit(out, n, cmd, base, EV_STATE_CHANGED, np.uint64(0), np.uint64(0), 0, count, 0, 0,
                 0, 0, state, cmd.account, np.uint32(0), cmd.session, np.uint32(0), cmd.symbol,
                 0, 0, 0, 0, 0)


@njit(cache=True, _nrt=False)
def worst_case(inst, glob, cmd):
    """Upper bound on the events one command can produce (docs/SEMANTICS.md).

    A limit order that cannot cross makes at most ACCEPTED + BOOK_ADD (or one
    reject, or a post-only cancel); anything that may trade is bounded by the
    orders and stops of its instrument (each trade removes a resting order or ends
    an aggressor; each stop adds at most four events).
    """
    op = cmd.op
    symbol = np.int64(cmd.symbol)
    if op == OP_NEW or op == OP_REPLACE:
        if symbol >= glob[G_INSTRUMENTS]:
            return 4
        if op == OP_NEW and cmd.ord_type == ORD_LIMIT and not _would_cross(
            inst, symbol, cmd.side, cmd.price
        ):
            return 4
        return 2 * (inst[symbol, I_BIDS] + inst[symbol, I_ASKS]) + 6 * inst[symbol, I_STOPS] + 8
    if op == OP_MASS_CANCEL:
        return glob[G_RESTING] + glob[G_STOPS] + 2
    if op == OP_SET_STATE and symbol < glob[G_INSTRUMENTS]:
        return inst[symbol, I_BIDS] + inst[symbol, I_ASKS] + inst[symbol, I_STOPS] + 2
    return 2


@njit(cache=True, _nrt=False)
def process_one(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, stp,
                cmd, out, n):
    """Process one command whose worst case fits in ``out[n:]``; return the new ``n``."""
    base = n
    op = cmd.op
    if op == OP_NEW:
        return _new(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, stp,
                    out, n, cmd, base)
    if op == OP_CANCEL:
        return _cancel(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                       out, n, cmd, base)
    if op == OP_REPLACE:
        return _replace(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                        stp, out, n, cmd, base)
    if op == OP_MASS_CANCEL:
        return _mass_cancel(pool, stops, index, inst, level_head, level_tail, level_qty, bits,
                            glob, out, n, cmd, base)
    if op == OP_SET_STATE:
        return _set_state(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                          out, n, cmd, base)
    return _reject_new(out, n, cmd, base, EV_REJECTED, REASON_UNKNOWN_OP)


@njit(cache=True, nogil=True, _nrt=False)
def process_batch(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, stp,
                  commands, start, out, n_out):
    """Process ``commands[start:]`` appending events to ``out[n_out:]``.

    Returns ``(status, next_command, n_out)``; ``STATUS_OUTPUT_FULL`` means the
    output could not hold ``commands[next_command]``'s worst case: drain and call again.
    """
    n = n_out
    capacity = out.shape[0]
    total = commands.shape[0]
    max_orders = glob[G_MAX_ORDERS]
    for i in range(start, total):
        # Start the dependent loads of later commands: their index slot now, their
        # order record (found through the slot prefetched earlier) a few commands on.
        ahead = i + PREFETCH_INDEX_AHEAD
        if ahead < total:
            prefetch(index, index_home(commands[ahead].order_id, glob))
        ahead = i + PREFETCH_ORDER_AHEAD
        if ahead < total and commands[ahead].op != OP_NEW:
            value = index[index_home(commands[ahead].order_id, glob)]
            if 0 <= value < max_orders:
                prefetch(pool, value)
        cmd = commands[i]
        if n + worst_case(inst, glob, cmd) > capacity:
            return STATUS_OUTPUT_FULL, i, n
        n = process_one(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                        stp, cmd, out, n)
    return STATUS_DONE, commands.shape[0], n
