"""FIX session timers: heartbeats, TestRequest, the Logout handshake and its timeout."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fix_helpers import NANOS, T0, Acceptor, ConnectionPair, decode_all, drain, new_order_body  # noqa: E402
from numbex.protocol.fix import Disconnect, SessionState  # noqa: E402


def types(messages):
    return [message.msg_type for message in messages]


def test_idle_sessions_exchange_heartbeats_only():
    pair = ConnectionPair(initiator_settings={"heartbeat_seconds": 10})
    pair.logon()
    pair.advance(65)
    to_acceptor = types(pair.to_acceptor[1:])
    to_initiator = types(pair.to_initiator[1:])
    assert set(to_acceptor) == {b"0"} and set(to_initiator) == {b"0"}
    assert 5 <= len(to_acceptor) <= 7 and 5 <= len(to_initiator) <= 7
    assert pair.acceptor.state is SessionState.ACTIVE and pair.initiator.state is SessionState.ACTIVE


def test_traffic_suppresses_heartbeats():
    pair = ConnectionPair(initiator_settings={"heartbeat_seconds": 10})
    pair.logon()
    for index in range(20):
        pair.now += NANOS // 2
        pair.deliver(pair.initiator.send(b"D", new_order_body(f"O{index}"), pair.now), to_acceptor=True)
        pair.deliver(pair.acceptor.send(b"8", b"37=1\x0111=A\x0117=E\x01150=0\x0139=0\x0154=1\x01151=1\x0114=0\x016=0\x01",
                                        pair.now), to_acceptor=False)
        pair.acceptor.on_timer(pair.now)
        pair.initiator.on_timer(pair.now)
        pair.pump()
    assert b"0" not in types(pair.to_acceptor) and b"0" not in types(pair.to_initiator)


def test_test_request_answered_by_heartbeat_with_its_id():
    acceptor = Acceptor()
    acceptor.logged_on(heartbeat=10)
    session = acceptor.session
    session.on_timer(T0 + 11 * NANOS)
    heartbeat = decode_all(session.data_to_send())
    assert types(heartbeat) == [b"0"]
    session.on_timer(T0 + 12 * NANOS)
    test_request = decode_all(session.data_to_send())
    assert types(test_request) == [b"1"] and test_request[0].get(112) == b"TEST1"
    now = T0 + 13 * NANOS
    events, messages = acceptor.feed(acceptor.client.message(b"0", b"112=TEST1\x01", now_ns=now), now)
    assert events == [] and messages == []
    session.on_timer(T0 + 24 * NANOS)                      # silence 11 s < 12 s: no second request
    assert types(decode_all(session.data_to_send())) == [b"0"]
    assert session.state is SessionState.ACTIVE


def test_unanswered_test_request_disconnects():
    acceptor = Acceptor()
    acceptor.logged_on(heartbeat=10)
    session = acceptor.session
    session.on_timer(T0 + 12 * NANOS)
    assert b"1" in types(decode_all(session.data_to_send()))
    session.on_timer(T0 + 23 * NANOS)
    assert drain(session) == []
    session.on_timer(T0 + 24 * NANOS)
    events = drain(session)
    assert len(events) == 1 and isinstance(events[0], Disconnect) and "TestRequest" in events[0].reason
    assert types(decode_all(session.data_to_send()))[-1] == b"5"


def test_counterparty_test_request_gets_heartbeat():
    acceptor = Acceptor()
    acceptor.logged_on()
    events, messages = acceptor.feed(acceptor.client.message(b"1", b"112=PING\x01"))
    assert types(messages) == [b"0"] and messages[0].get(112) == b"PING"


def test_zero_heartbeat_interval_means_no_heartbeats():
    acceptor = Acceptor()
    acceptor.logged_on(heartbeat=0)
    for seconds in range(0, 3600, 60):
        acceptor.session.on_timer(T0 + seconds * NANOS)
    assert acceptor.session.data_to_send() == b"" and drain(acceptor.session) == []
    assert acceptor.session.state is SessionState.ACTIVE


def test_logout_initiated_by_numbex_is_confirmed():
    pair = ConnectionPair()
    pair.logon()
    pair.acceptor.logout("end of day", pair.now)
    assert pair.acceptor.state is SessionState.LOGOUT_SENT
    pair.pump()
    assert pair.to_initiator[-1].get(58) == b"end of day"
    assert pair.to_acceptor[-1].msg_type == b"5"
    assert pair.disconnects(pair.acceptor_events) == [Disconnect("Logout confirmed")]
    assert pair.disconnects(pair.initiator_events)[0].reason.endswith("end of day")
    assert pair.acceptor.state is SessionState.DISCONNECTED and pair.initiator.state is SessionState.DISCONNECTED


def test_messages_still_processed_while_waiting_for_logout_confirmation():
    acceptor = Acceptor()
    acceptor.logged_on()
    acceptor.session.logout("closing")
    acceptor.session.data_to_send()
    events, _ = acceptor.feed(acceptor.client.message(b"D", new_order_body("LAST")))
    assert events[0].message.get(11) == b"LAST"


def test_logout_timeout_disconnects():
    acceptor = Acceptor()
    acceptor.logged_on()
    acceptor.session.logout("closing", T0)
    acceptor.session.on_timer(T0 + NANOS)
    assert drain(acceptor.session) == []
    acceptor.session.on_timer(T0 + 2 * NANOS)
    assert drain(acceptor.session) == [Disconnect("Logout not confirmed in time")]


def test_nothing_happens_after_disconnect():
    acceptor = Acceptor()
    acceptor.logged_on()
    acceptor.session.connection_lost()
    drain(acceptor.session)
    acceptor.session.receive_data(acceptor.client.message(b"0"))
    acceptor.session.on_timer(T0 + 1000 * NANOS)
    assert drain(acceptor.session) == []
    assert acceptor.session.state is SessionState.DISCONNECTED
