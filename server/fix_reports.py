"""FIX 4.4 bodies the gateway sends: ExecutionReport (8), OrderCancelReject (9),
OrderMassCancelReport (r), and the mapping of numbex reject reasons to FIX codes.

Every numbex ``REASON_*`` maps to the closest OrdRejReason (103) and
CxlRejReason (102) plus a readable Text (58); FIX 4.4 has no code for a price
off the tick grid, outside the band, a full book or a busy system, so those use
99 (Other) and the Text says which.  Bodies are SOH-terminated field bytes for
``FixSession.send``; the session adds the header and trailer.
"""

from __future__ import annotations

from numbex.engine import records as r
from numbex.server.fix_order_state import FIX_ORD_TYPE, FIX_SIDE, FIX_TIF, PRICED_TYPES, STOP_TYPES, OrderState

EXEC_NEW = b"0"
EXEC_CANCELED = b"4"
EXEC_REPLACED = b"5"
EXEC_REJECTED = b"8"
EXEC_EXPIRED = b"C"
EXEC_TRADE = b"F"
EXEC_ORDER_STATUS = b"I"

RESPONSE_TO_CANCEL = b"1"
RESPONSE_TO_REPLACE = b"2"

#: REASON_* -> (OrdRejReason, CxlRejReason, Text).
REJECT_CODES: dict[int, tuple[bytes, bytes, str]] = {
    r.REASON_UNKNOWN_INSTRUMENT: (b"1", b"99", "unknown symbol"),
    r.REASON_UNKNOWN_ACCOUNT: (b"15", b"99", "unknown account"),
    r.REASON_DUPLICATE_ORDER_ID: (b"6", b"6", "duplicate order"),
    r.REASON_UNKNOWN_ORDER: (b"5", b"1", "unknown order"),
    r.REASON_NOT_OWNER: (b"5", b"1", "unknown order (not an order of this session)"),
    r.REASON_HALTED: (b"2", b"99", "instrument halted"),
    r.REASON_CLOSED: (b"2", b"99", "instrument closed"),
    r.REASON_BAD_QUANTITY: (b"13", b"99", "incorrect quantity"),
    r.REASON_QTY_ABOVE_MAX: (b"3", b"99", "quantity above the instrument's maximum"),
    r.REASON_OFF_LOT: (b"13", b"99", "quantity not a multiple of the lot size"),
    r.REASON_OFF_TICK: (b"99", b"99", "price not on the tick grid"),
    r.REASON_OUTSIDE_BAND: (b"99", b"99", "price outside the instrument's price band"),
    r.REASON_BAD_SIDE: (b"11", b"99", "unsupported side"),
    r.REASON_BAD_ORDER_TYPE: (b"11", b"99", "unsupported order type"),
    r.REASON_BAD_TIF: (b"11", b"99", "unsupported time in force"),
    r.REASON_BAD_COMBINATION: (b"11", b"99", "unsupported combination of order attributes"),
    r.REASON_BOOK_FULL: (b"99", b"99", "order book full"),
    r.REASON_STOPS_FULL: (b"99", b"99", "stop order capacity full"),
    r.REASON_UNKNOWN_OP: (b"99", b"99", "unknown operation"),
    r.REASON_NOT_REPLACEABLE: (b"11", b"99", "order cannot be replaced (untriggered stop)"),
    r.REASON_SYSTEM_BUSY: (b"99", b"99", "system busy"),
    r.REASON_NOT_DURABLE: (b"99", b"99", "not durable: the exchange cannot journal orders"),
    r.REASON_ENGINE_DOWN: (b"99", b"99", "engine down"),
    r.REASON_THROTTLED: (b"99", b"99", "throttled"),
    r.REASON_BAD_STATE: (b"99", b"99", "bad instrument state"),
    r.REASON_BAD_ORDER_ID: (b"99", b"99", "bad order id"),
}
#: Cancel causes -> Text of the ExecutionReport (ExecType 4, or C for EXPIRED), as wire bytes.
CAUSE_TEXT = {
    r.CAUSE_USER: None,
    r.CAUSE_IOC: b"IOC remainder cancelled",
    r.CAUSE_FOK: b"FOK not filled in full",
    r.CAUSE_MARKET_REMAINDER: b"market order remainder cancelled (no more liquidity within the band)",
    r.CAUSE_STP: b"self-trade prevention",
    r.CAUSE_MASS: b"mass cancel",
    r.CAUSE_HALT: b"instrument halted",
    r.CAUSE_EXPIRED: b"expired at the close",
    r.CAUSE_POST_ONLY: b"post-only order would cross",
    r.CAUSE_BOOK_FULL: b"order book full",
}
TOO_LATE_TO_CANCEL = b"0"
DUPLICATE_CL_ORD_ID = b"6"
UNKNOWN_ORDER = b"1"
OTHER = b"99"


def reject_codes(reason: int) -> tuple[bytes, bytes, str]:
    """(OrdRejReason, CxlRejReason, Text) of a numbex reason (unknown ones: 99)."""
    codes = REJECT_CODES.get(reason)
    return codes if codes is not None else (OTHER, OTHER, f"rejected (reason {reason})")


def clean_text(text: str) -> bytes:
    """Text (58) bytes: printable ASCII, no SOH or '=' (some parsers split on them)."""
    data = text.encode("ascii", "replace")
    return bytes(byte if 32 <= byte < 127 and byte != 0x3D else 0x3F for byte in data)[:200] or b"-"


