"""The matcher: command validation, matching, stop triggers and event generation.

``process_batch`` takes a batch of COMMAND records and appends EVENT records to a
preallocated output array; docs/SEMANTICS.md is the contract, field for field.
The price-time core it drives lives in :mod:`numbex.engine.book`.  Kernels read no
clock and allocate nothing: time and ids come from the sequenced commands.
"""

from __future__ import annotations

import numpy as np

from numbex.engine import jitcache  # noqa: F401  (must precede kernel definitions)
from numba import njit

from numbex.engine.book import (
    G_ACCOUNTS,
    G_FREE,
    G_INSTRUMENTS,
    G_MAX_ORDERS,
    G_MAX_STOPS,
    G_RESTING,
    G_STOP_FREE,
    G_STOPS,
    I_BEST_ASK,
    I_BEST_BID,
    I_HIGH,
    I_LAST,
    I_LEVEL_BASE,
    I_LOW,
    I_MAX_LOTS,
    I_STATE,
    I_STOP_HEAD,
    book_append,
    book_unlink,
    index_delete,
    index_find,
    index_insert,
    next_level_down,
    next_level_up,
    slot_alloc,
    slot_free,
    stop_unlink,
)
from numbex.engine.records import (
    CAUSE_BOOK_FULL,
    CAUSE_FOK,
    CAUSE_IOC,
    CAUSE_MARKET_REMAINDER,
    CAUSE_STP,
    CMD_FLAG_POST_ONLY,
    EV_BOOK_ADD,
    EV_CANCELLED,
    EV_FLAG_ON_BOOK,
    EV_FLAG_POST_ONLY,
    EV_REJECTED,
    EV_REPLACE_REJECTED,
    EV_STOP_TRIGGERED,
    EV_TRADE,
    EXEC_ID_SHIFT,
    ORD_LIMIT,
    ORD_MARKET,
    ORD_STOP,
    ORD_STOP_LIMIT,
    REASON_BAD_COMBINATION,
    REASON_BAD_ORDER_ID,
    REASON_BAD_ORDER_TYPE,
    REASON_BAD_QUANTITY,
    REASON_BAD_SIDE,
    REASON_BAD_TIF,
    REASON_BOOK_FULL,
    REASON_CLOSED,
    REASON_DUPLICATE_ORDER_ID,
    REASON_HALTED,
    REASON_OUTSIDE_BAND,
    REASON_QTY_ABOVE_MAX,
    REASON_STOPS_FULL,
    REASON_UNKNOWN_ACCOUNT,
    REASON_UNKNOWN_INSTRUMENT,
    STATE_CLOSED,
    STATE_HALTED,
    STP_CANCEL_AGGRESSOR,
    STP_CANCEL_RESTING,
    STP_OFF,
    TIF_FOK,
    TIF_IOC,
)

STATUS_DONE = 0  # every command processed
STATUS_OUTPUT_FULL = 1  # stopped early: the output cannot hold the next command's worst case


@njit(cache=True, _nrt=False)
def _emit(out, n, cmd, base, kind, order_id, other_id, price, qty, leaves, cum,
          other_leaves, other_cum, aux, account, other_account, session, other_session,
          symbol, side, reason, ord_type, tif, flags):
    event = out[n]
    event.seq = cmd.seq
    event.ts_ns = cmd.ts_ns
    event.exec_id = (cmd.seq << np.uint64(EXEC_ID_SHIFT)) | np.uint64(n - base)
    event.order_id = order_id
    event.other_id = other_id
    event.client_ref = (
        cmd.client_ref if (order_id == cmd.order_id or order_id == 0) else np.uint64(0)
    )
    event.price = price
    event.qty = qty
    event.leaves = leaves
    event.cum = cum
    event.other_leaves = other_leaves
    event.other_cum = other_cum
    event.aux = aux
    event.account = account
    event.other_account = other_account
    event.session = session
    event.other_session = other_session
    event.symbol = symbol
    event.kind = kind
    event.side = side
    event.reason = reason
    event.ord_type = ord_type
    event.tif = tif
    event["flags"] = flags
    return n + 1


