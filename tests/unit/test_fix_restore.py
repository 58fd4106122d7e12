"""A restarted gateway rebuilds its open orders from the ExecutionReports in the session stores.

The harness's ``restart`` drops the gateway core (its memory is gone, as after a crash)
and builds a new one on the same engine and the same stores.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import GatewayHarness, cancel_body, fields, order_body, replace_body  # noqa: E402

from numbex.server.fix_restore import report_fields  # noqa: E402


def resent(client) -> list:
    """Application messages the client received, as (ClOrdID, ExecType, OrdStatus, CumQty, LeavesQty, AvgPx)."""
    return [fields(m, 11, 150, 39, 14, 151, 6) for m in client.take()]


def test_open_orders_come_back_and_report_later_fills():
    harness = GatewayHarness()
    keep = harness.client("KEEP")                    # no cancel-on-disconnect: orders outlive the run
    buyer = harness.client("CLIENT2")
    keep.send(b"D", order_body("R1", side="2", qty="10", price="100.00", tif="1"))
    keep.send(b"D", order_body("R2", side="2", qty="5", price="101.00", tif="1"))
    keep.send(b"D", order_body("R3", side="2", qty="1", price="102.00", tif="1"))
    harness.pump()
    buyer.send(b"D", order_body("B1", side="1", qty="4", price="100.00", tif="3"))
    keep.send(b"G", replace_body("R2b", "R2", "3", "101.50", side="2"))
    keep.send(b"F", cancel_body("C3", "R3", side="2"))
    harness.pump()
    assert [row[:3] for row in resent(keep)] == [
        ("R1", "0", "0"), ("R2", "0", "0"), ("R3", "0", "0"), ("R1", "F", "1"), ("R2b", "5", "0"), ("C3", "4", "4")]
    keep_store, buyer_store = keep.store, buyer.store

    harness.restart()
    assert harness.restored == 2
    live = {order.cl_ord_id: order for order in harness.core.entry.live.values()}
    assert sorted(live) == [b"R1", b"R2b"]
    assert (live[b"R1"].cum, live[b"R1"].leaves, live[b"R1"].notional) == (4, 6, 4 * 10000)
    assert (live[b"R2b"].qty, live[b"R2b"].price, live[b"R2b"].orig_cl_ord_id) == (3, 10150, b"R2")

    # a fill while KEEP is away is reported (stored, resent after its Logon) with the true totals
    buyer = harness.client("CLIENT2", store=buyer_store)
    buyer.send(b"D", order_body("B2", side="1", qty="6", price="100.00", tif="3"))
    harness.pump()
    keep = harness.client("KEEP", store=keep_store)
    rows = resent(keep)
    assert ("R1", "F", "2", "10", "0", "100.00") in rows, rows
    fill = [m for m in harness.stores["KEEP"].sent_messages(1, 1 << 30) if b"150=F" in m.body][-1]
    assert report_fields(fill.body)[32] == b"6"
    # the restored order can be replaced and cancelled by its ClOrdIDs; finished ones stay duplicates
    keep.send(b"F", cancel_body("C2", "R2b", side="2"))
    keep.send(b"D", order_body("R3", side="2", qty="1", price="102.00", tif="1"))
    harness.pump()
    # (the duplicate is refused by the gateway at once, ahead of the engine's answer to the cancel)
    assert [fields(m, 11, 41, 150, 39, 103) for m in keep.take()] == [
        ("R3", None, "8", "8", "6"), ("C2", "R2b", "4", "4", None)]
    assert keep.rejects() == []
    assert not harness.core.entry.live


def test_stale_orders_of_a_dead_run_are_cancelled_with_reports():
    harness = GatewayHarness()
    seller = harness.client("CLIENT1")               # cancel-on-disconnect (the default)
    buyer = harness.client("CLIENT2")
    seller.send(b"D", order_body("S1", side="2", qty="10", price="100.00", tif="1"))
    seller.send(b"D", order_body("S2", side="2", qty="3", price="100.50", tif="1"))
    harness.pump()
    buyer.send(b"D", order_body("B1", side="1", qty="4", price="100.00", tif="3"))
    harness.pump()
    seller.take()
    seller_store = seller.store

    harness.restart()                                # the engine still holds S1 (6 left) and S2
    assert harness.restored == 2 and not harness.core.entry.live
    seller = harness.client("CLIENT1", store=seller_store)
    rows = resent(seller)
    assert sorted(rows) == [("S1", "4", "4", "4", "0", "100.00"), ("S2", "4", "4", "0", "0", "0")]
    assert seller.rejects() == []


def test_a_report_it_cannot_read_is_skipped_not_fatal():
    harness = GatewayHarness()
    client = harness.client("CLIENT1")
    client.send(b"D", order_body("A1", side="1", qty="5", price="99.00", tif="1"))
    harness.pump()
    store = harness.stores["CLIENT1"]
    store.store_sent(store.next_sender_seq_num, b"8", b"20240301-12:00:00.000", b"37=77\x0111=X\x01150=0\x0139=0\x01")
    store.store_sent(store.next_sender_seq_num, b"8", b"20240301-12:00:00.000",
                     b"37=78\x0111=Y\x01150=0\x0139=0\x0155=TEST\x0154=9\x0138=5\x0140=2\x0159=1\x01")
    harness.restart(cancel_stale_orders=False)
    assert [order.cl_ord_id for order in harness.core.entry.live.values()] == [b"A1"]


def test_reports_of_a_reset_session_are_gone():
    harness = GatewayHarness()
    client = harness.client("KEEP")
    client.send(b"D", order_body("K1", side="1", qty="5", price="99.00", tif="1"))
    harness.pump()
    harness.stores["KEEP"].reset()                   # e.g. a Logon with ResetSeqNumFlag=Y
    harness.restart(cancel_stale_orders=False)
    assert harness.restored == 0 and not harness.core.entry.live


class GatewayDied(Exception):
    """Stands for the gateway process dying at that point."""


def die_at(harness: GatewayHarness, obj, name: str) -> None:
    """The next batch of the harness's gateway dies when it reaches ``obj.name``."""
    def died(*_args, **_kwargs):
        raise GatewayDied(name)

    setattr(obj, name, died)


