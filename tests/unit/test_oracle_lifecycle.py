"""Mass cancel, instrument states and every reject reason of the reference matcher.

Companion of test_oracle_scenarios.py (same accounts, sessions and band).
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numbex.engine import records as r  # noqa: E402
from oracle import ReferenceMatcher  # noqa: E402
from scenario import Scenario, scenario_spec  # noqa: E402

BUY, SELL = r.SIDE_BUY, r.SIDE_SELL
CANCELLED, ON_BOOK = r.EV_CANCELLED, r.EV_FLAG_ON_BOOK
ALL_ORDER_IDS = [2, 3, 1, 5, 4, 6, 7, 8, 9]  # the mass-cancel order of populated()


def populated() -> Scenario:
    """Two instruments with bids, asks and stops of accounts 0 and 1."""
    s = Scenario(ReferenceMatcher(scenario_spec(n_instruments=2)))
    s.new(1, BUY, 1, 99)
    s.new(2, BUY, 1, 100, account=1)
    s.new(3, BUY, 1, 100, session=105)
    s.new(4, SELL, 1, 103)
    s.new(5, SELL, 1, 102, account=1)
    s.new(6, SELL, 1, ord_type=r.ORD_STOP, stop_price=95)
    s.new(7, BUY, 1, ord_type=r.ORD_STOP, stop_price=105, account=1)
    s.new(8, BUY, 1, 100, symbol=1)
    s.new(9, SELL, 1, 101, symbol=1, account=1)
    assert s.matcher.resting_count == 7 and s.matcher.stop_count == 2
    return s


def cancelled_ids(events: list[dict]) -> list[int]:
    return [event["order_id"] for event in events if event["kind"] == CANCELLED]


def mass_cancel(s: Scenario, symbol=r.ALL_SYMBOLS, side=r.SIDE_BOTH, account=r.ALL_ACCOUNTS,
                session_filter=-1, **fields) -> list[dict]:
    return s.send(op=r.OP_MASS_CANCEL, symbol=symbol, side=side, account=account, aux=session_filter,
                  session=42, **fields)


def test_mass_cancel_everything_in_documented_order():
    s = populated()
    events = mass_cancel(s)
    expected = [s.ev(CANCELLED, order_id, price=price, qty=1, reason=r.CAUSE_MASS, flags=ON_BOOK)
                for order_id, price in [(2, 100), (3, 100), (1, 99), (5, 102), (4, 103)]]
    expected += [s.ev(CANCELLED, 6, qty=1, aux=95, reason=r.CAUSE_MASS),
                 s.ev(CANCELLED, 7, qty=1, aux=105, reason=r.CAUSE_MASS),
                 s.ev(CANCELLED, 8, price=100, qty=1, reason=r.CAUSE_MASS, flags=ON_BOOK),
                 s.ev(CANCELLED, 9, price=101, qty=1, reason=r.CAUSE_MASS, flags=ON_BOOK),
                 s.raw(r.EV_MASS_CANCEL_DONE, client_ref=s.ref(), account=r.ALL_ACCOUNTS, session=42,
                       symbol=r.ALL_SYMBOLS, side=r.SIDE_BOTH, aux=-1, qty=9)]
    assert events == expected
    assert s.matcher.resting_count == 0 and s.matcher.stop_count == 0


@pytest.mark.parametrize(("filters", "expected_ids"), [
    (dict(side=BUY), [2, 3, 1, 7, 8]),
    (dict(side=SELL), [5, 4, 6, 9]),
    (dict(account=1), [2, 5, 7, 9]),
    (dict(account=0), [3, 1, 4, 6, 8]),
    (dict(session_filter=105), [3]),
    (dict(session_filter=100), [1, 4, 6, 8]),
    (dict(symbol=1), [8, 9]),
    (dict(symbol=0, side=BUY, account=0), [3, 1]),
    (dict(account=77), []),
    (dict(session_filter=-2), []),
])
def test_mass_cancel_filters(filters, expected_ids):
    s = populated()
    events = mass_cancel(s, **filters)
    assert cancelled_ids(events) == expected_ids
    assert events[-1]["kind"] == r.EV_MASS_CANCEL_DONE and events[-1].get("qty", 0) == len(expected_ids)
    remaining = {order_id for symbol in (0, 1) for side in (BUY, SELL)
                 for _, level in s.matcher.book(symbol, side) for order_id, _ in level}
    remaining |= set(s.matcher.stops(0)) | set(s.matcher.stops(1))
    assert remaining == set(ALL_ORDER_IDS) - set(expected_ids)


def test_mass_cancel_client_ref_follows_the_order_id_rule():
    s = populated()
    events = mass_cancel(s, symbol=1, order_id=9)
    assert [event.get("client_ref", 0) for event in events] == [0, s.ref(), s.ref()]


@pytest.mark.parametrize(("fields", "reason"), [
    (dict(symbol=2), r.REASON_UNKNOWN_INSTRUMENT),
    (dict(side=3), r.REASON_BAD_SIDE),
    (dict(symbol=9, side=3), r.REASON_UNKNOWN_INSTRUMENT),
])
def test_mass_cancel_rejects(fields, reason):
    s = populated()
    events = mass_cancel(s, **{"symbol": 0, **fields, "stop_price": 7})
    assert events == [s.raw(r.EV_REJECTED, client_ref=s.ref(), account=r.ALL_ACCOUNTS, session=42,
                            symbol=fields.get("symbol", 0), side=fields["side"] if "side" in fields
                            else r.SIDE_BOTH, aux=7, reason=reason)]
    assert s.matcher.resting_count == 7


def set_state(s: Scenario, state: int, symbol: int = 0, flags: int = 0, **fields) -> list[dict]:
    return s.send(op=r.OP_SET_STATE, symbol=symbol, aux=state, flags=flags, **fields)


def test_halt_blocks_new_and_replace_but_not_cancel_then_resume():
    s = Scenario(ReferenceMatcher(scenario_spec()))
    s.new(1, BUY, 5, 100)
    s.new(2, SELL, 5, 105, tif=r.TIF_DAY)
    assert set_state(s, r.STATE_HALTED) == [
        s.raw(r.EV_STATE_CHANGED, client_ref=s.ref(), session=100, aux=r.STATE_HALTED)]
    assert s.new(3, BUY, 1, 100)[0]["reason"] == r.REASON_HALTED
    assert s.send(op=r.OP_REPLACE, order_id=1, price=101, qty=5) == [
        s.raw(r.EV_REPLACE_REJECTED, order_id=1, client_ref=s.ref(), session=100, price=101, qty=5,
              reason=r.REASON_HALTED)]
    assert s.send(op=r.OP_CANCEL, order_id=1) == [
        s.ev(CANCELLED, 1, client_ref=s.ref(), price=100, qty=5, reason=r.CAUSE_USER, flags=ON_BOOK)]
    assert s.matcher.book(0, SELL) == [(105, [(2, 5)])]  # a halt expires nothing
    assert set_state(s, r.STATE_OPEN) == [s.raw(r.EV_STATE_CHANGED, client_ref=s.ref(), session=100)]
    assert s.new(3, BUY, 1, 100)[-1]["kind"] == r.EV_BOOK_ADD


def test_close_expires_day_orders_and_stops_in_mass_cancel_order():
    s = Scenario(ReferenceMatcher(scenario_spec()))
    s.new(1, BUY, 5, 100)
    s.new(2, BUY, 5, 99, tif=r.TIF_DAY)
    s.new(3, SELL, 5, 105, tif=r.TIF_DAY)
    s.new(4, SELL, 5, ord_type=r.ORD_STOP, stop_price=90, tif=r.TIF_DAY)
    s.new(5, BUY, 5, ord_type=r.ORD_STOP, stop_price=110)
    assert set_state(s, r.STATE_CLOSED, account=1, session=7) == [
        s.ev(CANCELLED, 2, price=99, qty=5, reason=r.CAUSE_EXPIRED, flags=ON_BOOK),
        s.ev(CANCELLED, 3, price=105, qty=5, reason=r.CAUSE_EXPIRED, flags=ON_BOOK),
        s.ev(CANCELLED, 4, qty=5, aux=90, reason=r.CAUSE_EXPIRED),
        s.raw(r.EV_STATE_CHANGED, client_ref=s.ref(), account=1, session=7, aux=r.STATE_CLOSED, qty=3)]
    assert s.new(6, BUY, 1, 100)[0]["reason"] == r.REASON_CLOSED
    assert s.send(op=r.OP_REPLACE, order_id=1, price=100, qty=1)[0]["reason"] == r.REASON_CLOSED
    assert s.send(op=r.OP_CANCEL, order_id=5) == [
        s.ev(CANCELLED, 5, client_ref=s.ref(), qty=5, aux=110, reason=r.CAUSE_USER)]
    assert s.matcher.book(0, BUY) == [(100, [(1, 5)])]


@pytest.mark.parametrize("state", [r.STATE_HALTED, r.STATE_CLOSED, r.STATE_OPEN])
def test_cancel_all_cancels_every_order_of_the_instrument_with_cause_halt(state):
    s = Scenario(ReferenceMatcher(scenario_spec(n_instruments=2)))
    s.new(1, SELL, 2, 101)
    s.new(2, BUY, 2, 99, tif=r.TIF_DAY)
    s.new(3, BUY, 2, ord_type=r.ORD_STOP, stop_price=120)
    s.new(4, BUY, 2, 99, symbol=1)
    assert set_state(s, state, flags=r.CMD_FLAG_CANCEL_ALL) == [
        s.ev(CANCELLED, 2, price=99, qty=2, reason=r.CAUSE_HALT, flags=ON_BOOK),
        s.ev(CANCELLED, 1, price=101, qty=2, reason=r.CAUSE_HALT, flags=ON_BOOK),
        s.ev(CANCELLED, 3, qty=2, aux=120, reason=r.CAUSE_HALT),
        s.raw(r.EV_STATE_CHANGED, client_ref=s.ref(), session=100, aux=state, qty=3)]
    assert s.matcher.resting_count == 1 and s.matcher.book(1, BUY) == [(99, [(4, 2)])]


@pytest.mark.parametrize(("fields", "reason"), [
    (dict(symbol=1), r.REASON_UNKNOWN_INSTRUMENT),
    (dict(symbol=r.ALL_SYMBOLS), r.REASON_UNKNOWN_INSTRUMENT),
    (dict(aux=3), r.REASON_BAD_STATE),
    (dict(aux=-1), r.REASON_BAD_STATE),
    (dict(symbol=1, aux=3), r.REASON_UNKNOWN_INSTRUMENT),
])
def test_set_state_rejects(fields, reason):
    s = Scenario(ReferenceMatcher(scenario_spec()))
    command = {**dict(op=r.OP_SET_STATE, symbol=0, aux=r.STATE_HALTED, order_id=5, price=3, qty=4,
                      stop_price=6, side=1, ord_type=2, tif=3, account=2), **fields}
    copied = {name: command[name] for name in ("order_id", "price", "qty", "symbol", "side",
                                                "ord_type", "tif", "account")}
    assert s.send(**command) == [s.raw(r.EV_REJECTED, client_ref=s.ref(), session=102, aux=6,
                                       reason=reason, **copied)]


LIMIT = dict(op=r.OP_NEW, order_id=20, side=BUY, qty=5, price=100)
STOP = dict(LIMIT, ord_type=r.ORD_STOP, price=0, stop_price=100)
POST = dict(LIMIT, flags=r.CMD_FLAG_POST_ONLY)


@pytest.mark.parametrize(("command", "reason"), [
    (dict(LIMIT, order_id=0, symbol=9), r.REASON_BAD_ORDER_ID),
    (dict(LIMIT, symbol=9, account=99), r.REASON_UNKNOWN_INSTRUMENT),
    (dict(LIMIT, symbol=r.ALL_SYMBOLS), r.REASON_UNKNOWN_INSTRUMENT),
    (dict(LIMIT, account=99, order_id=7), r.REASON_UNKNOWN_ACCOUNT),
    (dict(LIMIT, order_id=7, side=5), r.REASON_DUPLICATE_ORDER_ID),
    (dict(LIMIT, order_id=8, qty=0), r.REASON_DUPLICATE_ORDER_ID),  # live stop
    (dict(LIMIT, side=2, ord_type=4), r.REASON_BAD_SIDE),
    (dict(LIMIT, ord_type=4, tif=4), r.REASON_BAD_ORDER_TYPE),
    (dict(LIMIT, tif=4, qty=0), r.REASON_BAD_TIF),
    (dict(LIMIT, qty=0, price=1), r.REASON_BAD_QUANTITY),
    (dict(LIMIT, qty=-5), r.REASON_BAD_QUANTITY),
    (dict(LIMIT, qty=1001, price=1), r.REASON_QTY_ABOVE_MAX),
    (dict(LIMIT, price=49), r.REASON_OUTSIDE_BAND),
    (dict(LIMIT, price=151), r.REASON_OUTSIDE_BAND),
    (dict(LIMIT, price=-100), r.REASON_OUTSIDE_BAND),
    (dict(STOP, ord_type=r.ORD_STOP_LIMIT, stop_price=200), r.REASON_OUTSIDE_BAND),
    (dict(STOP, ord_type=r.ORD_STOP_LIMIT, price=0), r.REASON_OUTSIDE_BAND),
    (dict(STOP, stop_price=10, flags=r.CMD_FLAG_POST_ONLY), r.REASON_OUTSIDE_BAND),
    (dict(POST, ord_type=r.ORD_MARKET), r.REASON_BAD_COMBINATION),
    (dict(POST, tif=r.TIF_IOC), r.REASON_BAD_COMBINATION),
    (dict(POST, tif=r.TIF_FOK), r.REASON_BAD_COMBINATION),
    (dict(POST, ord_type=r.ORD_STOP_LIMIT, stop_price=100), r.REASON_BAD_COMBINATION),
    (dict(POST, ord_type=r.ORD_STOP, stop_price=100), r.REASON_BAD_COMBINATION),
    (dict(op=0, order_id=20, qty=3), r.REASON_UNKNOWN_OP),
    (dict(op=6), r.REASON_UNKNOWN_OP),
    (dict(op=255, order_id=7, price=-3, symbol=70), r.REASON_UNKNOWN_OP),
])
def test_new_and_unknown_op_rejects_copy_the_command(command, reason):
    s = Scenario(ReferenceMatcher(scenario_spec()))
    s.new(7, SELL, 1, 140)
    s.new(8, SELL, 1, ord_type=r.ORD_STOP, stop_price=60)
    command = dict(command, client_ref=999, session=31)
    copied = {name: command.get(name, 0) for name in ("order_id", "price", "qty", "symbol", "side",
                                                      "ord_type", "tif", "account")}
    assert s.send(**command) == [s.raw(r.EV_REJECTED, client_ref=999, session=31,
                                       aux=command.get("stop_price", 0), reason=reason, **copied)]
    assert s.matcher.resting_count == 1 and s.matcher.stop_count == 1


def test_new_rejects_when_halted_before_checking_quantity():
    s = Scenario(ReferenceMatcher(scenario_spec()))
    set_state(s, r.STATE_HALTED)
    assert s.new(1, BUY, 0, 100)[0]["reason"] == r.REASON_HALTED


def test_capacity_rejects_book_full_and_stops_full():
    s = Scenario(ReferenceMatcher(scenario_spec(max_orders=1, max_stops=1)))
    s.new(1, SELL, 5, 120)
    assert s.new(2, BUY, 1, 100)[0]["reason"] == r.REASON_BOOK_FULL
    assert s.new(2, BUY, 1, ord_type=r.ORD_MARKET)[0]["reason"] == r.REASON_BOOK_FULL
    assert s.new(3, BUY, 1, ord_type=r.ORD_STOP, stop_price=130)[0]["kind"] == r.EV_ACCEPTED
    assert s.new(4, BUY, 1, ord_type=r.ORD_STOP, stop_price=130)[0]["reason"] == r.REASON_STOPS_FULL
    s.send(op=r.OP_CANCEL, order_id=1)
    assert s.new(2, BUY, 1, 100)[-1]["kind"] == r.EV_BOOK_ADD


def test_cancel_rejects():
    s = Scenario(ReferenceMatcher(scenario_spec()))
    s.new(1, BUY, 5, 100)
    for order_id, reason in [(0, r.REASON_UNKNOWN_ORDER), (2, r.REASON_UNKNOWN_ORDER),
                             (1, r.REASON_NOT_OWNER)]:
        events = s.send(op=r.OP_CANCEL, order_id=order_id, account=1, symbol=3, side=1, price=7)
        assert events == [s.raw(r.EV_CANCEL_REJECTED, order_id=order_id, client_ref=s.ref(), account=1,
                                session=101, symbol=3, side=1, reason=reason)]
    assert s.matcher.resting_count == 1


@pytest.mark.parametrize(("fields", "reason"), [
    (dict(order_id=0), r.REASON_UNKNOWN_ORDER),
    (dict(order_id=9), r.REASON_UNKNOWN_ORDER),
    (dict(account=1, qty=0), r.REASON_NOT_OWNER),
    (dict(order_id=2, qty=0), r.REASON_NOT_REPLACEABLE),
    (dict(qty=0, flags=r.CMD_FLAG_QTY_IS_LEAVES), r.REASON_BAD_QUANTITY),
    (dict(qty=-1, price=999), r.REASON_BAD_QUANTITY),
    (dict(qty=1001, price=999), r.REASON_QTY_ABOVE_MAX),
    (dict(price=151), r.REASON_OUTSIDE_BAND),
    (dict(price=49, qty=1), r.REASON_OUTSIDE_BAND),
])
def test_replace_rejects(fields, reason):
    s = Scenario(ReferenceMatcher(scenario_spec()))
    s.new(1, BUY, 5, 100)
    s.new(2, BUY, 5, ord_type=r.ORD_STOP, stop_price=120)
    command = {**dict(op=r.OP_REPLACE, order_id=1, price=101, qty=5, account=0, symbol=0, side=0), **fields}
    command.setdefault("session", 100 + command["account"])
    events = s.send(**command)
    assert events == [s.raw(r.EV_REPLACE_REJECTED, client_ref=s.ref(), reason=reason,
                            **{name: command[name] for name in ("order_id", "price", "qty", "account",
                                                                "session", "symbol", "side")})]
    assert s.matcher.book(0, BUY) == [(100, [(1, 5)])] and s.matcher.stops(0) == [2]
