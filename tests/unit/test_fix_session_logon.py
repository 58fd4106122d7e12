"""FIX session logon rules, with two sans-IO endpoints in memory and a scripted client."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fix_helpers import (  # noqa: E402
    CLIENT, NANOS, T0, Acceptor, ConnectionPair, ScriptedClient, decode_all, drain,
)
from numbex.protocol.fix import (  # noqa: E402
    Disconnect, FixSession, LocalProtocolError, MemoryStore, SessionEstablished, SessionSettings, SessionState,
)


def refused(events, messages, text):
    assert [type(event) for event in events] == [Disconnect] and text in events[0].reason
    assert [message.msg_type for message in messages] == [b"5"]
    assert text in messages[0].get(58).decode()


def test_pair_logs_on_and_echoes_heartbeat_interval():
    pair = ConnectionPair(initiator_settings={"heartbeat_seconds": 45})
    pair.logon()
    assert pair.acceptor.state is SessionState.ACTIVE and pair.initiator.state is SessionState.ACTIVE
    assert pair.acceptor_events == [SessionEstablished(CLIENT, 45, False)]
    assert pair.initiator_events == [SessionEstablished("NUMBEX", 45, False)]
    reply = pair.to_initiator[0]
    assert (reply.msg_type, reply.get(108), reply.get(98), reply.get(34)) == (b"A", b"45", b"0", b"1")
    assert 141 not in reply
    assert (pair.acceptor.next_sender_seq_num, pair.acceptor.next_target_seq_num) == (2, 2)
    assert pair.acceptor.comp_id == CLIENT and pair.acceptor.heartbeat_seconds == 45


@pytest.mark.parametrize(("passwords", "password", "text"), [
    ({CLIENT: "secret"}, "wrong", "Invalid password"),
    ({CLIENT: "secret"}, "", "Invalid password"),
    ({"OTHER": ""}, "secret", "Unknown SenderCompID"),
])
def test_refused_logon_disconnects_without_store(passwords, password, text):
    pair = ConnectionPair(passwords=passwords, initiator_settings={"password": password})
    pair.logon()
    assert pair.acceptor.state is SessionState.DISCONNECTED
    assert pair.initiator.state is SessionState.DISCONNECTED
    assert text in pair.disconnects(pair.acceptor_events)[0].reason
    assert pair.disconnects(pair.initiator_events)[0].reason.startswith("Logon refused")
    assert pair.exchange_stores == {}


def test_no_password_configured_accepts_any():
    pair = ConnectionPair(passwords={CLIENT: ""}, initiator_settings={"password": ""})
    pair.logon()
    assert pair.acceptor.state is SessionState.ACTIVE


def test_unauthenticated_reset_does_not_touch_the_store():
    store = MemoryStore()
    store.set_next_sender_seq_num(50)
    store.set_next_target_seq_num(40)
    store.store_sent(49, b"8", b"20240301-11:00:00.000", b"37=1\x01")
    acceptor = Acceptor(stores={CLIENT: store})
    events, messages = acceptor.feed(acceptor.client.logon(reset=True, password="wrong"))
    refused(events, messages, "Invalid password")
    assert messages[0].get(34) == b"1"
    assert (store.next_sender_seq_num, store.next_target_seq_num) == (50, 40)
    assert len(store.sent_messages(1, 100)) == 1


def test_authenticated_reset_restarts_both_sides_at_one():
    store = MemoryStore()
    store.set_next_sender_seq_num(50)
    store.set_next_target_seq_num(40)
    client_store = MemoryStore()
    client_store.set_next_sender_seq_num(40)
    pair = ConnectionPair(exchange_stores={CLIENT: store}, client_store=client_store,
                          initiator_settings={"reset_on_logon": True})
    pair.logon()
    assert pair.to_acceptor[0].get(141) == b"Y" and pair.to_acceptor[0].get(34) == b"1"
    reply = pair.to_initiator[0]
    assert reply.get(141) == b"Y" and reply.get(34) == b"1"
    assert pair.acceptor_events == [SessionEstablished(CLIENT, 30, True)]
    assert (store.next_sender_seq_num, store.next_target_seq_num) == (2, 2)
    assert store.sent_messages(1, 100) == []


def test_reset_with_sequence_number_above_one_is_fatal():
    acceptor = Acceptor()
    events, messages = acceptor.feed(acceptor.client.logon(reset=True, seq_num=5))
    assert isinstance(events[-1], Disconnect) and "must be 1" in events[-1].reason
    assert messages[-1].msg_type == b"5"


@pytest.mark.parametrize(("heartbeat", "accepted"), [(0, True), (300, True), (301, False), (-1, False)])
def test_heartbeat_interval_bounds(heartbeat, accepted):
    acceptor = Acceptor()
    events, messages = acceptor.feed(acceptor.client.logon(heartbeat=heartbeat))
    if accepted:
        assert events == [SessionEstablished(CLIENT, heartbeat, False)]
        assert messages[0].get(108) == b"%d" % heartbeat
    else:
        refused(events, messages, "HeartBtInt(108) must be between 0 and 300")


def test_second_logon_for_live_session_is_refused_until_released():
    pair = ConnectionPair()
    pair.logon()
    second = FixSession(SessionSettings("NUMBEX"), T0, authority=pair.directory)
    second.receive_data(ScriptedClient().logon())
    events = drain(second)
    assert "already logged on" in events[-1].reason
    assert decode_all(second.data_to_send())[0].msg_type == b"5"
    pair.initiator.logout("done", pair.now)
    pair.pump()
    assert not pair.directory.is_live(CLIENT)
    third = FixSession(SessionSettings("NUMBEX"), T0, authority=pair.directory)
    third.receive_data(ScriptedClient().logon(seq_num=3))
    assert drain(third) == [SessionEstablished(CLIENT, 30, False)]


def test_connection_lost_releases_the_comp_id():
    pair = ConnectionPair()
    pair.logon()
    pair.acceptor.connection_lost(pair.now)
    assert drain(pair.acceptor) == [Disconnect("Connection lost")]
    assert not pair.directory.is_live(CLIENT)


def test_first_message_not_logon():
    acceptor = Acceptor()
    events, messages = acceptor.feed(acceptor.client.message(b"0"))
    refused(events, messages, "First message is not a Logon")


@pytest.mark.parametrize(("logon", "text"), [
    (ScriptedClient(target="OTHER").logon(), "CompID problem"),
    (ScriptedClient().message(b"A", b"98=0\x01"), "Invalid Logon: Required tag missing (108)"),
    (ScriptedClient().message(b"A", b"98=2\x01108=30\x01"), "EncryptMethod(98) must be 0"),
    (ScriptedClient().logon(now_ns=T0 - 300 * NANOS), "SendingTime accuracy problem"),
])
def test_invalid_logon_is_refused(logon, text):
    acceptor = Acceptor()
    refused(*acceptor.feed(logon), text)


def test_logon_sequence_number_too_low():
    store = MemoryStore()
    store.set_next_target_seq_num(8)
    acceptor = Acceptor(stores={CLIENT: store})
    events, messages = acceptor.feed(acceptor.client.logon(seq_num=5))
    assert events[-1].reason == "MsgSeqNum too low, expecting 8 but received 5"
    assert messages[-1].get(58) == b"MsgSeqNum too low, expecting 8 but received 5"


def test_logon_sequence_number_too_high_requests_resend():
    acceptor = Acceptor()
    events, messages = acceptor.feed(acceptor.client.logon(seq_num=5))
    assert events == [SessionEstablished(CLIENT, 30, False)]
    assert [message.msg_type for message in messages] == [b"A", b"2"]
    assert (messages[1].get(7), messages[1].get(16)) == (b"1", b"0")
    # The client fills the gap: 1-4 were admin messages.
    gap_fill = acceptor.client.message(b"4", b"123=Y\x0136=5\x01", seq_num=1, poss_dup=True)
    events, messages = acceptor.feed(gap_fill)
    assert acceptor.session.next_target_seq_num == 6


def test_logon_timeouts():
    acceptor = Acceptor()
    acceptor.session.on_timer(T0 + 9 * NANOS)
    assert drain(acceptor.session) == []
    acceptor.session.on_timer(T0 + 10 * NANOS)
    assert drain(acceptor.session) == [Disconnect("Logon not completed in time")]
    initiator = FixSession(SessionSettings(CLIENT, initiator=True, target_comp_id="NUMBEX"), T0,
                           store=MemoryStore())
    initiator.logon(T0)
    initiator.on_timer(T0 + 11 * NANOS)
    assert drain(initiator) == [Disconnect("Logon not completed in time")]


def test_misuse_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        FixSession(SessionSettings("NUMBEX"), T0)
    with pytest.raises(LocalProtocolError):
        FixSession(SessionSettings(CLIENT, initiator=True), T0, store=MemoryStore())
    acceptor = Acceptor()
    with pytest.raises(LocalProtocolError):
        acceptor.session.send(b"8", b"37=1\x01")
    with pytest.raises(LocalProtocolError):
        acceptor.session.logon()
    pair = ConnectionPair()
    pair.logon()
    with pytest.raises(LocalProtocolError):
        pair.acceptor.send(b"0", b"")
