"""Hand-written matching scenarios pinning the reference matcher to docs/SEMANTICS.md.

Each expected event list is spelled out from the document; the differential tests
then hold the Numba engine to the same matcher.  Accounts 0 and 1 have STP off,
2 cancel-resting, 3 cancel-aggressor, 4 cancel-both; account ``a`` uses session
``100 + a``.  Band [50, 150].
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numbex.engine import records as r  # noqa: E402
from oracle import ReferenceMatcher  # noqa: E402
from scenario import Scenario, scenario_spec  # noqa: E402

BUY, SELL = r.SIDE_BUY, r.SIDE_SELL
ACCEPTED, TRADE, CANCELLED, REPLACED = r.EV_ACCEPTED, r.EV_TRADE, r.EV_CANCELLED, r.EV_REPLACED
BOOK_ADD, STOP_TRIGGERED = r.EV_BOOK_ADD, r.EV_STOP_TRIGGERED
ON_BOOK, REDUCED, REMOVED, POST_ONLY = (r.EV_FLAG_ON_BOOK, r.EV_FLAG_REDUCED, r.EV_FLAG_REMOVED,
                                        r.EV_FLAG_POST_ONLY)


@pytest.fixture
def s() -> Scenario:
    return Scenario(ReferenceMatcher(scenario_spec()))


def rest(s: Scenario, order_id: int, side: int, qty: int, price: int, **fields) -> None:
    """Send a NEW that must be accepted and rest untouched."""
    events = s.new(order_id, side, qty, price, **fields)
    assert events == [s.ev(ACCEPTED, order_id, client_ref=s.ref(), price=price, qty=qty, leaves=qty),
                      s.ev(BOOK_ADD, order_id, client_ref=s.ref(), price=price, qty=qty, leaves=qty)]


def trade(s: Scenario, aggressor: int, resting: int, price: int, qty: int, leaves: int, cum: int,
          other_leaves: int, other_cum: int, client_ref: int = 0) -> dict:
    other = s.ev(ACCEPTED, resting)  # the resting order's account and session
    return s.ev(TRADE, aggressor, client_ref=client_ref, other_id=resting,
                other_account=other.get("account", 0), other_session=other["session"], price=price,
                qty=qty, leaves=leaves, cum=cum, other_leaves=other_leaves, other_cum=other_cum)


def replace(s: Scenario, order_id: int, price: int, qty: int, account: int = 0, flags: int = 0):
    return s.send(op=r.OP_REPLACE, order_id=order_id, price=price, qty=qty, account=account, flags=flags)


def test_price_time_priority_partial_fills_and_trade_at_resting_price(s):
    rest(s, 1, SELL, 5, 100)
    rest(s, 2, SELL, 5, 100)
    rest(s, 3, SELL, 5, 99)
    assert s.new(4, BUY, 12, 100, account=1) == [
        s.ev(ACCEPTED, 4, client_ref=s.ref(), price=100, qty=12, leaves=12),
        trade(s, 4, 3, 99, 5, 7, 5, 0, 5, s.ref()),
        trade(s, 4, 1, 100, 5, 2, 10, 0, 5, s.ref()),
        trade(s, 4, 2, 100, 2, 0, 12, 3, 2, s.ref()),
    ]
    assert s.matcher.book(0, SELL) == [(100, [(2, 3)])]
    assert s.matcher.book(0, BUY) == []
    assert s.matcher.last_price(0) == 100
    # A buy limit above the ask trades at the resting price and rests its remainder.
    assert s.new(5, BUY, 10, 105, account=1) == [
        s.ev(ACCEPTED, 5, client_ref=s.ref(), price=105, qty=10, leaves=10),
        trade(s, 5, 2, 100, 3, 7, 3, 0, 5, s.ref()),
        s.ev(BOOK_ADD, 5, client_ref=s.ref(), price=105, qty=7, leaves=7, cum=3),
    ]
    assert s.matcher.book(0, BUY) == [(105, [(5, 7)])]
    assert s.matcher.resting_count == 1


def test_market_order_takes_liquidity_within_band_and_cancels_remainder(s):
    rest(s, 1, SELL, 3, 100)
    rest(s, 2, SELL, 2, 150)  # at the band edge
    market = dict(ord_type=r.ORD_MARKET, account=1)
    assert s.new(3, BUY, 10, 77, **market) == [  # the command's price is not the order's
        s.ev(ACCEPTED, 3, client_ref=s.ref(), qty=10, leaves=10),
        trade(s, 3, 1, 100, 3, 7, 3, 0, 3, s.ref()),
        trade(s, 3, 2, 150, 2, 5, 5, 0, 2, s.ref()),
        s.ev(CANCELLED, 3, client_ref=s.ref(), qty=5, cum=5, reason=r.CAUSE_MARKET_REMAINDER),
    ]
    # Market IOC on an empty side: the market rule comes before the IOC rule.
    assert s.new(4, SELL, 4, tif=r.TIF_IOC, **market) == [
        s.ev(ACCEPTED, 4, client_ref=s.ref(), qty=4, leaves=4),
        s.ev(CANCELLED, 4, client_ref=s.ref(), qty=4, reason=r.CAUSE_MARKET_REMAINDER),
    ]
    # Market FOK that cannot fill is killed by the pre-check.
    assert s.new(5, SELL, 3, tif=r.TIF_FOK, **market) == [
        s.ev(ACCEPTED, 5, client_ref=s.ref(), qty=3, leaves=3),
        s.ev(CANCELLED, 5, client_ref=s.ref(), qty=3, reason=r.CAUSE_FOK),
    ]
    assert s.matcher.resting_count == 0


def test_ioc_trades_what_it_can_and_cancels_the_rest(s):
    rest(s, 1, SELL, 4, 100)
    rest(s, 2, SELL, 5, 101)
    assert s.new(3, BUY, 10, 100, tif=r.TIF_IOC, account=1) == [
        s.ev(ACCEPTED, 3, client_ref=s.ref(), price=100, qty=10, leaves=10),
        trade(s, 3, 1, 100, 4, 6, 4, 0, 4, s.ref()),
        s.ev(CANCELLED, 3, client_ref=s.ref(), price=100, qty=6, cum=4, reason=r.CAUSE_IOC),
    ]
    assert s.matcher.book(0, SELL) == [(101, [(2, 5)])]


def test_fok_fills_completely_or_is_killed_untouched(s):
    rest(s, 1, SELL, 4, 100)
    rest(s, 2, SELL, 5, 101)
    fok = dict(tif=r.TIF_FOK, account=1)
    assert s.new(3, BUY, 10, 101, **fok) == [
        s.ev(ACCEPTED, 3, client_ref=s.ref(), price=101, qty=10, leaves=10),
        s.ev(CANCELLED, 3, client_ref=s.ref(), price=101, qty=10, reason=r.CAUSE_FOK),
    ]
    assert s.new(4, BUY, 5, 100, **fok)[-1] == s.ev(CANCELLED, 4, client_ref=s.ref(), price=100, qty=5,
                                                    reason=r.CAUSE_FOK)
    assert s.matcher.book(0, SELL) == [(100, [(1, 4)]), (101, [(2, 5)])]
    assert s.matcher.last_price(0) == 0
    assert s.new(5, BUY, 9, 101, **fok) == [
        s.ev(ACCEPTED, 5, client_ref=s.ref(), price=101, qty=9, leaves=9),
        trade(s, 5, 1, 100, 4, 5, 4, 0, 4, s.ref()),
        trade(s, 5, 2, 101, 5, 0, 9, 0, 5, s.ref()),
    ]


def test_fok_with_cancel_resting_skips_own_orders_in_the_pre_check(s):
    rest(s, 1, SELL, 4, 100, account=2)
    rest(s, 2, SELL, 3, 100, account=0)
    assert s.new(3, BUY, 4, 100, tif=r.TIF_FOK, account=2) == [
        s.ev(ACCEPTED, 3, client_ref=s.ref(), price=100, qty=4, leaves=4),
        s.ev(CANCELLED, 3, client_ref=s.ref(), price=100, qty=4, reason=r.CAUSE_FOK),
    ]
    assert s.matcher.book(0, SELL) == [(100, [(1, 4), (2, 3)])]
    assert s.new(4, BUY, 3, 100, tif=r.TIF_FOK, account=2) == [
        s.ev(ACCEPTED, 4, client_ref=s.ref(), price=100, qty=3, leaves=3),
        s.ev(CANCELLED, 1, price=100, qty=4, reason=r.CAUSE_STP, flags=ON_BOOK),
        trade(s, 4, 2, 100, 3, 0, 3, 0, 3, s.ref()),
    ]
    assert s.matcher.resting_count == 0


def test_fok_with_cancel_aggressor_counts_only_orders_before_its_own(s):
    rest(s, 1, SELL, 2, 100, account=0)
    rest(s, 2, SELL, 5, 100, account=3)
    rest(s, 3, SELL, 5, 101, account=0)
    assert s.new(4, BUY, 3, 101, tif=r.TIF_FOK, account=3)[1:] == [
        s.ev(CANCELLED, 4, client_ref=s.ref(), price=101, qty=3, reason=r.CAUSE_FOK)]
    assert s.new(5, BUY, 2, 101, tif=r.TIF_FOK, account=3)[1:] == [trade(s, 5, 1, 100, 2, 0, 2, 0, 2, s.ref())]
    assert s.matcher.book(0, SELL) == [(100, [(2, 5)]), (101, [(3, 5)])]


def test_post_only_cancels_when_it_would_cross_and_rests_otherwise(s):
    rest(s, 1, SELL, 5, 100)
    post_only = dict(flags=r.CMD_FLAG_POST_ONLY, account=1)
    assert s.new(2, BUY, 3, 100, **post_only) == [
        s.ev(ACCEPTED, 2, client_ref=s.ref(), price=100, qty=3, leaves=3),
        s.ev(CANCELLED, 2, client_ref=s.ref(), price=100, qty=3, reason=r.CAUSE_POST_ONLY),
    ]
    assert s.ev(ACCEPTED, 2)["flags"] == POST_ONLY
    rest(s, 3, BUY, 3, 99, **post_only)
    assert s.new(4, SELL, 2, 99) == [
        s.ev(ACCEPTED, 4, client_ref=s.ref(), price=99, qty=2, leaves=2),
        trade(s, 4, 3, 99, 2, 0, 2, 1, 2, s.ref()),  # flags are the aggressor's: none
    ]
    assert s.send(op=r.OP_CANCEL, order_id=3, account=1) == [
        s.ev(CANCELLED, 3, client_ref=s.ref(), price=99, qty=1, cum=2, reason=r.CAUSE_USER, flags=ON_BOOK)]


def test_stops_trigger_in_arrival_order_with_cascade(s):
    rest(s, 1, BUY, 2, 98)
    rest(s, 2, BUY, 5, 97)
    assert s.new(10, SELL, 3, ord_type=r.ORD_STOP, stop_price=99, account=1) == [
        s.ev(ACCEPTED, 10, client_ref=s.ref(), qty=3, leaves=3, aux=99)]
    assert s.new(11, SELL, 2, 96, ord_type=r.ORD_STOP_LIMIT, stop_price=97, account=1) == [
        s.ev(ACCEPTED, 11, client_ref=s.ref(), price=96, qty=2, leaves=2, aux=97)]
    assert s.matcher.stops(0) == [10, 11]
    assert s.matcher.stop_count == 2
    assert s.new(4, SELL, 1, 98, account=1) == [
        s.ev(ACCEPTED, 4, client_ref=s.ref(), price=98, qty=1, leaves=1),
        trade(s, 4, 1, 98, 1, 0, 1, 1, 1, s.ref()),
        s.ev(STOP_TRIGGERED, 10, qty=3, leaves=3, aux=99),  # last 98 <= 99
        trade(s, 10, 1, 98, 1, 2, 1, 0, 2),
        trade(s, 10, 2, 97, 2, 0, 3, 3, 2),
        s.ev(STOP_TRIGGERED, 11, price=96, qty=2, leaves=2, aux=97),  # cascade: last 97 <= 97
        trade(s, 11, 2, 97, 2, 0, 2, 1, 4),
    ]
    assert s.matcher.book(0, BUY) == [(97, [(2, 1)])]
    assert s.matcher.stops(0) == []
    assert s.matcher.last_price(0) == 97
    # A stop whose condition already holds triggers at once; its remainder is a market remainder.
    assert s.new(12, SELL, 2, ord_type=r.ORD_STOP, stop_price=98, account=1) == [
        s.ev(ACCEPTED, 12, client_ref=s.ref(), qty=2, leaves=2, aux=98),
        s.ev(STOP_TRIGGERED, 12, client_ref=s.ref(), qty=2, leaves=2, aux=98),
        trade(s, 12, 2, 97, 1, 1, 1, 0, 5, s.ref()),
        s.ev(CANCELLED, 12, client_ref=s.ref(), qty=1, cum=1, reason=r.CAUSE_MARKET_REMAINDER),
    ]
    assert s.matcher.resting_count == 0


def test_first_stop_in_arrival_order_wins_over_better_stop_price(s):
    rest(s, 1, SELL, 5, 101)
    s.new(22, SELL, 1, 140, ord_type=r.ORD_STOP_LIMIT, stop_price=105, account=1)
    s.new(20, BUY, 1, ord_type=r.ORD_STOP, stop_price=101, account=1)
    s.new(21, BUY, 1, ord_type=r.ORD_STOP, stop_price=100, account=1)
    assert s.matcher.stops(0) == [22, 20, 21]
    assert s.new(2, BUY, 1, 101, account=1) == [
        s.ev(ACCEPTED, 2, client_ref=s.ref(), price=101, qty=1, leaves=1),
        trade(s, 2, 1, 101, 1, 0, 1, 4, 1, s.ref()),
        s.ev(STOP_TRIGGERED, 22, price=140, qty=1, leaves=1, aux=105),
        s.ev(BOOK_ADD, 22, price=140, qty=1, leaves=1),  # a stop-limit rests with its limit
        s.ev(STOP_TRIGGERED, 20, qty=1, leaves=1, aux=101),
        trade(s, 20, 1, 101, 1, 0, 1, 3, 2),
        s.ev(STOP_TRIGGERED, 21, qty=1, leaves=1, aux=100),
        trade(s, 21, 1, 101, 1, 0, 1, 2, 3),
    ]
    assert s.matcher.book(0, SELL) == [(101, [(1, 2)]), (140, [(22, 1)])]


def test_triggered_stop_is_cancelled_when_the_book_is_full():
    s = Scenario(ReferenceMatcher(scenario_spec(max_orders=2)))
    rest(s, 2, BUY, 5, 90)
    rest(s, 1, SELL, 1, 100, account=1)
    s.new(10, BUY, 1, 99, ord_type=r.ORD_STOP_LIMIT, stop_price=100, account=1)
    s.new(11, BUY, 1, ord_type=r.ORD_STOP, stop_price=100, account=1)
    # A replace needs no capacity; it trades, which triggers both stops.
    assert replace(s, 2, 100, 5) == [
        s.ev(REPLACED, 2, client_ref=s.ref(), price=100, qty=5, leaves=5, aux=5, flags=REMOVED),
        trade(s, 2, 1, 100, 1, 4, 1, 0, 1, s.ref()),
        s.ev(BOOK_ADD, 2, client_ref=s.ref(), price=100, qty=4, leaves=4, cum=1),
        s.ev(STOP_TRIGGERED, 10, price=99, qty=1, leaves=1, aux=100),
        s.ev(BOOK_ADD, 10, price=99, qty=1, leaves=1),
        s.ev(STOP_TRIGGERED, 11, qty=1, leaves=1, aux=100),
        s.ev(CANCELLED, 11, qty=1, reason=r.CAUSE_BOOK_FULL),  # triggered: aux 0, not on book
    ]
    assert s.matcher.resting_count == 2
    assert s.matcher.stop_count == 0


def test_stp_off_trades_with_itself(s):
    rest(s, 1, SELL, 2, 100)
    assert s.new(2, BUY, 2, 100)[1:] == [trade(s, 2, 1, 100, 2, 0, 2, 0, 2, s.ref())]


def test_stp_cancel_resting(s):
    rest(s, 1, SELL, 3, 100, account=2)
    rest(s, 2, SELL, 3, 100, account=0)
    assert s.new(3, BUY, 4, 100, account=2) == [
        s.ev(ACCEPTED, 3, client_ref=s.ref(), price=100, qty=4, leaves=4),
        s.ev(CANCELLED, 1, price=100, qty=3, reason=r.CAUSE_STP, flags=ON_BOOK),
        trade(s, 3, 2, 100, 3, 1, 3, 0, 3, s.ref()),
        s.ev(BOOK_ADD, 3, client_ref=s.ref(), price=100, qty=1, leaves=1, cum=3),
    ]
    assert s.matcher.book(0, SELL) == []


def test_stp_cancel_aggressor(s):
    rest(s, 1, SELL, 2, 100, account=0)
    rest(s, 2, SELL, 3, 100, account=3)
    rest(s, 3, SELL, 3, 100, account=0)
    assert s.new(4, BUY, 6, 100, account=3) == [
        s.ev(ACCEPTED, 4, client_ref=s.ref(), price=100, qty=6, leaves=6),
        trade(s, 4, 1, 100, 2, 4, 2, 0, 2, s.ref()),
        s.ev(CANCELLED, 4, client_ref=s.ref(), price=100, qty=4, cum=2, reason=r.CAUSE_STP),
    ]
    assert s.matcher.book(0, SELL) == [(100, [(2, 3), (3, 3)])]


def test_stp_cancel_both(s):
    rest(s, 1, SELL, 3, 100, account=4)
    rest(s, 2, SELL, 3, 100, account=0)
    assert s.new(3, BUY, 5, 101, account=4) == [
        s.ev(ACCEPTED, 3, client_ref=s.ref(), price=101, qty=5, leaves=5),
        s.ev(CANCELLED, 1, price=100, qty=3, reason=r.CAUSE_STP, flags=ON_BOOK),
        s.ev(CANCELLED, 3, client_ref=s.ref(), price=101, qty=5, reason=r.CAUSE_STP),
    ]
    assert s.matcher.book(0, SELL) == [(100, [(2, 3)])]


def test_replace_keeps_or_loses_priority_and_finishes_at_or_below_filled(s):
    rest(s, 1, BUY, 10, 100)
    rest(s, 2, BUY, 5, 100)
    assert replace(s, 1, 100, 8) == [
        s.ev(REPLACED, 1, client_ref=s.ref(), price=100, qty=8, leaves=8, aux=10, flags=REDUCED)]
    assert replace(s, 1, 100, 8) == [s.ev(REPLACED, 1, client_ref=s.ref(), price=100, qty=8, leaves=8, aux=8)]
    assert s.matcher.book(0, BUY) == [(100, [(1, 8), (2, 5)])]
    assert replace(s, 1, 100, 12) == [
        s.ev(REPLACED, 1, client_ref=s.ref(), price=100, qty=12, leaves=12, aux=8, flags=REMOVED),
        s.ev(BOOK_ADD, 1, client_ref=s.ref(), price=100, qty=12, leaves=12)]
    assert replace(s, 2, 99, 5) == [
        s.ev(REPLACED, 2, client_ref=s.ref(), price=99, qty=5, leaves=5, aux=5, flags=REMOVED),
        s.ev(BOOK_ADD, 2, client_ref=s.ref(), price=99, qty=5, leaves=5)]
    assert s.matcher.book(0, BUY) == [(100, [(1, 12)]), (99, [(2, 5)])]
    s.new(3, SELL, 4, 100, account=1)
    # qty is the new total: leaves 10 - 4 = 6 <= 8 at the same price keeps priority.
    assert replace(s, 1, 100, 10) == [
        s.ev(REPLACED, 1, client_ref=s.ref(), price=100, qty=10, leaves=6, cum=4, aux=8, flags=REDUCED)]
    assert replace(s, 1, 100, 7, flags=r.CMD_FLAG_QTY_IS_LEAVES) == [
        s.ev(REPLACED, 1, client_ref=s.ref(), price=100, qty=11, leaves=7, cum=4, aux=6, flags=REMOVED),
        s.ev(BOOK_ADD, 1, client_ref=s.ref(), price=100, qty=7, leaves=7, cum=4)]
    assert replace(s, 1, 101, 4) == [
        s.ev(REPLACED, 1, client_ref=s.ref(), price=101, qty=4, cum=4, aux=7, flags=REMOVED)]
    assert s.matcher.book(0, BUY) == [(99, [(2, 5)])]
    assert s.send(op=r.OP_CANCEL, order_id=1) == [
        s.raw(r.EV_CANCEL_REJECTED, order_id=1, client_ref=s.ref(), session=100,
              reason=r.REASON_UNKNOWN_ORDER)]


def test_replace_that_crosses_trades_and_post_only_replace_is_cancelled(s):
    rest(s, 1, BUY, 5, 99)
    rest(s, 2, SELL, 3, 101, account=1)
    assert replace(s, 1, 101, 5) == [
        s.ev(REPLACED, 1, client_ref=s.ref(), price=101, qty=5, leaves=5, aux=5, flags=REMOVED),
        trade(s, 1, 2, 101, 3, 2, 3, 0, 3, s.ref()),
        s.ev(BOOK_ADD, 1, client_ref=s.ref(), price=101, qty=2, leaves=2, cum=3)]
    rest(s, 3, SELL, 2, 105, account=1, flags=r.CMD_FLAG_POST_ONLY)
    assert replace(s, 3, 101, 2, account=1) == [
        s.ev(REPLACED, 3, client_ref=s.ref(), price=101, qty=2, leaves=2, aux=2, flags=REMOVED),
        s.ev(CANCELLED, 3, client_ref=s.ref(), price=101, qty=2, reason=r.CAUSE_POST_ONLY)]
    assert s.matcher.book(0, SELL) == []
    assert s.matcher.book(0, BUY) == [(101, [(1, 2)])]