@njit(cache=True, _nrt=False)
def _emit_resting(out, n, cmd, base, pool, slot, kind, qty, leaves, aux, reason, flags):
    """An event about resting order ``slot`` carrying its own order fields."""
    order = pool[slot]
    return _emit(out, n, cmd, base, kind, order.order_id, np.uint64(0), order.price, qty,
                 leaves, order.cum, 0, 0, aux, order.account, np.uint32(0), order.session,
                 np.uint32(0), order.symbol, order.side, reason, order.ord_type, order.tif,
                 flags | (EV_FLAG_POST_ONLY if order["flags"] & CMD_FLAG_POST_ONLY else 0))


@njit(cache=True, _nrt=False)
def _emit_stop(out, n, cmd, base, stops, slot, kind, reason):
    """CANCELLED or STOP_TRIGGERED for stop ``slot``."""
    stop = stops[slot]
    if kind == EV_CANCELLED:
        qty, leaves, aux = stop.qty, 0, stop.stop_price
    else:
        qty, leaves, aux = stop.qty, stop.qty, stop.stop_price
    return _emit(out, n, cmd, base, kind, stop.order_id, np.uint64(0), stop.price, qty, leaves,
                 0, 0, 0, aux, stop.account, np.uint32(0), stop.session, np.uint32(0),
                 stop.symbol, stop.side, reason, stop.ord_type, stop.tif, 0)


@njit(cache=True, _nrt=False)
def _remove_resting(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, slot):
    book_unlink(pool, inst, level_head, level_tail, level_qty, bits, slot)
    index_delete(index, pool, stops, glob, pool[slot].order_id)
    slot_free(pool, glob, G_FREE, slot)
    glob[G_RESTING] -= 1


@njit(cache=True, _nrt=False)
def _remove_stop(pool, stops, index, inst, glob, slot):
    stop_unlink(stops, inst, slot)
    index_delete(index, pool, stops, glob, stops[slot].order_id)
    slot_free(stops, glob, G_STOP_FREE, slot)
    glob[G_STOPS] -= 1


@njit(cache=True, _nrt=False)
def _fok_available(pool, inst, level_head, level_qty, bits, stp, symbol, side, limit, account, want):
    """Lots the aggressor could take at acceptable prices, stopping once ``want`` is met."""
    mode = stp[account]
    total = 0
    if side == 0:
        price = inst[symbol, I_BEST_ASK]
    else:
        price = inst[symbol, I_BEST_BID]
    base = inst[symbol, I_LEVEL_BASE] - inst[symbol, I_LOW]
    while price >= 0 and total < want:
        if (side == 0 and price > limit) or (side == 1 and price < limit):
            break
        level = base + price
        if mode == STP_OFF:
            total += level_qty[level]
        else:
            slot = level_head[level]
            while slot >= 0:
                if pool[slot].account == account:
                    if mode != STP_CANCEL_RESTING:
                        return total
                else:
                    total += pool[slot].leaves
                slot = pool[slot].next
        if side == 0:
            price = next_level_up(bits, inst, symbol, price)
        else:
            price = next_level_down(bits, inst, symbol, price)
    return total


