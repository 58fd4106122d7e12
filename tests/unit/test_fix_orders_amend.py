"""FIX order entry: OrderCancelRequest, OrderCancelReplaceRequest (priority kept or lost),
OrderStatusRequest and OrderMassCancelRequest, and their rejects."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import GatewayHarness, cancel_body, fields, order_body, replace_body, rest  # noqa: E402


@pytest.fixture()
def harness():
    harness = GatewayHarness()
    yield harness
    for client in harness.clients:
        assert client.rejects() == [], client.rejects()
    assert harness.core.counters["session_rejects"] == 0


def test_cancel_by_orig_cl_ord_id(harness):
    client = harness.client()
    ack = rest(harness, client, "S1")
    client.send(b"F", cancel_body("C1", "S1", side="2"))
    harness.pump()
    (report,) = client.take()
    assert fields(report, 35, 11, 41, 150, 39, 151, 14) == ("8", "C1", "S1", "4", "4", "0", "0")
    assert report.get(37) == ack.get(37)
    client.send(b"F", cancel_body("C2", "S1", side="2"))         # again: the order is done
    harness.pump()
    (reject,) = client.take()
    assert fields(reject, 35, 11, 41, 39, 434, 102) == ("9", "C2", "S1", "4", "1", "0")


def test_cancel_by_order_id(harness):
    client = harness.client()
    ack = rest(harness, client, "S1")
    client.send(b"F", cancel_body("C1", "WRONG", side="2", order_id=ack.get(37).decode()))
    harness.pump()
    assert [fields(m, 11, 41, 150, 39) for m in client.take()] == [("C1", "WRONG", "4", "4")]


def test_cancel_and_replace_of_unknown_orders(harness):
    client = harness.client()
    client.send(b"F", cancel_body("C1", "NOPE"))
    client.send(b"G", replace_body("R1", "NOPE", "10", "100.00"))
    harness.pump()
    assert [fields(m, 35, 37, 11, 41, 39, 434, 102, 58) for m in client.take()] == [
        ("9", "NONE", "C1", "NOPE", "8", "1", "1", "unknown order"),
        ("9", "NONE", "R1", "NOPE", "8", "2", "1", "unknown order"),
    ]


def test_a_session_cannot_touch_another_sessions_orders(harness):
    owner, intruder = harness.client("CLIENT1"), harness.client("CLIENT2")
    ack = rest(harness, owner, "S1")
    intruder.send(b"F", cancel_body("X1", "S1", side="2"))
    intruder.send(b"F", cancel_body("X2", "S1", side="2", order_id=ack.get(37).decode()))
    intruder.send(b"G", replace_body("X3", "S1", "10", "100.00", side="2"))
    intruder.send(b"H", b"11=S1\x0155=TEST\x0154=2\x01")
    harness.pump()
    replies = intruder.take()
    assert [fields(m, 35, 434, 102) for m in replies[:3]] == [("9", "1", "1"), ("9", "1", "1"), ("9", "2", "1")]
    assert fields(replies[3], 35, 150, 39) == ("8", "I", "8")
    assert owner.take() == []
    owner.send(b"H", b"11=S1\x0155=TEST\x0154=2\x01")
    harness.pump()
    assert [fields(m, 150, 39, 151) for m in owner.take()] == [("I", "0", "100")]


def test_replace_keeping_priority(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1")
    rest(harness, seller, "S2")
    seller.send(b"G", replace_body("S1b", "S1", "50", "100.00", side="2"))   # smaller, same price
    harness.pump()
    assert [fields(m, 11, 41, 150, 39, 38, 151, 14, 44) for m in seller.take()] == [
        ("S1b", "S1", "5", "0", "50", "50", "0", "100.00")]
    buyer.send(b"D", order_body("B1", side="1", qty="50", price="100.00"))
    harness.pump()
    assert [fields(m, 11, 150, 39, 32) for m in seller.take()] == [("S1b", "F", "2", "50")]   # S1 still first


def test_replace_losing_priority(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1")
    rest(harness, seller, "S2")
    seller.send(b"G", replace_body("S1b", "S1", "200", "100.00", side="2"))  # larger: to the back
    harness.pump()
    assert [fields(m, 11, 41, 150, 39, 38, 151) for m in seller.take()] == [("S1b", "S1", "5", "0", "200", "200")]
    buyer.send(b"D", order_body("B1", side="1", qty="100", price="100.00"))
    harness.pump()
    assert [fields(m, 11, 150, 39, 32) for m in seller.take()] == [("S2", "F", "2", "100")]


def test_replace_price_change_that_crosses_trades(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1", price="100.10")
    rest(harness, buyer, "B1", side="1", qty="40", price="100.00")
    seller.send(b"G", replace_body("S1b", "S1", "100", "100.00", side="2"))
    harness.pump()
    assert [fields(m, 11, 150, 39, 32, 31, 151, 14, 6) for m in seller.take()] == [
        ("S1b", "5", "0", None, None, "100", "0", "0"),
        ("S1b", "F", "1", "40", "100.00", "60", "40", "100.00")]
    assert [fields(m, 11, 150, 39) for m in buyer.take()] == [("B1", "F", "2")]


def test_replace_down_to_the_executed_quantity_fills_the_order(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, seller, "S1")
    buyer.send(b"D", order_body("B1", side="1", qty="30", price="100.00"))
    harness.pump()
    seller.take()
    seller.send(b"G", replace_body("S1b", "S1", "30", "100.00", side="2"))
    harness.pump()
    assert [fields(m, 11, 150, 39, 38, 151, 14) for m in seller.take()] == [("S1b", "5", "2", "30", "0", "30")]


@pytest.mark.parametrize("body, text", [
    (replace_body("R", "S1", "10", "100.00", side="1"), "Side(54) does not match"),
    (replace_body("R", "S1", "10", "100.00", side="2", ord_type="1"), "OrdType(40) cannot be changed"),
    (replace_body("R", "S1", "10", "100.00", side="2", extra=b"59=3\x01"), "TimeInForce(59) cannot be changed"),
    (replace_body("R", "S1", "10", "100.00", side="2", symbol="LOTS"), "Symbol(55) does not match"),
    (replace_body("R", "S1", "10", "100.001", side="2"), "tick size"),
    (replace_body("R", "S1", "10", None, side="2"), "Price(44) is required"),
    (replace_body("S1", "S1", "10", "100.00", side="2"), "duplicate ClOrdID"),
])
def test_replace_rejected_by_the_gateway(harness, body, text):
    client = harness.client()
    rest(harness, client, "S1")
    client.send(b"G", body)
    harness.pump()
    (reject,) = client.take()
    assert fields(reject, 35, 41, 39, 434) == ("9", "S1", "0", "2")
    assert text in reject.get(58).decode()


def test_replace_rejected_by_the_engine(harness):
    client = harness.client()
    client.send(b"D", order_body("STOP", side="1", qty="10", ord_type="3", price=None, stop="100.50", tif="1"))
    harness.pump()
    client.take()
    rest(harness, client, "S1")
    client.send(b"G", replace_body("R1", "STOP", "20", None, side="1", ord_type="3"))     # untriggered stop
    client.send(b"G", replace_body("R2", "S1", "10", "150.00", side="2"))                 # outside the band
    harness.pump()
    assert [fields(m, 35, 11, 41, 39, 434, 102, 58) for m in client.take()] == [
        ("9", "R1", "STOP", "0", "2", "99", "order cannot be replaced (untriggered stop)"),
        ("9", "R2", "S1", "0", "2", "99", "price outside the instrument's price band")]


def test_order_status_requests(harness):
    seller, buyer = harness.client("CLIENT1"), harness.client("CLIENT2")
    ack = rest(harness, seller, "S1")
    buyer.send(b"D", order_body("B1", side="1", qty="30", price="100.00"))
    harness.pump()
    seller.take()
    buyer.take()
    seller.send(b"H", b"37=%s\x0111=S1\x01790=Q1\x0155=TEST\x0154=2\x01" % ack.get(37))
    seller.send(b"H", b"11=NOPE\x0155=TEST\x0154=2\x01")
    buyer.send(b"H", b"11=B1\x0155=TEST\x0154=1\x01")
    harness.pump()
    assert [fields(m, 11, 790, 150, 39, 151, 14, 6) for m in seller.take()] == [
        ("S1", "Q1", "I", "1", "70", "30", "100.00"), ("NOPE", None, "I", "8", "0", "0", "0")]
    assert [fields(m, 11, 150, 39, 151, 14) for m in buyer.take()] == [("B1", "I", "2", "0", "30")]


def test_status_request_in_the_same_batch_as_the_order_sees_the_engine_answer(harness):
    client = harness.client()
    client.send(b"D", order_body("A1", qty="10", price="99.00"))
    client.send(b"H", b"11=A1\x0155=TEST\x0154=1\x01")
    harness.pump()
    assert [fields(m, 11, 150, 39) for m in client.take()] == [("A1", "0", "0"), ("A1", "I", "0")]


def test_mass_cancel_of_all_own_orders(harness):
    mine, other = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, mine, "S1")
    rest(harness, mine, "S2", symbol="LOTS", qty="100", price="50.00")
    rest(harness, mine, "B1", side="1", price="99.00")
    rest(harness, other, "O1")
    mine.send(b"q", b"11=MC1\x01530=7\x0160=20240301-12:00:00.000\x01")
    harness.pump()
    replies = mine.take()
    assert sorted(fields(m, 11, 150, 39, 58) for m in replies[:-1]) == [
        ("B1", "4", "4", "mass cancel"), ("S1", "4", "4", "mass cancel"), ("S2", "4", "4", "mass cancel")]
    assert fields(replies[-1], 35, 11, 530, 531, 533) == ("r", "MC1", "7", "7", "3")
    assert other.take() == []
    other.send(b"H", b"11=O1\x0155=TEST\x0154=2\x01")
    harness.pump()
    assert fields(other.take()[0], 39) == ("0",)


def test_mass_cancel_by_symbol_and_side(harness):
    client = harness.client()
    rest(harness, client, "S1")
    rest(harness, client, "B1", side="1", price="99.00")
    rest(harness, client, "L1", symbol="LOTS", qty="100", price="50.00")
    client.send(b"q", b"11=MC1\x01530=1\x0155=TEST\x0154=2\x0160=20240301-12:00:00.000\x01")
    harness.pump()
    replies = client.take()
    assert [fields(m, 35, 11, 150) for m in replies[:-1]] == [("8", "S1", "4")]
    assert fields(replies[-1], 35, 530, 531, 533, 55, 54) == ("r", "1", "1", "1", "TEST", "2")


@pytest.mark.parametrize("body, reason", [
    (b"11=MC1\x01530=3\x0160=20240301-12:00:00.000\x01", "0"),
    (b"11=MC1\x01530=1\x0155=NOPE\x0160=20240301-12:00:00.000\x01", "1"),
    (b"11=MC1\x01530=1\x0160=20240301-12:00:00.000\x01", "1"),
])
def test_mass_cancel_rejected(harness, body, reason):
    client = harness.client()
    client.send(b"q", body)
    harness.pump()
    (report,) = client.take()
    assert fields(report, 35, 11, 531, 532, 533) == ("r", "MC1", "0", reason, "0")
