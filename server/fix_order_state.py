"""What the FIX gateway remembers per session and per order.

The engine knows orders only by number; the gateway keeps the FIX side of each
order: its ClOrdIDs, the request that is in flight, executed quantity and
notional (for AvgPx), and the true OrdStatus.  A :class:`SessionContext` lives
per configured CompID for the whole gateway run (across reconnects), so events
for a session that is offline are still turned into ExecutionReports (stored
and resent after its next Logon).

ClOrdIDs: every ClOrdID a session used for an order (the NewOrderSingle's, each
replacement's, a cancel request's) maps to that order in ``context.orders``
while it is live and for the ``recent_limit`` most recently finished orders of
the session; a new request reusing one of them is a duplicate.
"""

from __future__ import annotations

from collections import deque

from numbex.engine import records as r
from numbex.server.fix_units import InstrumentUnits
from numbex.server.fix_throttle import Throttle

# Request kinds (what a COMMAND sent to the engine answers).
REQUEST_NEW = 1
REQUEST_CANCEL = 2
REQUEST_REPLACE = 3
REQUEST_MASS_CANCEL = 4

STATUS_NEW = b"0"
STATUS_PARTIAL = b"1"
STATUS_FILLED = b"2"
STATUS_CANCELED = b"4"
STATUS_REJECTED = b"8"
STATUS_EXPIRED = b"C"

FIX_SIDE = {r.SIDE_BUY: b"1", r.SIDE_SELL: b"2"}
FIX_ORD_TYPE = {r.ORD_MARKET: b"1", r.ORD_LIMIT: b"2", r.ORD_STOP: b"3", r.ORD_STOP_LIMIT: b"4"}
FIX_TIF = {r.TIF_DAY: b"0", r.TIF_GTC: b"1", r.TIF_IOC: b"3", r.TIF_FOK: b"4"}
SIDE_FROM_FIX = {value: key for key, value in FIX_SIDE.items()}
ORD_TYPE_FROM_FIX = {value: key for key, value in FIX_ORD_TYPE.items()}
TIF_FROM_FIX = {value: key for key, value in FIX_TIF.items()}
PRICED_TYPES = (r.ORD_LIMIT, r.ORD_STOP_LIMIT)
STOP_TYPES = (r.ORD_STOP, r.ORD_STOP_LIMIT)


class OrderState:
    """The FIX view of one order of one session."""

    __slots__ = ("order_id", "context", "cl_ord_id", "orig_cl_ord_id", "aliases", "symbol", "units",
                 "side", "ord_type", "tif", "post_only", "qty", "price", "stop_price", "cum", "leaves",
                 "notional", "final_status", "accepted", "live", "static")

    def __init__(self, order_id: int, context: SessionContext, cl_ord_id: bytes, symbol: int,
                 units: InstrumentUnits, side: int, ord_type: int, tif: int, post_only: bool, qty: int,
                 price: int, stop_price: int) -> None:
        self.order_id = order_id
        self.context = context
        self.cl_ord_id = cl_ord_id
        self.orig_cl_ord_id: bytes | None = None
        self.aliases = [cl_ord_id]
        self.symbol = symbol
        self.units = units
        self.side = side
        self.ord_type = ord_type
        self.tif = tif
        self.post_only = post_only
        self.qty = qty
        self.price = price
        self.stop_price = stop_price
        self.cum = 0
        self.leaves = qty
        self.notional = 0
        self.final_status: bytes | None = None   # 4, 8 or C once the order ended that way
        self.accepted = False
        self.live = True
        self.static: bytes | None = None          # cached ExecutionReport fields (see fix_reports)

    @property
    def status(self) -> bytes:
        """OrdStatus (39): 0, 1, 2, 4, 8 or C; never a pending state."""
        if self.final_status is not None:
            return self.final_status
        if self.cum > 0:
            return STATUS_FILLED if self.leaves <= 0 else STATUS_PARTIAL
        return STATUS_NEW


class Request:
    """A COMMAND in flight, found again through the ``client_ref`` its events echo."""

    __slots__ = ("kind", "context", "order", "cl_ord_id", "orig_cl_ord_id", "mass_type", "symbol_text",
                 "side_text", "internal")

    def __init__(self, kind: int, context: SessionContext, order: OrderState | None, cl_ord_id: bytes,
                 orig_cl_ord_id: bytes | None = None) -> None:
        self.kind = kind
        self.context = context
        self.order = order
        self.cl_ord_id = cl_ord_id
        self.orig_cl_ord_id = orig_cl_ord_id
        self.mass_type = b"7"
        self.symbol_text: bytes | None = None
        self.side_text: bytes | None = None
        self.internal = False          # a cancel-on-disconnect mass cancel: no report


class SessionContext:
    """One configured FIX session (CompID) of this gateway.

    Attributes
    ----------
    comp_id : str
    index : int
        Position in ``config.sessions``; the COMMAND ``session`` field is
        ``gateway_index << 16 | index``.
    session_field : int
    account : int
        Account index of the session.
    account_name : bytes
    cancel_on_disconnect : bool
    throttle : Throttle
    orders : dict[bytes, OrderState]
        Every ClOrdID of the live and recent orders.
    outbox : list[tuple[bytes, bytes]]
        (MsgType, body) replies waiting to be sent by the gateway.
    connection : object or None
        The connection the session is logged on through, if any.
    """

    __slots__ = ("comp_id", "index", "session_field", "account", "account_name", "cancel_on_disconnect",
                 "throttle", "orders", "live_count", "recent", "recent_limit", "outbox", "connection",
                 "logout_text")

    def __init__(self, comp_id: str, index: int, session_field: int, account: int, account_name: str,
                 cancel_on_disconnect: bool, throttle: Throttle, recent_limit: int) -> None:
        self.comp_id = comp_id
        self.index = index
        self.session_field = session_field
        self.account = account
        self.account_name = account_name.encode("ascii")
        self.cancel_on_disconnect = cancel_on_disconnect
        self.throttle = throttle
        self.orders: dict[bytes, OrderState] = {}
        self.live_count = 0
        self.recent: deque[OrderState] = deque()
        self.recent_limit = recent_limit
        self.outbox: list[tuple[bytes, bytes]] = []
        self.connection = None
        self.logout_text: str | None = None

    def add_order(self, order: OrderState) -> None:
        self.orders[order.cl_ord_id] = order
        self.live_count += 1

    def add_alias(self, order: OrderState, cl_ord_id: bytes) -> None:
        """``cl_ord_id`` (a replace's or cancel's) now also names ``order``."""
        self.orders[cl_ord_id] = order
        order.aliases.append(cl_ord_id)

    def finish(self, order: OrderState) -> None:
        """``order`` ended: keep its ClOrdIDs as recent, forgetting the oldest beyond the limit."""
        if not order.live:
            return
        order.live = False
        self.live_count -= 1
        recent = self.recent
        recent.append(order)
        orders = self.orders
        while len(recent) > self.recent_limit:
            old = recent.popleft()
            for alias in old.aliases:
                if orders.get(alias) is old:
                    del orders[alias]