@njit(cache=True, _nrt=False)
def _execute(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, stp,
             out, n, cmd, base, order_id, side, ord_type, tif, flags, price, qty, leaves, cum,
             account, session, symbol):
    """Match an arriving order, then rest, cancel or kill what is left.

    Returns ``(n, traded)``.  ``price`` is the order's limit (0 for market kinds).
    """
    low = inst[symbol, I_LOW]
    if ord_type == ORD_MARKET or ord_type == ORD_STOP:
        limit = inst[symbol, I_HIGH] if side == 0 else low
    else:
        limit = price
    post_flag = EV_FLAG_POST_ONLY if flags & CMD_FLAG_POST_ONLY else 0
    if tif == TIF_FOK:
        available = _fok_available(pool, inst, level_head, level_qty, bits, stp, symbol, side,
                                   limit, account, leaves)
        if available < leaves:
            n = _emit(out, n, cmd, base, EV_CANCELLED, order_id, np.uint64(0), price, leaves, 0,
                      cum, 0, 0, 0, account, np.uint32(0), session, np.uint32(0), symbol, side,
                      CAUSE_FOK, ord_type, tif, post_flag)
            return n, False
    mode = stp[account]
    level_base = inst[symbol, I_LEVEL_BASE] - low
    traded = False
    stp_stop = False
    while leaves > 0:
        if side == 0:
            best = inst[symbol, I_BEST_ASK]
            if best < 0 or best > limit:
                break
        else:
            best = inst[symbol, I_BEST_BID]
            if best < 0 or best < limit:
                break
        level = level_base + best
        resting = level_head[level]
        if mode != STP_OFF and pool[resting].account == account:
            if mode == STP_CANCEL_AGGRESSOR:
                stp_stop = True
                break
            n = _emit_resting(out, n, cmd, base, pool, resting, EV_CANCELLED,
                              pool[resting].leaves, 0, 0, CAUSE_STP, EV_FLAG_ON_BOOK)
            _remove_resting(pool, stops, index, inst, level_head, level_tail, level_qty, bits,
                            glob, resting)
            if mode == STP_CANCEL_RESTING:
                continue
            stp_stop = True
            break
        fill = min(leaves, pool[resting].leaves)
        leaves -= fill
        cum += fill
        resting_leaves = pool[resting].leaves - fill
        pool[resting].leaves = resting_leaves
        pool[resting].cum += fill
        level_qty[level] -= fill
        inst[symbol, I_LAST] = best
        traded = True
        n = _emit(out, n, cmd, base, EV_TRADE, order_id, pool[resting].order_id, best, fill,
                  leaves, cum, resting_leaves, pool[resting].cum, 0, account,
                  pool[resting].account, session, pool[resting].session, symbol, side, 0,
                  ord_type, tif, post_flag)
        if resting_leaves == 0:
            _remove_resting(pool, stops, index, inst, level_head, level_tail, level_qty, bits,
                            glob, resting)
    if leaves == 0:
        return n, traded
    if stp_stop:
        cause = CAUSE_STP
    elif ord_type == ORD_MARKET or ord_type == ORD_STOP:
        cause = CAUSE_FOK if tif == TIF_FOK else CAUSE_MARKET_REMAINDER
    elif tif == TIF_IOC:
        cause = CAUSE_IOC
    elif tif == TIF_FOK:
        cause = CAUSE_FOK
    else:
        cause = 0
    if cause != 0:
        n = _emit(out, n, cmd, base, EV_CANCELLED, order_id, np.uint64(0), price, leaves, 0,
                  cum, 0, 0, 0, account, np.uint32(0), session, np.uint32(0), symbol, side,
                  cause, ord_type, tif, post_flag)
        return n, traded
    slot = slot_alloc(pool, glob, G_FREE)
    order = pool[slot]
    order.order_id = order_id
    order.leaves = leaves
    order.cum = cum
    order.price = price
    order.account = account
    order.session = session
    order.symbol = symbol
    order.side = side
    order.ord_type = ord_type
    order.tif = tif
    order["flags"] = flags
    book_append(pool, inst, level_head, level_tail, level_qty, bits, slot)
    index_insert(index, glob, order_id, slot)
    glob[G_RESTING] += 1
    n = _emit(out, n, cmd, base, EV_BOOK_ADD, order_id, np.uint64(0), price, leaves, leaves, cum,
              0, 0, 0, account, np.uint32(0), session, np.uint32(0), symbol, side, 0, ord_type,
              tif, post_flag)
    return n, traded


@njit(cache=True, _nrt=False)
def _would_cross(inst, symbol, side, price):
    if side == 0:
        best = inst[symbol, I_BEST_ASK]
        return best >= 0 and best <= price
    best = inst[symbol, I_BEST_BID]
    return best >= 0 and best >= price


