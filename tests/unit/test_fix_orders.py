"""FIX order entry over in-memory sessions: NewOrderSingle of every type and TimeInForce,
fills on both sides, partial fills and AvgPx, and the gateway's own rejects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import GatewayHarness, fields, order_body, rest  # noqa: E402

REPORT = (35, 11, 150, 39, 151, 14, 6)


@pytest.fixture()
def harness():
    harness = GatewayHarness()
    yield harness
    for client in harness.clients:
        assert client.rejects() == [], client.rejects()
    assert harness.core.counters["session_rejects"] == 0


def summary(messages, tags=REPORT):
    return [fields(message, *tags) for message in messages]


def test_limit_order_is_acknowledged_with_every_required_field(harness):
    client = harness.client()
    client.send(b"D", order_body("A1", side="1", qty="100", price="99.50", tif="1"))
    harness.pump()
    (report,) = client.take()
    assert fields(report, 35, 11, 150, 39, 54, 55, 38, 40, 44, 59, 151, 14, 6, 1) == (
        "8", "A1", "0", "0", "1", "TEST", "100", "2", "99.50", "1", "100", "0", "0", "ACC1")
    assert report.get(37).isdigit() and report.get(17) and report.get(60)


@pytest.mark.parametrize("tif, expected", [
    (None, [("8", "R1", "0", "0", "10", "0", "0")]),
    ("0", [("8", "R1", "0", "0", "10", "0", "0")]),
    ("1", [("8", "R1", "0", "0", "10", "0", "0")]),
    ("3", [("8", "R1", "0", "0", "10", "0", "0"), ("8", "R1", "4", "4", "0", "0", "0")]),
    ("4", [("8", "R1", "0", "0", "10", "0", "0"), ("8", "R1", "4", "4", "0", "0", "0")]),
])
def test_limit_time_in_force_without_liquidity(harness, tif, expected):
    client = harness.client()
    client.send(b"D", order_body("R1", qty="10", price="99.00", tif=tif))
    harness.pump()
    messages = client.take()
    assert summary(messages) == expected
    if tif in ("3", "4"):
        assert messages[-1].get(58) in (b"IOC remainder cancelled", b"FOK not filled in full")


def test_fills_are_reported_to_both_sides_with_distinct_exec_ids(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1", "2", "100", "100.05")
    buyer.send(b"D", order_body("B1", side="1", qty="30", price="100.10"))
    harness.pump()
    (sell_fill,) = seller.take()
    buy_ack, buy_fill = buyer.take()
    assert fields(buy_ack, 150, 39) == ("0", "0")
    assert fields(sell_fill, 11, 150, 39, 32, 31, 151, 14, 6, 54) == (
        "S1", "F", "1", "30", "100.05", "70", "30", "100.05", "2")
    assert fields(buy_fill, 11, 150, 39, 32, 31, 151, 14, 6, 54) == (
        "B1", "F", "2", "30", "100.05", "0", "30", "100.05", "1")
    assert sell_fill.get(17) != buy_fill.get(17)
    assert sell_fill.get(17)[:-1] == buy_fill.get(17)[:-1]     # one trade, a side suffix each


def test_partial_fills_and_average_price(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1", "2", "30", "100.05")
    rest(harness, seller, "S2", "2", "70", "100.10")
    buyer.send(b"D", order_body("B1", side="1", qty="150", price="100.10", tif="1"))
    harness.pump()
    buys = buyer.take()
    assert summary(buys, (11, 150, 39, 32, 31, 151, 14, 6)) == [
        ("B1", "0", "0", None, None, "150", "0", "0"),
        ("B1", "F", "1", "30", "100.05", "120", "30", "100.05"),
        ("B1", "F", "1", "70", "100.10", "50", "100", "100.085"),
    ]
    assert summary(seller.take(), (11, 150, 39, 151, 14)) == [("S1", "F", "2", "0", "30"), ("S2", "F", "2", "0", "70")]
    exec_ids = [m.get(17) for m in buys]
    assert len(set(exec_ids)) == 3


def test_market_order_fills_and_cancels_the_remainder(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1", "2", "40", "101.00")
    buyer.send(b"D", order_body("M1", side="1", qty="100", ord_type="1", price=None, tif="3"))
    harness.pump()
    messages = buyer.take()
    assert summary(messages, (150, 39, 32, 31, 151, 14, 6)) == [
        ("0", "0", None, None, "100", "0", "0"),
        ("F", "1", "40", "101.00", "60", "40", "101.00"),
        ("4", "4", None, None, "0", "40", "101.00"),
    ]
    assert messages[0].get(44) is None and messages[0].get(40) == b"1"


def test_fill_or_kill_fills_in_full_when_it_can(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1", "2", "100", "100.00")
    buyer.send(b"D", order_body("F1", side="1", qty="60", price="100.00", tif="4"))
    harness.pump()
    assert summary(buyer.take(), (150, 39, 151, 14)) == [("0", "0", "60", "0"), ("F", "2", "0", "60")]


def test_stop_order_waits_then_triggers_and_trades(harness):
    trader, other = harness.client("CLIENT1"), harness.client("CLIENT2")
    trader.send(b"D", order_body("STOP", side="1", qty="10", ord_type="3", price=None, stop="100.50", tif="1"))
    harness.pump()
    (ack,) = trader.take()
    assert fields(ack, 150, 39, 40, 99) == ("0", "0", "3", "100.50")
    assert ack.get(44) is None
    rest(harness, other, "ASK1", "2", "10", "100.50")     # liquidity for the stop, above the trigger
    rest(harness, other, "ASK2", "2", "10", "100.60")
    rest(harness, trader, "BID", "1", "5", "100.40")
    # A trade at 100.50 triggers the buy stop, which buys at the market (ASK2 at 100.60).
    other.send(b"D", order_body("TAKE", side="1", qty="10", price="100.50", tif="3"))
    harness.pump()
    mine = trader.take()
    assert summary(mine, (11, 150, 39, 32, 31, 151)) == [("STOP", "F", "2", "10", "100.60", "0")]


def test_stop_limit_order(harness):
    trader, other = harness.client("CLIENT1"), harness.client("CLIENT2")
    trader.send(b"D", order_body("SL", side="2", qty="10", ord_type="4", price="99.00", stop="99.50", tif="1"))
    harness.pump()
    assert fields(trader.take()[0], 150, 39, 40, 44, 99) == ("0", "0", "4", "99.00", "99.50")
    rest(harness, other, "BID1", "1", "5", "99.50")
    rest(harness, other, "BID2", "1", "20", "99.20")
    trader.send(b"D", order_body("HIT", side="2", qty="5", price="99.50", tif="3"))   # trades at 99.50
    harness.pump()
    reports = summary(trader.take(), (11, 150, 39, 32, 31, 151, 14))
    assert reports[:2] == [("HIT", "0", "0", None, None, "5", "0"), ("HIT", "F", "2", "5", "99.50", "0", "5")]
    assert reports[2:] == [("SL", "F", "2", "10", "99.20", "0", "10")]


def test_post_only_crossing_is_cancelled_and_resting_is_kept(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1", "2", "10", "100.00")
    buyer.send(b"D", order_body("P1", side="1", qty="10", price="100.00", tif="1", exec_inst="6"))
    buyer.send(b"D", order_body("P2", side="1", qty="10", price="99.99", tif="1", exec_inst="6"))
    harness.pump()
    assert summary(buyer.take(), (11, 150, 39, 18, 58)) == [
        ("P1", "0", "0", "6", None), ("P1", "4", "4", "6", "post-only order would cross"),
        ("P2", "0", "0", "6", None)]


@pytest.mark.parametrize("body, code, text", [
    (order_body("X", price="100.001"), "99", "tick size"),
    (order_body("X", symbol="LOTS", qty="150", price="50.00"), "13", "lot size"),
    (order_body("X", symbol="LOTS", qty="100", price="50.01"), "99", "tick size"),
    (order_body("X", symbol="NOPE"), "1", "unknown symbol"),
    (order_body("X", symbol="\u00e9t\u00e9"), "1", "unknown symbol ??t??"),       # non-ASCII bytes
    (order_body("X", symbol=None), "1", "Symbol(55) is required"),
    (order_body("X", ord_type="2", price=None), "11", "Price(44) is required"),
    (order_body("X", ord_type="1", price="100.00"), "11", "Price(44) is not allowed"),
    (order_body("X", ord_type="3", price=None), "11", "StopPx(99) is required"),
    (order_body("X", tif="6"), "11", "TimeInForce(59) 6"),
    (order_body("X", side="5"), "11", "Side(54) 5"),
    (order_body("X", ord_type="P"), "11", "OrdType(40) P"),
    (order_body("X", exec_inst="G"), "11", "ExecInst(18) G"),
    (order_body("X", qty="0"), "13", "must be positive"),
    (order_body("X", extra=b"1=ACC2\x01"), "15", "Account(1) ACC2"),
])
def test_gateway_rejects(harness, body, code, text):
    client = harness.client()
    client.send(b"D", body)
    harness.pump()
    (report,) = client.take()
    assert fields(report, 37, 11, 150, 39, 103, 151, 14, 6) == ("NONE", "X", "8", "8", code, "0", "0", "0")
    assert text in report.get(58).decode()
    assert harness.link.submitted == 0              # never reached the engine


def test_engine_rejects_are_mapped(harness):
    client = harness.client()
    client.send(b"D", order_body("BAND", price="150.00"))     # outside the 10 % band
    client.send(b"D", order_body("BIG", qty="2000000"))        # above max_order_lots
    client.send(b"D", order_body("PO", ord_type="1", price=None, exec_inst="6"))   # post-only market
    harness.pump()
    assert summary(client.take(), (11, 150, 39, 103, 58)) == [
        ("BAND", "8", "8", "99", "price outside the instrument's price band"),
        ("BIG", "8", "8", "3", "quantity above the instrument's maximum"),
        ("PO", "8", "8", "11", "unsupported combination of order attributes"),
    ]


def test_duplicate_cl_ord_id_of_live_and_recent_orders(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1", "2", "10", "100.00")
    seller.send(b"D", order_body("S1", side="2", qty="10", price="100.00"))
    harness.pump()
    assert summary(seller.take(), (11, 150, 39, 103)) == [("S1", "8", "8", "6")]
    buyer.send(b"D", order_body("B1", side="1", qty="10", price="100.00"))
    harness.pump()
    seller.take()
    buyer.take()
    seller.send(b"D", order_body("S1", side="2", qty="10", price="100.00"))   # S1 is filled: still recent
    harness.pump()
    assert summary(seller.take(), (11, 150, 39, 103)) == [("S1", "8", "8", "6")]
    buyer.send(b"D", order_body("S1", side="1", qty="1", price="90.00"))      # another session may use it
    harness.pump()
    assert summary(buyer.take(), (11, 150, 39)) == [("S1", "0", "0")]


def test_expired_day_orders_at_the_close(harness):
    import numpy as np

    from numbex.engine import records as r

    client = harness.client()
    rest(harness, client, "GTC", "1", "10", "99.00")
    client.send(b"D", order_body("DAY", qty="10", price="99.00", tif="0"))
    harness.pump()
    client.take()
    command = np.zeros(1, dtype=r.COMMAND)
    command["op"] = r.OP_SET_STATE
    command["aux"] = r.STATE_CLOSED
    assert harness.link.submit(command) == 1
    harness.pump()
    assert summary(client.take(), (11, 150, 39, 151, 58)) == [("DAY", "C", "C", "0", "expired at the close")]


def test_one_submit_per_batch(harness):
    client = harness.client()
    calls = []
    submit = harness.link.submit
    harness.link.submit = lambda commands: calls.append(len(commands)) or submit(commands)
    for index in range(20):
        client.send(b"D", order_body(f"O{index}", qty="1", price="99.00"))
    harness.pump()
    assert calls == [20]
    assert len(client.take()) == 20


def test_non_ascii_client_values_are_answered(harness):
    client = harness.client()
    client.send(b"D", order_body("\u00c9", qty="1", price="99.00", tif="1"))
    client.send(b"D", order_body("\u00c9", qty="1", price="99.00", tif="1"))
    harness.pump()
    assert [fields(m, 150, 103) for m in client.take()] == [("8", "6"), ("0", None)]
    assert harness.core.counters["internal_errors"] == 0