def resting_sell(harness: GatewayHarness):
    keep = harness.client("KEEP")
    buyer = harness.client("CLIENT2")
    keep.send(b"D", order_body("R1", side="2", qty="10", price="100.00", tif="1"))
    harness.pump()
    assert [row[:3] for row in resent(keep)] == [("R1", "0", "0")]
    return keep, buyer


def test_events_a_dead_run_read_but_did_not_store_are_reported_by_the_next():
    harness = GatewayHarness()
    keep, buyer = resting_sell(harness)
    die_at(harness, harness.core, "_deliver")       # events read, replies built, nothing stored
    buyer.send(b"D", order_body("B1", side="1", qty="4", price="100.00", tif="3"))
    try:
        harness.pump()
    except GatewayDied:
        pass
    assert harness.link.held > 0
    harness.restart(cancel_stale_orders=False)
    keep = harness.client("KEEP", store=keep.store)
    assert [row[:5] for row in resent(keep)] == [("R1", "F", "1", "4", "6")]
    assert harness.link.held == 0


def test_events_stored_but_not_released_are_not_reported_twice():
    harness = GatewayHarness()
    keep, buyer = resting_sell(harness)
    die_at(harness, harness.link, "commit")          # replies durable, events not yet released
    buyer.send(b"D", order_body("B1", side="1", qty="4", price="100.00", tif="3"))
    try:
        harness.pump()
    except GatewayDied:
        pass
    assert resent(keep) == []                        # stored, but the run died before writing it
    del harness.link.commit                          # the next run's link works
    assert harness.link.held > 0
    harness.restart(cancel_stale_orders=False)
    (order,) = harness.core.entry.live.values()
    assert (order.cum, order.leaves, order.notional) == (4, 6, 4 * 10000)
    buyer = harness.client("CLIENT2", store=buyer.store)
    buyer.send(b"D", order_body("B2", side="1", qty="6", price="100.00", tif="3"))
    harness.pump()
    keep = harness.client("KEEP", store=keep.store)
    # the first fill once (resent from the store), then the second; CumQty and AvgPx count each once
    assert resent(keep) == [("R1", "F", "1", "4", "6", "100.00"), ("R1", "F", "2", "10", "0", "100.00")]


def test_an_order_a_dead_run_took_in_but_never_reported_is_cancelled():
    harness = GatewayHarness()
    keep = harness.client("KEEP")                    # no cancel-on-disconnect: nothing else cancels it
    buyer = harness.client("CLIENT2")
    die_at(harness, harness.core, "_deliver")
    keep.send(b"D", order_body("K1", side="2", qty="10", price="100.00", tif="1"))
    try:
        harness.pump()
    except GatewayDied:
        pass
    assert harness.link.engine.resting_count == 1
    harness.restart(cancel_stale_orders=False)
    assert harness.core.entry.orphans_cancelled == 1
    assert harness.link.engine.resting_count == 0   # nobody could have cancelled it, nobody told of fills
    buyer = harness.client("CLIENT2", store=buyer.store)
    buyer.send(b"D", order_body("B1", side="1", qty="10", price="100.00", tif="3"))
    harness.pump()
    assert [fields(m, 11, 150) for m in buyer.take()] == [("B1", "0"), ("B1", "4")]
    keep = harness.client("KEEP", store=keep.store)
    assert keep.take() == [] and keep.rejects() == []


def test_an_order_the_gateway_refused_leaves_its_cl_ord_id_free_after_a_restart():
    harness = GatewayHarness()
    client = harness.client("KEEP")
    harness.link.up = False                          # engine down: the gateway refuses at once
    client.send(b"D", order_body("K1", side="1", qty="5", price="99.00", tif="1"))
    harness.pump()
    assert [fields(m, 11, 150, 58) for m in client.take()] == [("K1", "8", "engine down")]
    harness.link.up = True
    harness.restart(cancel_stale_orders=False)
    client = harness.client("KEEP", store=client.store)
    client.send(b"D", order_body("K1", side="1", qty="5", price="99.00", tif="1"))
    harness.pump()
    assert [fields(m, 11, 150) for m in client.take()] == [("K1", "0")]


def test_an_event_that_fails_is_logged_and_skipped_and_the_others_go_on(monkeypatch, caplog):
    harness = GatewayHarness()
    keep, buyer = resting_sell(harness)
    entry = harness.core.entry
    real_fill = entry._fill
    failures = []

    def fill_once_broken(order, *args):
        if order.cl_ord_id == b"R1" and not failures:
            failures.append(order)
            raise RuntimeError("broken report")
        return real_fill(order, *args)

    monkeypatch.setattr(entry, "_fill", fill_once_broken)
    buyer.send(b"D", order_body("B1", side="1", qty="4", price="100.00", tif="3"))
    harness.pump()
    # the seller's side failed: logged, counted, skipped; the buyer's side of the same trade and
    # everything after it are reported, and the batch's events were released
    assert entry.event_errors == 1 and "engine event" in caplog.text
    assert [fields(m, 11, 150, 39) for m in buyer.take()] == [("B1", "0", "0"), ("B1", "F", "2")]
    assert harness.link.held == 0
    keep.send(b"F", cancel_body("C1", "R1", side="2"))
    harness.pump()
    assert [fields(m, 11, 150, 39) for m in keep.take()] == [("C1", "4", "4")]