@njit(cache=True, _nrt=False)
def _run_triggers(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob, stp,
                  out, n, cmd, base, symbol):
    """Trigger stops of ``symbol`` one at a time, first in arrival order, until none holds."""
    while inst[symbol, I_LAST] > 0:
        last = inst[symbol, I_LAST]
        slot = inst[symbol, I_STOP_HEAD]
        while slot >= 0:
            stop = stops[slot]
            if (stop.side == 0 and last >= stop.stop_price) or (
                stop.side == 1 and last <= stop.stop_price
            ):
                break
            slot = stop.next
        if slot < 0:
            return n
        n = _emit_stop(out, n, cmd, base, stops, slot, EV_STOP_TRIGGERED, 0)
        stop = stops[slot]
        order_id = stop.order_id
        side = stop.side
        ord_type = stop.ord_type
        tif = stop.tif
        flags = stop["flags"]
        price = stop.price
        qty = stop.qty
        account = stop.account
        session = stop.session
        _remove_stop(pool, stops, index, inst, glob, slot)
        if glob[G_RESTING] >= glob[G_MAX_ORDERS]:
            n = _emit(out, n, cmd, base, EV_CANCELLED, order_id, np.uint64(0), price, qty, 0, 0,
                      0, 0, 0, account, np.uint32(0), session, np.uint32(0), symbol, side,
                      CAUSE_BOOK_FULL, ord_type, tif, 0)
            continue
        n, _ = _execute(pool, stops, index, inst, level_head, level_tail, level_qty, bits, glob,
                        stp, out, n, cmd, base, order_id, side, ord_type, tif, flags, price, qty,
                        qty, 0, account, session, symbol)
    return n


@njit(cache=True, _nrt=False)
def _reject_new(out, n, cmd, base, kind, reason):
    if kind == EV_REJECTED:
        return _emit(out, n, cmd, base, kind, cmd.order_id, np.uint64(0), cmd.price, cmd.qty, 0,
                     0, 0, 0, cmd.stop_price, cmd.account, np.uint32(0), cmd.session,
                     np.uint32(0), cmd.symbol, cmd.side, reason, cmd.ord_type, cmd.tif, 0)
    price = cmd.price if kind == EV_REPLACE_REJECTED else 0
    qty = cmd.qty if kind == EV_REPLACE_REJECTED else 0
    return _emit(out, n, cmd, base, kind, cmd.order_id, np.uint64(0), price, qty, 0, 0, 0, 0, 0,
                 cmd.account, np.uint32(0), cmd.session, np.uint32(0), cmd.symbol, cmd.side,
                 reason, 0, 0, 0)


@njit(cache=True, _nrt=False)
def _validate_new(index, pool, stops, inst, glob, cmd):
    """Reject reason for a NEW command, 0 when it is acceptable."""
    if cmd.order_id == 0:
        return REASON_BAD_ORDER_ID
    symbol = np.int64(cmd.symbol)
    if symbol >= glob[G_INSTRUMENTS]:
        return REASON_UNKNOWN_INSTRUMENT
    if np.int64(cmd.account) >= glob[G_ACCOUNTS]:
        return REASON_UNKNOWN_ACCOUNT
    if index_find(index, pool, stops, glob, cmd.order_id) >= 0:
        return REASON_DUPLICATE_ORDER_ID
    if cmd.side > 1:
        return REASON_BAD_SIDE
    if cmd.ord_type > 3:
        return REASON_BAD_ORDER_TYPE
    if cmd.tif > 3:
        return REASON_BAD_TIF
    state = inst[symbol, I_STATE]
    if state == STATE_HALTED:
        return REASON_HALTED
    if state == STATE_CLOSED:
        return REASON_CLOSED
    if cmd.qty <= 0:
        return REASON_BAD_QUANTITY
    if cmd.qty > inst[symbol, I_MAX_LOTS]:
        return REASON_QTY_ABOVE_MAX
    low = inst[symbol, I_LOW]
    high = inst[symbol, I_HIGH]
    is_stop = cmd.ord_type == ORD_STOP or cmd.ord_type == ORD_STOP_LIMIT
    if cmd.ord_type == ORD_LIMIT or cmd.ord_type == ORD_STOP_LIMIT:
        if cmd.price < low or cmd.price > high:
            return REASON_OUTSIDE_BAND
    if is_stop and (cmd.stop_price < low or cmd.stop_price > high):
        return REASON_OUTSIDE_BAND
    if cmd["flags"] & CMD_FLAG_POST_ONLY and (
        cmd.ord_type != ORD_LIMIT or cmd.tif == TIF_IOC or cmd.tif == TIF_FOK
    ):
        return REASON_BAD_COMBINATION
    if is_stop:
        if glob[G_STOPS] >= glob[G_MAX_STOPS]:
            return REASON_STOPS_FULL
    elif glob[G_RESTING] >= glob[G_MAX_ORDERS]:
        return REASON_BOOK_FULL
    return 0
