"""FIX 4.4 order entry: application messages -> COMMAND records, EVENT records -> replies.

:class:`OrderEntry` is the gateway's order-entry mapping, free of sockets: the
gateway hands it each validated, in-sequence application message of a logged-on
session (:meth:`on_message`), then once per batch calls :meth:`flush` (one
``link.submit`` for every command of the batch), :meth:`poll` (events -> replies,
see :mod:`numbex.server.fix_executions`) and :meth:`answer_status_requests`.
Replies wait in each :class:`SessionContext`'s ``outbox``; contexts with replies
are listed in :attr:`dirty` for the gateway to send through the session.

Requests:

* NewOrderSingle (D): OrdType 1 market, 2 limit, 3 stop, 4 stop-limit;
  TimeInForce 0 DAY (the default), 1 GTC, 3 IOC, 4 FOK; ExecInst 6 post-only.
  Price(44) is required for limit types and refused for market/stop; StopPx(99)
  likewise for stop types.  Prices and quantities convert exactly
  (:mod:`numbex.server.fix_units`).
* OrderCancelRequest (F), OrderCancelReplaceRequest (G): the order is named by
  OrderID(37) when it is one of the session's, else by OrigClOrdID(41).  A replace
  changes price and quantity only; side, symbol, OrdType, TimeInForce, ExecInst
  and StopPx must match the order.
* OrderStatusRequest (H): answered from the gateway's state after the batch's
  events (ExecType I).
* OrderMassCancelRequest (q): MassCancelRequestType 1 (one Symbol) or 7 (all),
  optional Side; only the session's own orders (account and session filter).

Gateway-side refusals (duplicate ClOrdID, unknown symbol, off tick/lot,
throttled, engine down, ring full) are answered at once and never reach the engine.
F, G, H and q are parsed in :mod:`numbex.server.fix_amendments`.
"""

from __future__ import annotations

import struct

import numpy as np

from numbex.engine import records as r
from numbex.protocol.fix import admin
from numbex.protocol.fix.timestamps import UtcTimestampFormatter
from numbex.server import fix_reports as reports
from numbex.server.engine_link import order_id_base, session_field
from numbex.server.fix_amendments import AmendmentHandlers
from numbex.server.fix_executions import ExecutionHandlers
from numbex.server.fix_order_state import (
    ORD_TYPE_FROM_FIX, PRICED_TYPES, REQUEST_CANCEL, REQUEST_MASS_CANCEL, REQUEST_NEW,
    REQUEST_REPLACE, SIDE_FROM_FIX, STATUS_REJECTED, STOP_TYPES, TIF_FROM_FIX, OrderState, Request,
    SessionContext,
)
from numbex.server.fix_throttle import DEFAULT_LOGOUT_EXCESS, DEFAULT_LOGOUT_SECONDS, Throttle
from numbex.server.fix_units import RequestRefused, instrument_units, shown

#: The COMMAND dtype as a struct (a unit test pins it against records.COMMAND).
COMMAND_STRUCT = struct.Struct("<QqQQqqqqIIHBBBBBBQQ")
COMMAND_SIZE = COMMAND_STRUCT.size
DEFAULT_BATCH = 4096
DEFAULT_RECENT_ORDERS = 4096
MAX_POLL_ROUNDS = 16
_THROTTLED = "throttled"


