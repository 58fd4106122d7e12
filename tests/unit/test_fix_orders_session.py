"""FIX order entry around the session: throttle and Logout on abuse, cancel-on-disconnect,
reports for an offline session resent after its next Logon, engine down and ring full."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import Client, GatewayHarness, cancel_body, fields, order_body  # noqa: E402

from numbex.protocol.fix import ApplicationMessage, Disconnect  # noqa: E402


def rest(harness, client, cl_ord_id, side="2", qty="100", price="100.00"):
    client.send(b"D", order_body(cl_ord_id, side=side, qty=qty, price=price, tif="1"))
    harness.pump()
    (ack,) = client.take()
    assert fields(ack, 150, 39) == ("0", "0"), ack
    return ack


def test_throttle_rejects_excess_messages():
    harness = GatewayHarness()
    client = harness.client("SLOW")                      # 5 messages per second
    for index in range(8):
        client.send(b"D", order_body(f"O{index}", qty="1", price="99.00"))
    client.send(b"F", cancel_body("C1", "O0"))
    client.send(b"H", b"11=O0\x0155=TEST\x0154=1\x01")
    client.send(b"q", b"11=MC\x01530=7\x0160=20240301-12:00:00.000\x01")
    harness.pump()
    replies = client.take()
    # The gateway answers its own refusals at once, before the engine's acknowledgements.
    accepted = [m for m in replies if m.get(58) is None]
    throttled = [m for m in replies if m.get(58) is not None]
    assert [fields(m, 11, 150, 39) for m in accepted] == [(f"O{i}", "0", "0") for i in range(5)]
    assert [fields(m, 35, 11, 58) for m in throttled] == [
        ("8", "O5", "throttled"), ("8", "O6", "throttled"), ("8", "O7", "throttled"), ("9", "C1", "throttled"),
        ("j", None, "throttled"), ("r", "MC", "throttled")]
    assert fields(throttled[-1], 531) == ("0",)
    assert harness.link.submitted == 5
    harness.advance(1.0)                                 # the bucket refills
    client.send(b"D", order_body("LATER", qty="1", price="99.00"))
    harness.pump()
    assert [fields(m, 11, 150) for m in client.take()] == [("LATER", "0")]
    assert client.session.state.name == "ACTIVE"
    assert client.rejects() == []


def test_sustained_abuse_ends_in_logout():
    harness = GatewayHarness(throttle_logout_excess=3)
    client = harness.client("SLOW")
    for index in range(20):
        client.send(b"D", order_body(f"O{index}", qty="1", price="99.00"))
    harness.pump()
    assert harness.core.counters["throttle_logouts"] == 1
    assert any(isinstance(event, Disconnect) for event in client.events)
    assert client.session.state.name == "DISCONNECTED"
    throttled = [m for m in client.take() if m.get(58) == b"throttled"]
    assert len(throttled) >= 3


def test_cancel_on_disconnect():
    harness = GatewayHarness()
    leaving, staying = harness.client("CLIENT1"), harness.client("CLIENT2")
    rest(harness, leaving, "S1")
    rest(harness, leaving, "B1", side="1", price="99.00")
    leaving.drop()
    store = harness.stores["CLIENT1"]
    stored = list(store.sent_messages(1, store.next_sender_seq_num))
    cancels = [m for m in stored if b"150=4\x01" in m.body]
    assert len(cancels) == 2 and all(b"58=mass cancel" in m.body for m in cancels)
    staying.send(b"D", order_body("X", side="1", qty="10", price="100.00", tif="3"))
    harness.pump()
    assert [fields(m, 150) for m in staying.take()] == [("0",), ("4",)]      # nothing left to trade with


def test_without_cancel_on_disconnect_orders_stay_and_reports_wait_for_the_next_logon():
    harness = GatewayHarness()
    keeper, other = harness.client("KEEP"), harness.client("CLIENT2")
    rest(harness, keeper, "K1")
    store = keeper.store
    keeper.drop()
    other.send(b"D", order_body("X", side="1", qty="40", price="100.00", tif="3"))
    harness.pump()
    assert [fields(m, 150, 39) for m in other.take()] == [("0", "0"), ("F", "2")]
    again = Client(harness, "KEEP", store=store)          # same client store: sequence numbers continue
    harness.clients.append(again)
    again.logon()
    harness.pump()
    resent = [e for e in again.events if isinstance(e, ApplicationMessage)]
    assert [(fields(e.message, 11, 150, 39, 32, 151), e.possible_duplicate) for e in resent] == [
        (("K1", "F", "1", "40", "60"), True)]
    assert again.rejects() == []


def test_stale_orders_are_cancelled_at_start_and_retried_while_the_engine_is_down():
    harness = GatewayHarness()
    harness.link.up = False
    harness.core.entry.cancel_stale_orders()
    harness.pump()
    assert harness.link.submitted == 0
    harness.link.up = True
    harness.pump()
    assert harness.link.submitted == 3                   # one mass cancel per cancel-on-disconnect session
    assert harness.core.entry.pending_requests == 0
    assert all(not store.sent_messages(1, 100) for store in harness.stores.values())


def test_engine_down_rejects_at_once():
    harness = GatewayHarness()
    client = harness.client()
    rest(harness, client, "S1")
    harness.link.up = False
    client.send(b"D", order_body("D1", qty="1", price="99.00"))
    client.send(b"F", cancel_body("C1", "S1", side="2"))
    client.send(b"q", b"11=MC\x01530=7\x0160=20240301-12:00:00.000\x01")
    harness.pump()
    assert [fields(m, 35, 11, 39, 58) for m in client.take()] == [
        ("8", "D1", "8", "engine down"), ("9", "C1", "0", "engine down"), ("r", "MC", None, "engine down")]
    harness.link.up = True
    client.send(b"D", order_body("D1", qty="1", price="99.00"))    # the refused ClOrdID is free
    client.send(b"F", cancel_body("C1", "S1", side="2"))
    harness.pump()
    assert [fields(m, 11, 150, 39) for m in client.take()] == [("D1", "0", "0"), ("C1", "4", "4")]
    assert client.rejects() == []


def test_ring_full_rejects_what_was_not_taken():
    harness = GatewayHarness()
    client = harness.client()
    harness.link.capacity = 2
    for index in range(4):
        client.send(b"D", order_body(f"O{index}", qty="1", price="99.00"))
    harness.pump()
    assert sorted(fields(m, 11, 150, 39, 58) for m in client.take()) == [
        ("O0", "0", "0", None), ("O1", "0", "0", None), ("O2", "8", "8", "system busy"),
        ("O3", "8", "8", "system busy")]
    harness.link.capacity = None
    client.send(b"D", order_body("O2", qty="1", price="99.00"))
    harness.pump()
    assert [fields(m, 11, 150) for m in client.take()] == [("O2", "0")]


def test_second_logon_for_a_live_session_is_refused():
    harness = GatewayHarness()
    harness.client("CLIENT1")
    intruder = Client(harness, "CLIENT1")
    harness.clients.append(intruder)
    intruder.session.logon(harness.now)
    harness.pump()
    assert intruder.session.state.name == "DISCONNECTED"
    assert harness.clients[0].session.state.name == "ACTIVE"


@pytest.mark.parametrize("comp_id", ["CLIENT1", "KEEP"])
def test_logout_handshake(comp_id):
    harness = GatewayHarness()
    client = harness.client(comp_id)
    client.session.logout("bye", harness.now)
    harness.pump()
    assert client.session.state.name == "DISCONNECTED"
    assert harness.core.counters["disconnects"] == 1
    assert not harness.core.connections


class SyncRecordingStore:
    """A MemoryStore whose sync() records how many messages were stored at that moment."""

    def __init__(self) -> None:
        from numbex.protocol.fix import MemoryStore

        self.inner = MemoryStore()
        self.syncs: list[int] = []
        self.stored = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    @property
    def next_sender_seq_num(self):
        return self.inner.next_sender_seq_num

    @property
    def next_target_seq_num(self):
        return self.inner.next_target_seq_num

    def store_sent(self, *args) -> None:
        self.stored += 1
        self.inner.store_sent(*args)

    def sync(self) -> None:
        self.syncs.append(self.stored)


def test_stores_are_durable_before_bytes_are_written_and_input_only_batches_wait():
    from numbex.server.fix_gateway import FixGatewayCore

    harness = GatewayHarness()
    held: list = []
    link = harness.link
    submit = link.submit
    core = FixGatewayCore(harness.config, link, harness.now, store_factory=lambda comp_id: store)
    store = SyncRecordingStore()
    harness.core = core
    client = harness.client("CLIENT1")
    assert store.syncs, "the Logon reply was synced before it was written"
    # The engine answers later: the batch that takes the order in writes nothing and syncs nothing.
    link.submit = lambda commands: held.append(commands.copy()) or len(commands)
    client.send(b"D", order_body("A", qty="1", price="99.00"))
    syncs_before = len(store.syncs)
    core.process(harness.now)
    assert core.take_output() == [] and len(store.syncs) == syncs_before
    link.submit = submit
    assert submit(held.pop()) == 1
    core.process(harness.now)
    output = core.take_output()
    assert len(output) == 1 and store.syncs[-1] == store.stored == 1    # the report was durable first
    client.deliver(output[0].take_output())
    assert [fields(m, 11, 150) for m in client.take()] == [("A", "0")]
    core.on_timer(harness.now)                      # the timer syncs whatever is left
    assert store.syncs[-1] == store.stored