def execution_report(order: OrderState, exec_id: bytes, exec_type: bytes, transact_time: bytes, *,
                     cl_ord_id: bytes | None = None, orig_cl_ord_id: bytes | None = None,
                     last_lots: int = 0, last_ticks: int = 0, reject_code: bytes | None = None,
                     text: str | bytes | None = None, status_request_id: bytes | None = None) -> bytes:
    """An ExecutionReport (8) of ``order`` as it is now (``text`` as str, or bytes already clean)."""
    units = order.units
    parts = [b"37=%d\x0111=%s\x01" % (order.order_id, cl_ord_id or order.cl_ord_id)]
    if orig_cl_ord_id is not None:
        parts.append(b"41=%s\x01" % orig_cl_ord_id)
    if status_request_id is not None:
        parts.append(b"790=%s\x01" % status_request_id)
    parts.append(b"17=%s\x01150=%s\x0139=%s\x01" % (exec_id, exec_type, order.status))
    if reject_code is not None:
        parts.append(b"103=%s\x01" % reject_code)
    static = order.static
    if static is None:
        static = order.static = order_fields(order)
    parts.append(static)
    if last_lots:
        parts.append(b"32=%s\x0131=%s\x01" % (units.quantity_text(last_lots), units.price_text(last_ticks)))
    parts.append(b"151=%s\x0114=%s\x016=%s\x0160=%s\x01" % (
        units.quantity_text(order.leaves if order.live else 0), units.quantity_text(order.cum),
        units.average_text(order.notional, order.cum), transact_time))
    if text:
        parts.append(b"58=%s\x01" % (text if type(text) is bytes else clean_text(text)))
    return b"".join(parts)


def order_fields(order: OrderState) -> bytes:
    """The fields of an ExecutionReport that change only with a replace (cached on the order)."""
    units = order.units
    parts = [b"1=%s\x0155=%s\x0154=%s\x0138=%s\x0140=%s\x01" % (
        order.context.account_name, units.symbol_bytes, FIX_SIDE[order.side], units.quantity_text(order.qty),
        FIX_ORD_TYPE[order.ord_type])]
    if order.ord_type in PRICED_TYPES:
        parts.append(b"44=%s\x01" % units.price_text(order.price))
    if order.ord_type in STOP_TYPES:
        parts.append(b"99=%s\x01" % units.price_text(order.stop_price))
    parts.append(b"59=%s\x01" % FIX_TIF[order.tif])
    if order.post_only:
        parts.append(b"18=6\x01")
    return b"".join(parts)


def new_order_reject(message, exec_id: bytes, transact_time: bytes, reject_code: bytes, text: str,
                     account_name: bytes) -> bytes:
    """ExecutionReport (8) rejecting a NewOrderSingle the engine never saw (the gateway's
    own checks); echoes the order's fields as the client sent them."""
    get = message.get
    parts = [b"37=NONE\x0111=%s\x0117=%s\x01150=8\x0139=8\x01103=%s\x011=%s\x01" % (
        get(11), exec_id, reject_code, account_name)]
    for tag in (55, 54, 38, 40, 44, 99, 59):
        value = get(tag)
        if value is not None:
            parts.append(b"%d=%s\x01" % (tag, value))
    parts.append(b"151=0\x0114=0\x016=0\x0160=%s\x0158=%s\x01" % (transact_time, clean_text(text)))
    return b"".join(parts)


def unknown_order_status(message, exec_id: bytes, transact_time: bytes) -> bytes:
    """ExecutionReport (8) answering an OrderStatusRequest for an order the session does not have."""
    get = message.get
    parts = [b"37=%s\x0111=%s\x01" % (get(37) or b"NONE", get(11))]
    request_id = get(790)
    if request_id is not None:
        parts.append(b"790=%s\x01" % request_id)
    parts.append(b"17=%s\x01150=I\x0139=8\x01103=5\x01" % exec_id)
    symbol = get(55)
    if symbol is not None:
        parts.append(b"55=%s\x01" % symbol)
    parts.append(b"54=%s\x01151=0\x0114=0\x016=0\x0160=%s\x0158=unknown order\x01" % (get(54), transact_time))
    return b"".join(parts)


def cancel_reject(order_id: bytes, cl_ord_id: bytes, orig_cl_ord_id: bytes, status: bytes, response_to: bytes,
                  reason_code: bytes, text: str, transact_time: bytes) -> bytes:
    """An OrderCancelReject (9)."""
    return (b"37=%s\x0111=%s\x0141=%s\x0139=%s\x0160=%s\x01434=%s\x01102=%s\x0158=%s\x01" % (
        order_id, cl_ord_id, orig_cl_ord_id, status, transact_time, response_to, reason_code,
        clean_text(text)))


def mass_cancel_report(cl_ord_id: bytes, report_id: bytes, request_type: bytes, response: bytes,
                       affected: int, transact_time: bytes, *, reject_reason: bytes | None = None,
                       symbol: bytes | None = None, side: bytes | None = None, text: str | None = None) -> bytes:
    """An OrderMassCancelReport (r); ``response`` 0 means the request was rejected."""
    parts = [b"11=%s\x0137=%s\x01530=%s\x01531=%s\x01" % (cl_ord_id, report_id, request_type, response)]
    if reject_reason is not None:
        parts.append(b"532=%s\x01" % reject_reason)
    parts.append(b"533=%d\x01" % affected)
    if symbol is not None:
        parts.append(b"55=%s\x01" % symbol)
    if side is not None:
        parts.append(b"54=%s\x01" % side)
    parts.append(b"60=%s\x01" % transact_time)
    if text:
        parts.append(b"58=%s\x01" % clean_text(text))
    return b"".join(parts)
