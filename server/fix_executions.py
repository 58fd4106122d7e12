"""Engine events -> FIX replies: the second half of :class:`numbex.server.fix_orders.OrderEntry`.

Events are read straight out of the polled EVENT array with one
``struct.iter_unpack`` (plain ints, no numpy scalars).  What each kind becomes:

=====================  ======================================================
ACCEPTED               ExecutionReport ExecType 0 (New), OrdStatus 0
REJECTED               NEW: ExecutionReport ExecType 8 with OrdRejReason and
                       Text; MASS_CANCEL: OrderMassCancelReport rejected
TRADE                  ExecutionReport ExecType F for each side of this
                       gateway (aggressor and resting), ExecID ``<exec_id>B``
                       or ``<exec_id>S`` by the reported order's side
CANCELLED              ExecType 4 (C when the cause is EXPIRED), OrdStatus 4/C
REPLACED               ExecType 5, OrdStatus 0/1/2 (2 when the new quantity
                       leaves nothing open)
CANCEL_/REPLACE_       OrderCancelReject with CxlRejResponseTo 1 or 2
REJECTED
MASS_CANCEL_DONE       OrderMassCancelReport (none for cancel-on-disconnect)
STOP_TRIGGERED,        nothing: FIX 4.4 has no ExecType for a triggered stop;
BOOK_ADD, STATE_...    the order stays New until it trades
=====================  ======================================================

An event carrying a ``client_ref`` answers the command the gateway sent with
that token; the first such event takes the request out of the pending map
(every command's first event with its token is its answer), later ones of the
same command are handled through the order they name.
"""

from __future__ import annotations

import logging
import struct

from numbex.engine import records as r
from numbex.server import fix_reports as reports
from numbex.server.fix_order_state import (
    REQUEST_CANCEL, REQUEST_MASS_CANCEL, REQUEST_NEW, REQUEST_REPLACE, STATUS_CANCELED, STATUS_EXPIRED, STATUS_REJECTED,
    OrderState,
)

log = logging.getLogger("numbex.gateway")

#: The EVENT dtype as a struct (a unit test pins it against records.EVENT).
EVENT_STRUCT = struct.Struct("<QqQQQQqqqqqqqIIIHBBBBBBI")
GATEWAY_SHIFT = 16
SIDE_SUFFIX = {r.SIDE_BUY: b"B", r.SIDE_SELL: b"S"}