class OrderEntry(AmendmentHandlers, ExecutionHandlers):
    """Order entry of one gateway.

    Parameters
    ----------
    config : numbex.config.Config
    link : numbex.server.engine_link.EngineLink
    now_ns : int
        Start time (throttle buckets start full).
    gateway_index, epoch : int
        Addressing: session fields and order ids (see ``engine_link``).
    batch : int
        Commands per submit at most (a fuller batch is submitted early).
    recent_orders : int
        Finished orders per session whose ClOrdIDs stay known (duplicates, status).
    throttle_logout_excess, throttle_logout_seconds :
        Abuse that ends a session (see :class:`numbex.server.fix_throttle.Throttle`).
    """

    def __init__(self, config, link, now_ns: int, *, gateway_index: int = 0, epoch: int = 0,
                 batch: int = DEFAULT_BATCH, recent_orders: int = DEFAULT_RECENT_ORDERS,
                 throttle_logout_excess: int = DEFAULT_LOGOUT_EXCESS,
                 throttle_logout_seconds: float = DEFAULT_LOGOUT_SECONDS) -> None:
        self.link = link
        self.gateway_index = gateway_index
        self.epoch = epoch
        self.units, self.symbols = instrument_units(config)
        accounts = {account.name: index for index, account in enumerate(config.accounts)}
        self.contexts: dict[str, SessionContext] = {}
        for index, session in enumerate(config.sessions):
            throttle = Throttle(session.messages_per_second, now_ns, logout_excess=throttle_logout_excess,
                                logout_seconds=throttle_logout_seconds)
            self.contexts[session.comp_id] = SessionContext(
                session.comp_id, index, session_field(gateway_index, index), accounts[session.account],
                session.account, session.cancel_on_disconnect, throttle, recent_orders)
        self.context_by_field = {context.session_field: context for context in self.contexts.values()}
        self.live: dict[int, OrderState] = {}
        self._orphans: set[int] = set()         # unknown orders already being cancelled
        self.orphans_cancelled = 0
        self.dirty: list[SessionContext] = []
        self._pending: dict[int, Request] = {}
        self._cancel_retries: dict[SessionContext, None] = {}     # insertion-ordered set
        base = order_id_base(gateway_index, epoch)
        self._next_order_id = base + 1
        self._next_client_ref = base + 1
        self._next_exec = 0
        self._capacity = batch
        self._commands = np.zeros(batch, dtype=r.COMMAND)
        self._command_bytes = self._commands.view(np.uint8)
        self._count = 0
        self._batch_refs: list[int] = []
        self._events = np.zeros(batch, dtype=r.EVENT)
        self._event_bytes = self._events.view(np.uint8)
        self._status_requests: list[tuple[SessionContext, object]] = []
        self._formatter = UtcTimestampFormatter()
        self._time_ns = -1
        self._time_text = b""
        self._now_ns = now_ns
        self.reported: dict[int, int] | None = None     # see skip_reported
        self.reported_max = 0
        self.events_seen = 0
        self.event_errors = 0                   # engine events whose handling failed (logged, skipped)
        self.messages_handled = 0
        self.commands_submitted = 0
        self.commands_refused = 0

    # ------------------------------------------------------------ gateway API

    def context(self, comp_id: str) -> SessionContext:
        """The context of a configured CompID (KeyError otherwise)."""
        return self.contexts[comp_id]

    def on_message(self, context: SessionContext, message, seq_num: int, now_ns: int) -> None:
        """One validated, in-sequence application message of ``context``'s session."""
        self._now_ns = now_ns
        self.messages_handled += 1
        msg_type = message.msg_type
        if not context.throttle.allow(now_ns):
            self._throttled(context, message, seq_num, now_ns)
            return
        if msg_type == b"D":
            self._new_order(context, message)
        elif msg_type == b"F":
            self._cancel_or_replace(context, message, REQUEST_CANCEL)
        elif msg_type == b"G":
            self._cancel_or_replace(context, message, REQUEST_REPLACE)
        elif msg_type == b"H":
            self._status_requests.append((context, message))
        elif msg_type == b"q":
            self._mass_cancel(context, message)
        else:
            self._reply(context, b"j", admin.business_reject_body(
                seq_num, msg_type or b"?", admin.UNSUPPORTED_MESSAGE_TYPE, "Unsupported Message Type"))

    def business_reject(self, context: SessionContext, seq_num: int, msg_type: bytes | None, text: str) -> None:
        """Answer a message with a BusinessMessageReject (BusinessRejectReason 0, other)."""
        self._reply(context, b"j", admin.business_reject_body(seq_num, msg_type or b"?", 0, text))

    def on_disconnect(self, context: SessionContext) -> None:
        """The session's connection ended: cancel its open orders when so configured."""
        if context.cancel_on_disconnect and context.live_count > 0:
            self._queue_session_cancel(context)

    def skip_reported(self, reported: dict[int, int]) -> None:
        """At start: ``reported[session_field]`` is the last engine exec id the session's store
        shows reported; events up to it are not reported again for that session."""
        self.reported = dict(reported) or None
        self.reported_max = max(reported.values(), default=0)

    def cancel_stale_orders(self) -> None:
        """At gateway start: every cancel-on-disconnect session has no connection yet, so any
        orders the engine still holds for it (from before a restart) are cancelled."""
        for context in self.contexts.values():
            if context.cancel_on_disconnect:
                self._cancel_retries[context] = None

    def begin_batch(self) -> None:
        """Queue retries of cancel-on-disconnect requests the engine could not take yet
        (first in the batch, ahead of any new order of a reconnected session)."""
        retries = self._cancel_retries
        if retries and self.link.engine_up():
            contexts = list(retries)
            retries.clear()
            for context in contexts:
                self._queue_session_cancel(context)

    def flush(self) -> int:
        """Submit the batch with one ``link.submit``; refuse what it did not take."""
        count = self._count
        if not count:
            return 0
        if self.link.engine_up():
            taken = self.link.submit(self._commands[:count])
            reason = r.REASON_SYSTEM_BUSY
        else:
            taken = 0
            reason = r.REASON_ENGINE_DOWN
        refs = self._batch_refs
        for client_ref in refs[taken:]:
            self._refuse(self._pending.pop(client_ref), reason)
        self.commands_submitted += taken
        self.commands_refused += count - taken
        refs.clear()
        self._count = 0
        return count

    def poll(self) -> int:
        """Poll the link for events and turn them into replies; returns events handled."""
        total = 0
        capacity = self._capacity
        for _ in range(MAX_POLL_ROUNDS):
            count = self.link.poll(self._events)
            if count <= 0:
                break
            total += count
            self._on_events(self._event_bytes[:count * r.EVENT.itemsize])
            if count < capacity:
                break
        return total

    @property
    def pending_requests(self) -> int:
        """Commands sent to the engine and not answered yet."""
        return len(self._pending)

    # ------------------------------------------------------------ requests

    def _new_order(self, context: SessionContext, message) -> None:
        get = message.values.get          # wire-bytes keys: the hot path skips FieldMap.get
        cl_ord_id = get(b"11")
        try:
            if cl_ord_id in context.orders:
                raise RequestRefused(r.REASON_DUPLICATE_ORDER_ID, f"duplicate ClOrdID {shown(cl_ord_id)}")
            symbol_text = get(b"55")
            if symbol_text is None:
                raise RequestRefused(r.REASON_UNKNOWN_INSTRUMENT, "Symbol(55) is required")
            symbol = self.symbols.get(symbol_text)
            if symbol is None:
                raise RequestRefused(r.REASON_UNKNOWN_INSTRUMENT, f"unknown symbol {shown(symbol_text)}")
            side_text = get(b"54")
            side = SIDE_FROM_FIX.get(side_text)
            if side is None:
                raise RequestRefused(r.REASON_BAD_SIDE, f"Side(54) {shown(side_text)} not supported (1 or 2)")
            ord_type_text = get(b"40")
            ord_type = ORD_TYPE_FROM_FIX.get(ord_type_text)
            if ord_type is None:
                raise RequestRefused(r.REASON_BAD_ORDER_TYPE, f"OrdType(40) {shown(ord_type_text)} not supported")
            tif_text = get(b"59")
            tif = r.TIF_DAY if tif_text is None else TIF_FROM_FIX.get(tif_text)
            if tif is None:
                raise RequestRefused(r.REASON_BAD_TIF, f"TimeInForce(59) {shown(tif_text)} not supported")
            post_only = self._post_only(get(b"18"))
            account = get(b"1")
            if account is not None and account != context.account_name:
                raise RequestRefused(r.REASON_UNKNOWN_ACCOUNT, f"Account(1) {shown(account)} is not this "
                                     "session's account")
            units = self.units[symbol]
            quantity = get(b"38")
            if quantity is None:
                raise RequestRefused(r.REASON_BAD_QUANTITY, "OrderQty(38) is required")
            lots = units.quantity_lots(quantity)
            price = self._price(units, get(b"44"), ord_type in PRICED_TYPES, "Price(44)")
            stop_price = self._price(units, get(b"99"), ord_type in STOP_TYPES, "StopPx(99)")
        except RequestRefused as refused:
            order_code, _, _ = reports.reject_codes(refused.reason)
            self._reply(context, b"8", reports.new_order_reject(
                message, self._exec_id(), self._formatter.format(self._now_ns), order_code, refused.text,
                context.account_name))
            return
        order_id = self._next_order_id
        self._next_order_id = order_id + 1
        order = OrderState(order_id, context, cl_ord_id, symbol, units, side, ord_type, tif, post_only, lots,
                           price, stop_price)
        context.add_order(order)
        self.live[order_id] = order
        self._queue(Request(REQUEST_NEW, context, order, cl_ord_id), r.OP_NEW, order_id, price, lots, stop_price,
                    0, context.account, context.session_field, symbol, side, ord_type, tif,
                    r.CMD_FLAG_POST_ONLY if post_only else 0)

    def cancel_orphan(self, order_id: int, session: int, symbol: int, side: int) -> None:
        """Cancel an order of this gateway's sessions that the gateway does not know (taken in by
        a run that died before reporting it): nobody could cancel it, and its fills would go
        unreported.  No reply is made; called for events of unknown resting orders."""
        context = self.context_by_field.get(session)
        if context is None or order_id in self._orphans:
            return
        self._orphans.add(order_id)
        self.orphans_cancelled += 1
        request = Request(REQUEST_CANCEL, context, None, b"")
        request.internal = True
        self._queue(request, r.OP_CANCEL, order_id, 0, 0, 0, 0, context.account, session, symbol, side, 0, 0, 0)

    def _queue_session_cancel(self, context: SessionContext) -> None:
        request = Request(REQUEST_MASS_CANCEL, context, None, b"")
        request.internal = True
        self._queue(request, r.OP_MASS_CANCEL, 0, 0, 0, 0, context.session_field, context.account,
                    context.session_field, r.ALL_SYMBOLS, r.SIDE_BOTH, 0, 0, 0)

    # ------------------------------------------------------------ batch

    def _queue(self, request: Request, op: int, order_id: int, price: int, qty: int, stop_price: int, aux: int,
               account: int, session: int, symbol: int, side: int, ord_type: int, tif: int, flags: int) -> None:
        if self._count == self._capacity:
            self.flush()
        client_ref = self._next_client_ref
        self._next_client_ref = client_ref + 1
        self._pending[client_ref] = request
        COMMAND_STRUCT.pack_into(self._command_bytes, self._count * COMMAND_SIZE, 0, 0, order_id, client_ref,
                                 price, qty, stop_price, aux, account, session, symbol, op, side, ord_type, tif,
                                 flags, 0, 0, 0)
        self._batch_refs.append(client_ref)
        self._count += 1

    def _refuse(self, request: Request, reason: int) -> None:
        """Answer a request the engine did not take (engine down, ring full)."""
        context = request.context
        order_code, cancel_code, text = reports.reject_codes(reason)
        now_text = self._formatter.format(self._now_ns)
        if request.kind == REQUEST_NEW:
            order = request.order
            order.final_status = STATUS_REJECTED
            order.leaves = 0
            order.live = False
            context.live_count -= 1
            del context.orders[order.cl_ord_id]          # never reached the engine: the ClOrdID is free
            self.live.pop(order.order_id, None)
            self._reply(context, b"8", reports.execution_report(
                order, self._exec_id(), reports.EXEC_REJECTED, now_text, reject_code=order_code, text=text))
        elif request.kind == REQUEST_MASS_CANCEL:
            if request.internal:
                self._cancel_retries[context] = None     # retried at the next batch
                return
            self._reply(context, b"r", reports.mass_cancel_report(
                request.cl_ord_id, self._exec_id(), request.mass_type, b"0", 0, now_text, reject_reason=b"99",
                symbol=request.symbol_text, side=request.side_text, text=text))
        else:
            order = request.order
            if context.orders.get(request.cl_ord_id) is order:
                del context.orders[request.cl_ord_id]
                order.aliases.remove(request.cl_ord_id)
            response_to = reports.RESPONSE_TO_REPLACE if request.kind == REQUEST_REPLACE else reports.RESPONSE_TO_CANCEL
            self._reply(context, b"9", reports.cancel_reject(
                b"%d" % order.order_id, request.cl_ord_id, request.orig_cl_ord_id, order.status, response_to,
                cancel_code, text, now_text))

    def _throttled(self, context: SessionContext, message, seq_num: int, now_ns: int) -> None:
        msg_type = message.msg_type
        get = message.get
        now_text = self._formatter.format(now_ns)
        if msg_type == b"D":
            self._reply(context, b"8", reports.new_order_reject(
                message, self._exec_id(), now_text, reports.OTHER, _THROTTLED, context.account_name))
        elif msg_type == b"F" or msg_type == b"G":
            response_to = reports.RESPONSE_TO_REPLACE if msg_type == b"G" else reports.RESPONSE_TO_CANCEL
            order = self._find_order(context, message, 41)
            self._reply(context, b"9", reports.cancel_reject(
                b"%d" % order.order_id if order is not None else b"NONE", get(11), get(41),
                order.status if order is not None else STATUS_REJECTED, response_to, reports.OTHER, _THROTTLED,
                now_text))
        elif msg_type == b"q":
            self._reply(context, b"r", reports.mass_cancel_report(
                get(11), self._exec_id(), get(530), b"0", 0, now_text, reject_reason=b"99", text=_THROTTLED))
        else:
            self._reply(context, b"j", admin.business_reject_body(seq_num, msg_type or b"?", 0, _THROTTLED))
        if context.throttle.abusive(now_ns) and context.logout_text is None:
            throttle = context.throttle
            context.logout_text = (f"message rate above {throttle.rate}/s: {throttle.excess_run} messages "
                                   "throttled in a row")

    # ------------------------------------------------------------ helpers

    def _find_order(self, context: SessionContext, message, cl_tag: int) -> OrderState | None:
        order_id = message.get(37)
        if order_id is not None and order_id.isdigit() and len(order_id) < 20:
            order = self.live.get(int(order_id))
            if order is not None and order.context is context:
                return order
        cl_ord_id = message.get(cl_tag)
        return context.orders.get(cl_ord_id) if cl_ord_id is not None else None

    @staticmethod
    def _post_only(exec_inst: bytes | None) -> bool:
        if exec_inst is None:
            return False
        values = exec_inst.split()
        if any(value != b"6" for value in values):
            raise RequestRefused(r.REASON_BAD_COMBINATION, f"ExecInst(18) {shown(exec_inst)} not supported "
                                 "(only 6, post-only)")
        return bool(values)

    @staticmethod
    def _price(units, text: bytes | None, required: bool, name: str) -> int:
        if text is None:
            if required:
                raise RequestRefused(r.REASON_BAD_COMBINATION, f"{name} is required for this order type")
            return 0
        if not required:
            raise RequestRefused(r.REASON_BAD_COMBINATION, f"{name} is not allowed for this order type")
        return units.price_ticks(text, name.split("(")[0])

    def _exec_id(self) -> bytes:
        """ExecID of a reply the gateway makes itself (unique across restarts by the epoch)."""
        self._next_exec += 1
        return b"G%d-%d-%d" % (self.gateway_index, self.epoch, self._next_exec)
