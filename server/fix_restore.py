"""Order state of a new gateway run, rebuilt from the ExecutionReports in the session stores.

The engine knows orders only by number; their ClOrdIDs, quantities and average prices
live in the gateway, and a gateway restart would lose them.  Every ExecutionReport the
gateway sent is in its session's durable store, so at start :func:`restore_orders`
replays each session's stored reports (``37`` OrderID = the engine's order id) and
rebuilds an :class:`~numbex.server.fix_order_state.OrderState` for every order whose
last report leaves it open (OrdStatus 0 or 1).  Events the engine sends for those
orders then become ExecutionReports as in the run that took them: fills of an order
of a session without cancel-on-disconnect, and the cancels of
:meth:`~numbex.server.fix_orders.OrderEntry.cancel_stale_orders`, which reach the
client (stored, resent after its next Logon) instead of vanishing.

Finished orders come back too, as the session's recent orders (their ClOrdIDs stay
duplicates).  Events the previous run read but had not committed (its replies were
not all durable yet, see ``RingLink.commit``) are read again by the new run; those a
session's store already shows reported (engine exec id up to the last ExecID(17) in
the store) are skipped for that session, the others are reported now.  What cannot
come back: a session whose store was reset (a Logon with ResetSeqNumFlag) has no
history to rebuild from.
"""

from __future__ import annotations

import logging

from numbex.server.fix_order_state import (
    ORD_TYPE_FROM_FIX, SIDE_FROM_FIX, STATUS_FILLED, STATUS_NEW, STATUS_PARTIAL, TIF_FROM_FIX, OrderState,
    SessionContext,
)
from numbex.server.fix_reports import EXEC_ORDER_STATUS, EXEC_REJECTED, EXEC_TRADE
from numbex.server.fix_units import RequestRefused

log = logging.getLogger("numbex.gateway")

OPEN_STATUSES = (STATUS_NEW, STATUS_PARTIAL)


def report_fields(body: bytes) -> dict[int, bytes]:
    """Tag -> value of a stored ExecutionReport body (no repeating groups in them)."""
    fields = {}
    for part in body.split(b"\x01"):
        tag, _, value = part.partition(b"=")
        if tag.isdigit():
            fields[int(tag)] = value
    return fields


def restore_orders(entry, open_store) -> int:
    """Rebuild ``entry``'s orders from every session's stored ExecutionReports.

    Parameters
    ----------
    entry : numbex.server.fix_orders.OrderEntry
        Its ``live`` map and session contexts are filled in.
    open_store : callable
        ``comp_id -> MessageStore``.

    Returns
    -------
    int
        Open orders restored (in ``entry.live``).
    """
    restored = 0
    reported: dict[int, int] = {}
    for context in entry.contexts.values():
        store = open_store(context.comp_id)
        orders, last_exec = _replay(entry, context, store)
        if last_exec:
            reported[context.session_field] = last_exec
        for order in orders:             # in order of their last report: the oldest finished first
            context.add_order(order)
            for alias in order.aliases:  # every ClOrdID the order had (new, replaces, cancel)
                context.orders[alias] = order
            if order.live:
                entry.live[order.order_id] = order
                restored += 1
            else:
                order.live = True        # finish() files it among the recent orders
                context.finish(order)
    entry.skip_reported(reported)
    if restored:
        log.info("restored %d open orders from the session stores", restored)
    return restored


def _replay(entry, context: SessionContext, store) -> tuple[list[OrderState], int]:
    """The session's orders, in order of their last report, and the last engine exec id reported."""
    orders: dict[int, OrderState] = {}
    last_exec = 0
    for message in store.sent_messages(1, store.next_sender_seq_num - 1):
        if message.msg_type != b"8":
            continue
        fields = report_fields(message.body)
        exec_digits = fields.get(17, b"").rstrip(b"BS")   # <exec id>, or <exec id>B/S for a fill
        if exec_digits.isdigit():
            last_exec = max(last_exec, int(exec_digits))
        exec_type = fields.get(150)
        order_id_text = fields.get(37, b"")
        if exec_type == EXEC_ORDER_STATUS or not order_id_text.isdigit():
            continue
        order_id = int(order_id_text)
        if exec_type == EXEC_REJECTED and fields.get(17, b"").startswith(b"G"):
            orders.pop(order_id, None)   # refused by the gateway, never reached the engine: its
            continue                     # ClOrdID is free again, as in the run that refused it
        try:
            order = orders.get(order_id) or _new_state(entry, context, order_id, fields)
            if order is None:
                continue
            _apply(order, fields, exec_type)
        except (KeyError, ValueError, RequestRefused) as error:
            log.warning("%s: stored ExecutionReport %d not understood (%s); skipped", context.comp_id,
                        message.seq_num, error)
            continue
        orders.pop(order_id, None)       # (re)inserted last: dict order = order of last reports
        orders[order_id] = order
    return list(orders.values()), last_exec


def _new_state(entry, context: SessionContext, order_id: int, fields: dict[int, bytes]) -> OrderState | None:
    symbol = entry.symbols.get(fields.get(55, b""))
    if symbol is None:
        return None
    units = entry.units[symbol]
    ord_type = ORD_TYPE_FROM_FIX[fields[40]]
    price = units.price_ticks(fields[44]) if 44 in fields else 0
    stop_price = units.price_ticks(fields[99]) if 99 in fields else 0
    order = OrderState(order_id, context, fields[11], symbol, units, SIDE_FROM_FIX[fields[54]], ord_type,
                       TIF_FROM_FIX[fields[59]], fields.get(18) == b"6", units.quantity_lots(fields[38]),
                       price, stop_price)
    order.accepted = True
    return order


def _apply(order: OrderState, fields: dict[int, bytes], exec_type: bytes) -> None:
    """One more report of ``order``: its ClOrdIDs, size, price, executions and status now."""
    units = order.units
    cl_ord_id = fields[11]
    if cl_ord_id != order.cl_ord_id:
        order.orig_cl_ord_id = order.cl_ord_id
        order.cl_ord_id = cl_ord_id
    if cl_ord_id not in order.aliases:
        order.aliases.append(cl_ord_id)
    order.qty = units.quantity_lots(fields[38])
    if 44 in fields:
        order.price = units.price_ticks(fields[44])
    order.static = None
    order.cum = _lots(units, fields.get(14, b"0"))
    order.leaves = _lots(units, fields.get(151, b"0"))
    if exec_type == EXEC_TRADE:
        order.notional += units.price_ticks(fields[31]) * units.quantity_lots(fields[32])
    status = fields[39]
    if status in OPEN_STATUSES and order.leaves > 0:
        order.final_status = None
        order.live = True
    else:
        order.final_status = None if status == STATUS_FILLED else status
        order.live = False


def _lots(units, text: bytes) -> int:
    """Lots of a stored CumQty/LeavesQty (0 is a valid value here, unlike an OrderQty)."""
    if text == b"0":
        return 0
    return units.quantity_lots(text)


__all__ = ["restore_orders", "report_fields"]