class ExecutionHandlers:
    """Mixin of :class:`OrderEntry` turning EVENT records into replies in session outboxes."""

    def _on_events(self, data) -> None:
        gateway = self.gateway_index
        live = self.live
        pending = self._pending
        for event in EVENT_STRUCT.iter_unpack(data):
            (_seq, ts_ns, exec_id, order_id, other_id, client_ref, price, qty, leaves, cum, other_leaves,
             other_cum, _aux, _account, _other_account, session, symbol, kind, side, reason, _ord_type,
             _tif, _flags, other_session) = event
            self.events_seen += 1
            try:
                reported = self.reported     # None except just after a restart (skip_reported)
                if reported is not None:
                    if exec_id > self.reported_max:
                        self.reported = None
                    elif kind == r.EV_TRADE:
                        if exec_id <= reported.get(session, 0):
                            session = -1     # this side's fill is in its store already
                        if exec_id <= reported.get(other_session, 0):
                            other_session = -1
                    elif exec_id <= reported.get(session, 0):
                        continue
                if kind == r.EV_TRADE:
                    if session >> GATEWAY_SHIFT == gateway:
                        order = live.get(order_id)
                        if order is not None:
                            self._fill(order, exec_id, ts_ns, price, qty, leaves, cum)
                        elif leaves > 0:
                            self.cancel_orphan(order_id, session, symbol, side)
                    if other_session >> GATEWAY_SHIFT == gateway:
                        order = live.get(other_id)
                        if order is not None:
                            self._fill(order, exec_id, ts_ns, price, qty, other_leaves, other_cum)
                        elif other_leaves > 0:
                            self.cancel_orphan(other_id, other_session, symbol, side ^ 1)
                    continue
                request = pending.pop(client_ref, None) if client_ref else None
                if kind == r.EV_ACCEPTED:
                    order = live.get(order_id)
                    if order is not None:
                        order.accepted = True
                        self._report(order, b"%d" % exec_id, reports.EXEC_NEW, ts_ns)
                    elif session >> GATEWAY_SHIFT == gateway and request is None:
                        self.cancel_orphan(order_id, session, symbol, side)
                elif kind == r.EV_CANCELLED:
                    order = live.get(order_id)
                    if order is not None:
                        self._cancelled(order, request, exec_id, ts_ns, reason, cum)
                elif kind == r.EV_REPLACED:
                    order = live.get(order_id)
                    if order is not None:
                        self._replaced(order, request, exec_id, ts_ns, price, qty, leaves, cum)
                elif kind == r.EV_REJECTED:
                    if request is not None:
                        self._rejected(request, exec_id, ts_ns, reason)
                elif kind == r.EV_CANCEL_REJECTED or kind == r.EV_REPLACE_REJECTED:
                    if request is not None and not request.internal:
                        self._cancel_rejected(request, ts_ns, reason)
                elif kind == r.EV_MASS_CANCEL_DONE:
                    if request is not None and not request.internal:
                        self._reply(request.context, b"r", reports.mass_cancel_report(
                            request.cl_ord_id, b"%d" % exec_id, request.mass_type, request.mass_type, qty,
                            self._transact_time(ts_ns), symbol=request.symbol_text, side=request.side_text))
                elif request is not None and client_ref:
                    pending[client_ref] = request      # not an answer (BOOK_ADD ...): keep waiting
            except Exception:  # noqa: BLE001 - one event must not stop the gateway (nor, held and
                self.event_errors += 1           # read again after a restart, stop every next run)
                log.exception("engine event %r not handled", event)

    # ------------------------------------------------------------ per kind

    def _fill(self, order: OrderState, exec_id: int, ts_ns: int, price: int, qty: int, leaves: int,
              cum: int) -> None:
        order.cum = cum
        order.leaves = leaves
        order.notional += price * qty
        if leaves <= 0:
            order.context.finish(order)
            self.live.pop(order.order_id, None)
        self._reply(order.context, b"8", reports.execution_report(
            order, b"%d%s" % (exec_id, SIDE_SUFFIX[order.side]), reports.EXEC_TRADE,
            self._transact_time(ts_ns), last_lots=qty, last_ticks=price))

    def _cancelled(self, order: OrderState, request, exec_id: int, ts_ns: int, cause: int, cum: int) -> None:
        cl_ord_id = orig_cl_ord_id = None
        if request is not None and request.kind == REQUEST_CANCEL:
            cl_ord_id = request.cl_ord_id
            orig_cl_ord_id = request.orig_cl_ord_id
            order.orig_cl_ord_id = order.cl_ord_id
            order.cl_ord_id = cl_ord_id
        expired = cause == r.CAUSE_EXPIRED
        order.final_status = STATUS_EXPIRED if expired else STATUS_CANCELED
        order.cum = cum
        order.leaves = 0
        order.context.finish(order)
        self.live.pop(order.order_id, None)
        self._report(order, b"%d" % exec_id, reports.EXEC_EXPIRED if expired else reports.EXEC_CANCELED, ts_ns,
                     cl_ord_id=cl_ord_id, orig_cl_ord_id=orig_cl_ord_id, text=reports.CAUSE_TEXT.get(cause))

    def _replaced(self, order: OrderState, request, exec_id: int, ts_ns: int, price: int, qty: int,
                  leaves: int, cum: int) -> None:
        orig_cl_ord_id = None
        if request is not None and request.kind == REQUEST_REPLACE:
            orig_cl_ord_id = request.orig_cl_ord_id
            order.orig_cl_ord_id = order.cl_ord_id
            order.cl_ord_id = request.cl_ord_id
        if price:
            order.price = price
        order.qty = qty
        order.static = None
        order.leaves = leaves
        order.cum = cum
        if leaves <= 0:
            order.context.finish(order)
            self.live.pop(order.order_id, None)
        self._report(order, b"%d" % exec_id, reports.EXEC_REPLACED, ts_ns, orig_cl_ord_id=orig_cl_ord_id)

    def _rejected(self, request, exec_id: int, ts_ns: int, reason: int) -> None:
        order_code, cancel_code, text = reports.reject_codes(reason)
        if request.kind == REQUEST_NEW:
            order = request.order
            order.final_status = STATUS_REJECTED
            order.leaves = 0
            request.context.finish(order)
            self.live.pop(order.order_id, None)
            self._report(order, b"%d" % exec_id, reports.EXEC_REJECTED, ts_ns, reject_code=order_code, text=text)
        elif request.kind == REQUEST_MASS_CANCEL:
            if request.internal:
                return
            self._reply(request.context, b"r", reports.mass_cancel_report(
                request.cl_ord_id, b"%d" % exec_id, request.mass_type, b"0", 0, self._transact_time(ts_ns),
                reject_reason=b"99", symbol=request.symbol_text, side=request.side_text, text=text))
        else:
            self._cancel_rejected(request, ts_ns, reason)

    def _cancel_rejected(self, request, ts_ns: int, reason: int) -> None:
        order = request.order
        _, code, text = reports.reject_codes(reason)
        if not order.live and reason in (r.REASON_UNKNOWN_ORDER, r.REASON_NOT_OWNER):
            code, text = reports.TOO_LATE_TO_CANCEL, "too late: the order is done"
        response_to = reports.RESPONSE_TO_REPLACE if request.kind == REQUEST_REPLACE else reports.RESPONSE_TO_CANCEL
        self._reply(request.context, b"9", reports.cancel_reject(
            b"%d" % order.order_id, request.cl_ord_id, request.orig_cl_ord_id, order.status, response_to, code,
            text, self._transact_time(ts_ns)))

    # ------------------------------------------------------------ helpers

    def _report(self, order: OrderState, exec_id: bytes, exec_type: bytes, ts_ns: int, **fields) -> None:
        self._reply(order.context, b"8", reports.execution_report(
            order, exec_id, exec_type, self._transact_time(ts_ns), **fields))

    def _reply(self, context, msg_type: bytes, body: bytes) -> None:
        if not context.outbox:
            self.dirty.append(context)
        context.outbox.append((msg_type, body))

    def _transact_time(self, ts_ns: int) -> bytes:
        if ts_ns != self._time_ns:
            self._time_ns = ts_ns
            self._time_text = self._formatter.format(ts_ns)
        return self._time_text
