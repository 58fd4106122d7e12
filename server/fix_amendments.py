"""Cancel, replace, status and mass-cancel requests: a part of
:class:`numbex.server.fix_orders.OrderEntry` (which documents the rules).

OrderCancelRequest (F) and OrderCancelReplaceRequest (G) find the session's own
order (OrderID(37) first, then OrigClOrdID(41)), check what must not change, and
queue OP_CANCEL / OP_REPLACE; refusals are OrderCancelReject (9).
OrderMassCancelRequest (q) queues OP_MASS_CANCEL filtered on the session's account
and session field.  OrderStatusRequest (H) is answered from the gateway's state
once the batch's events are in.
"""

from __future__ import annotations

from numbex.engine import records as r
from numbex.server import fix_reports as reports
from numbex.server.fix_order_state import (
    FIX_ORD_TYPE, FIX_TIF, PRICED_TYPES, REQUEST_CANCEL, REQUEST_MASS_CANCEL, REQUEST_REPLACE, SIDE_FROM_FIX,
    STATUS_REJECTED, STOP_TYPES, OrderState, Request, SessionContext,
)
from numbex.server.fix_units import RequestRefused, shown


class AmendmentHandlers:
    """Mixin of :class:`OrderEntry`: F, G, H and q."""

    def answer_status_requests(self) -> int:
        """Answer the batch's OrderStatusRequests from the state after its events."""
        requests = self._status_requests
        if not requests:
            return 0
        now_text = self._formatter.format(self._now_ns)
        for context, message in requests:
            order = self._find_order(context, message, 11)
            if order is None:
                self._reply(context, b"8", reports.unknown_order_status(message, self._exec_id(), now_text))
            else:
                self._reply(context, b"8", reports.execution_report(
                    order, self._exec_id(), reports.EXEC_ORDER_STATUS, now_text, status_request_id=message.get(790)))
        count = len(requests)
        requests.clear()
        return count

    def _cancel_or_replace(self, context: SessionContext, message, kind: int) -> None:
        get = message.get
        cl_ord_id = get(11)
        orig_cl_ord_id = get(41)
        response_to = reports.RESPONSE_TO_REPLACE if kind == REQUEST_REPLACE else reports.RESPONSE_TO_CANCEL
        order = self._find_order(context, message, 41)
        if order is None:
            code, text = reports.UNKNOWN_ORDER, "unknown order"
        elif not order.live:
            code, text = reports.TOO_LATE_TO_CANCEL, "too late: the order is done"
        elif cl_ord_id in context.orders:
            code, text = reports.DUPLICATE_CL_ORD_ID, f"duplicate ClOrdID {shown(cl_ord_id)}"
        else:
            code, text = None, ""
            try:
                price, lots = self._check_amendment(order, message, kind)
            except RequestRefused as refused:
                code, text = reports.reject_codes(refused.reason)[1], refused.text
        if code is not None:
            self._reply(context, b"9", reports.cancel_reject(
                b"%d" % order.order_id if order is not None else b"NONE", cl_ord_id, orig_cl_ord_id,
                order.status if order is not None else STATUS_REJECTED, response_to, code, text,
                self._formatter.format(self._now_ns)))
            return
        context.add_alias(order, cl_ord_id)
        request = Request(kind, context, order, cl_ord_id, orig_cl_ord_id)
        op = r.OP_REPLACE if kind == REQUEST_REPLACE else r.OP_CANCEL
        self._queue(request, op, order.order_id, price, lots, 0, 0, context.account, context.session_field,
                    order.symbol, order.side, order.ord_type, order.tif, 0)

    def _check_amendment(self, order: OrderState, message, kind: int) -> tuple[int, int]:
        """Fields of F/G that must match the order; (price, lots) of a replace."""
        get = message.get
        if SIDE_FROM_FIX.get(get(54)) != order.side:
            raise RequestRefused(r.REASON_BAD_SIDE, "Side(54) does not match the order")
        symbol = get(55)
        if symbol is not None and symbol != order.units.symbol_bytes:
            raise RequestRefused(r.REASON_UNKNOWN_INSTRUMENT, "Symbol(55) does not match the order")
        if kind == REQUEST_CANCEL:
            return 0, 0
        if get(40) != FIX_ORD_TYPE[order.ord_type]:
            raise RequestRefused(r.REASON_BAD_ORDER_TYPE, "OrdType(40) cannot be changed")
        tif = get(59)
        if tif is not None and tif != FIX_TIF[order.tif]:
            raise RequestRefused(r.REASON_BAD_TIF, "TimeInForce(59) cannot be changed")
        exec_inst = get(18)
        if exec_inst is not None and self._post_only(exec_inst) != order.post_only:
            raise RequestRefused(r.REASON_BAD_COMBINATION, "ExecInst(18) cannot be changed")
        units = order.units
        stop = get(99)
        if stop is not None and (order.ord_type not in STOP_TYPES
                                 or units.price_ticks(stop, "StopPx") != order.stop_price):
            raise RequestRefused(r.REASON_BAD_COMBINATION, "StopPx(99) cannot be changed")
        quantity = get(38)
        if quantity is None:
            raise RequestRefused(r.REASON_BAD_QUANTITY, "OrderQty(38) is required")
        lots = units.quantity_lots(quantity)
        if order.ord_type in PRICED_TYPES:
            return self._price(units, get(44), True, "Price(44)"), lots
        if get(44) is not None:
            raise RequestRefused(r.REASON_BAD_COMBINATION, "Price(44) is not allowed for this order type")
        return 0, lots

    def _mass_cancel(self, context: SessionContext, message) -> None:
        get = message.get
        cl_ord_id = get(11)
        request_type = get(530)
        symbol_text = get(55)
        side_text = get(54)
        reject = None
        symbol = r.ALL_SYMBOLS
        if request_type == b"1":
            symbol = self.symbols.get(symbol_text) if symbol_text is not None else None
            if symbol is None:
                reject = (b"1", "unknown or missing Symbol(55)")
        elif request_type != b"7":
            reject = (b"0", f"MassCancelRequestType {shown(request_type)} not supported (1 or 7)")
        side = r.SIDE_BOTH if side_text is None else SIDE_FROM_FIX.get(side_text)
        if side is None and reject is None:
            reject = (b"99", f"Side(54) {shown(side_text)} not supported")
        if reject is not None:
            self._reply(context, b"r", reports.mass_cancel_report(
                cl_ord_id, self._exec_id(), request_type, b"0", 0, self._formatter.format(self._now_ns),
                reject_reason=reject[0], symbol=symbol_text, side=side_text, text=reject[1]))
            return
        request = Request(REQUEST_MASS_CANCEL, context, None, cl_ord_id)
        request.mass_type = request_type
        request.symbol_text = symbol_text if request_type == b"1" else None
        request.side_text = side_text
        self._queue(request, r.OP_MASS_CANCEL, 0, 0, 0, 0, context.session_field, context.account,
                    context.session_field, symbol, side, 0, 0, 0)
