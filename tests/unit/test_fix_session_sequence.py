"""FIX session sequence numbers, resends, SequenceReset, Rejects and garbled input."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fix_helpers import (  # noqa: E402
    CLIENT, NANOS, T0, Acceptor, ConnectionPair, decode_all, execution_report_body, new_order_body,
    raw_frame, timestamp,
)
from numbex.protocol.fix import (  # noqa: E402
    ApplicationMessage, Disconnect, GarbledMessage, MessageRejected, RejectReceived, SessionState,
)


def orders(events):
    return [(event.seq_num, event.message.get(11), event.possible_duplicate)
            for event in events if isinstance(event, ApplicationMessage)]


def kinds(messages):
    return [message.msg_type for message in messages]


def test_application_messages_flow_both_ways():
    pair = ConnectionPair()
    pair.logon()
    pair.deliver(pair.initiator.send(b"D", new_order_body("A1"), pair.now), to_acceptor=True)
    assert orders(pair.acceptor_events) == [(2, b"A1", False)]
    pair.deliver(pair.acceptor.send(b"8", execution_report_body("A1"), pair.now), to_acceptor=False)
    report = [event for event in pair.initiator_events if isinstance(event, ApplicationMessage)]
    assert report[0].message.msg_type == b"8" and report[0].message.get(11) == b"A1"
    assert pair.acceptor.store.sent_messages(1, 10)[0].body == execution_report_body("A1")


def test_gap_sends_one_resend_request_and_queued_messages_follow_in_order():
    acceptor = Acceptor()
    acceptor.logged_on()
    client = acceptor.client
    events, messages = acceptor.feed(client.message(b"D", new_order_body("O2")))
    assert orders(events) == [(2, b"O2", False)]
    sent = [client.message(b"D", new_order_body(f"O{seq}")) for seq in range(3, 8)]
    events, messages = acceptor.feed(sent[1] + sent[2])          # 4 and 5 arrive, 3 lost
    assert events == [] and kinds(messages) == [b"2"]
    assert (messages[0].get(7), messages[0].get(16)) == (b"3", b"0")
    events, messages = acceptor.feed(sent[3] + sent[4])          # 6, 7: no second ResendRequest
    assert events == [] and messages == []
    resent = client.message(b"D", new_order_body("O3"), seq_num=3, poss_dup=True,
                            orig_sending_time=timestamp(T0 - NANOS))
    events, messages = acceptor.feed(resent)
    assert orders(events) == [(3, b"O3", True), (4, b"O4", False), (5, b"O5", False),
                              (6, b"O6", False), (7, b"O7", False)]
    assert messages == [] and acceptor.session.next_target_seq_num == 8


def test_new_gap_after_resend_completes_gets_a_new_request():
    acceptor = Acceptor()
    acceptor.logged_on()
    client = acceptor.client
    first = client.message(b"0", seq_num=3)
    _, messages = acceptor.feed(first)
    assert kinds(messages) == [b"2"]
    _, messages = acceptor.feed(client.message(b"4", b"123=Y\x0136=3\x01", seq_num=2, poss_dup=True))
    assert acceptor.session.next_target_seq_num == 4 and messages == []
    _, messages = acceptor.feed(client.message(b"0", seq_num=6))
    assert kinds(messages) == [b"2"] and messages[0].get(7) == b"4"


def test_resend_replays_application_messages_and_gap_fills_admin_runs():
    pair = ConnectionPair()
    pair.logon()                                               # acceptor seq 1: Logon (admin)
    pair.acceptor.send(b"8", execution_report_body("A", "E2"), pair.now)       # 2, lost
    pair.advance(31)                                           # 3: heartbeat
    pair.advance(31)                                           # 4: heartbeat
    pair.acceptor.send(b"8", execution_report_body("A", "E5"), pair.now)       # 5, lost
    pair.acceptor.send(b"8", execution_report_body("A", "E6"), pair.now)       # 6, lost
    pair.acceptor.on_timer(pair.now + 31 * NANOS)              # 7: heartbeat, reaches the client
    pair.now += 31 * NANOS
    pair.to_initiator.clear()
    pair.initiator_events.clear()
    pair.pump()
    seen = [(message.msg_type, message.get(34), message.get(43), message.get(36)) for message in pair.to_initiator]
    # The client had 1, 3 and 4; 7 reveals the gap 5..6 and it asks for 5 onwards.
    assert pair.to_acceptor[-1].msg_type == b"2" and pair.to_acceptor[-1].get(7) == b"5"
    assert seen[1:] == [(b"8", b"5", b"Y", None), (b"8", b"6", b"Y", None), (b"4", b"7", b"Y", b"8")]
    assert all(message.get(122) for message in pair.to_initiator[1:])
    replayed = [event for event in pair.initiator_events if isinstance(event, ApplicationMessage)]
    assert [(event.seq_num, event.message.get(17), event.possible_duplicate) for event in replayed] == [
        (5, b"E5", True), (6, b"E6", True)]
    assert pair.initiator.next_target_seq_num == 8


def test_resend_request_ranges_collapse_gaps():
    acceptor = Acceptor()
    acceptor.logged_on()                                       # numbex seq 1: Logon
    session = acceptor.session
    client = acceptor.client

    def heartbeat_at(seconds):
        acceptor.feed(client.message(b"0", now_ns=T0 + seconds * NANOS), T0 + seconds * NANOS)
        session.on_timer(T0 + seconds * NANOS)

    session.send(b"8", execution_report_body("A", "E2"))      # 2
    heartbeat_at(31)                                           # 3: heartbeat
    session.send(b"8", execution_report_body("A", "E4"), T0 + 31 * NANOS)   # 4
    heartbeat_at(62)                                           # 5: heartbeat
    heartbeat_at(93)                                           # 6: heartbeat
    assert session.next_sender_seq_num == 7
    session.data_to_send()
    now = T0 + 93 * NANOS
    _, messages = acceptor.feed(client.message(b"2", b"7=1\x0116=0\x01", now_ns=now), now)
    assert [(m.msg_type, m.get(34), m.get(36)) for m in messages] == [
        (b"4", b"1", b"2"), (b"8", b"2", None), (b"4", b"3", b"4"), (b"8", b"4", None), (b"4", b"5", b"7")]
    assert messages[1].get(122) == timestamp(T0) and messages[1].get(52) == timestamp(now)
    _, messages = acceptor.feed(client.message(b"2", b"7=3\x0116=4\x01", now_ns=now), now)
    assert [(m.msg_type, m.get(34), m.get(36)) for m in messages] == [(b"4", b"3", b"4"), (b"8", b"4", None)]
    _, messages = acceptor.feed(client.message(b"2", b"7=4\x0116=999\x01", now_ns=now), now)
    assert [(m.msg_type, m.get(34), m.get(36)) for m in messages] == [(b"8", b"4", None), (b"4", b"5", b"7")]
    events, messages = acceptor.feed(client.message(b"2", b"7=5\x0116=2\x01", now_ns=now), now)
    assert kinds(messages) == [b"3"] and (messages[0].get(373), messages[0].get(371)) == (b"5", b"16")


def test_too_low_without_poss_dup_logs_out():
    acceptor = Acceptor()
    acceptor.logged_on()
    for _ in range(3):
        acceptor.feed(acceptor.client.message(b"0"))
    events, messages = acceptor.feed(acceptor.client.message(b"0", seq_num=2))
    assert events == [Disconnect("MsgSeqNum too low, expecting 5 but received 2")]
    assert kinds(messages) == [b"5"] and messages[0].get(58) == b"MsgSeqNum too low, expecting 5 but received 2"
    assert acceptor.session.state is SessionState.DISCONNECTED


def test_too_low_poss_dup_is_ignored_and_orig_sending_time_checked():
    acceptor = Acceptor()
    acceptor.logged_on()
    client = acceptor.client
    acceptor.feed(client.message(b"D", new_order_body("O2")))
    duplicate = client.message(b"D", new_order_body("O2"), seq_num=2, poss_dup=True,
                               orig_sending_time=timestamp(T0 - NANOS))
    assert acceptor.feed(duplicate) == ([], [])
    missing = raw_frame(b"35=D\x0134=2\x0143=Y\x0149=CLIENT1\x0152=" + timestamp(T0) + b"\x0156=NUMBEX\x01"
                        + new_order_body("O2"))
    events, messages = acceptor.feed(missing)
    assert (messages[0].get(373), messages[0].get(371), messages[0].get(45)) == (b"1", b"122", b"2")
    later = client.message(b"D", new_order_body("O2"), seq_num=2, poss_dup=True,
                           orig_sending_time=timestamp(T0 + NANOS))
    events, messages = acceptor.feed(later)
    assert kinds(messages) == [b"3", b"5"] and messages[0].get(373) == b"10"
    assert acceptor.session.state is SessionState.LOGOUT_SENT
    assert acceptor.session.next_target_seq_num == 3


def test_sequence_reset_gap_fill_and_reset_modes():
    acceptor = Acceptor()
    acceptor.logged_on()
    client = acceptor.client
    acceptor.feed(client.message(b"4", b"123=Y\x0136=10\x01"))          # seq 2 fills to 10
    assert acceptor.session.next_target_seq_num == 10
    events, messages = acceptor.feed(client.message(b"4", b"123=Y\x0136=5\x01", seq_num=10))
    assert (messages[0].get(373), messages[0].get(371)) == (b"5", b"36")
    assert acceptor.session.next_target_seq_num == 11
    # Reset mode ignores MsgSeqNum (here far too low) and may only raise the number.
    events, messages = acceptor.feed(client.message(b"4", b"36=20\x01", seq_num=1))
    assert messages == [] and acceptor.session.next_target_seq_num == 20
    events, messages = acceptor.feed(client.message(b"4", b"123=N\x0136=15\x01", seq_num=99))
    assert (messages[0].get(373), messages[0].get(371)) == (b"5", b"36")
    assert acceptor.session.next_target_seq_num == 20
    events, messages = acceptor.feed(client.message(b"D", new_order_body("O20"), seq_num=20))
    assert orders(events) == [(20, b"O20", False)]


def test_sequence_reset_skips_queued_messages_below_new_number():
    acceptor = Acceptor()
    acceptor.logged_on()
    client = acceptor.client
    acceptor.feed(client.message(b"D", new_order_body("O3"), seq_num=3))   # queued, gap at 2
    acceptor.feed(client.message(b"D", new_order_body("O6"), seq_num=6))   # queued
    events, _ = acceptor.feed(client.message(b"4", b"36=5\x01", seq_num=7))
    assert events == [] and acceptor.session.next_target_seq_num == 5
    events, _ = acceptor.feed(client.message(b"D", new_order_body("O5"), seq_num=5))
    assert orders(events) == [(5, b"O5", False), (6, b"O6", False)]


def test_invalid_message_rejected_and_sequence_used():
    acceptor = Acceptor()
    acceptor.logged_on()
    client = acceptor.client
    events, messages = acceptor.feed(client.message(b"D", new_order_body().replace(b"38=100", b"38=x")))
    reject = messages[0]
    assert (reject.msg_type, reject.get(45), reject.get(371), reject.get(372), reject.get(373)) == (
        b"3", b"2", b"38", b"D", b"6")
    assert events == [MessageRejected(2, b"D", 6, 38, "Incorrect data format for value", False)]
    events, messages = acceptor.feed(client.message(b"D", new_order_body("O3")))
    assert orders(events) == [(3, b"O3", False)] and messages == []


def test_unsupported_and_unknown_message_types():
    acceptor = Acceptor()
    acceptor.logged_on()
    client = acceptor.client
    events, messages = acceptor.feed(client.message(b"R", b"131=Q1\x0155=TEST\x01"))
    reply = messages[0]
    assert (reply.msg_type, reply.get(45), reply.get(372), reply.get(380)) == (b"j", b"2", b"R", b"3")
    assert events[0].business and events[0].ref_msg_type == b"R"
    assert acceptor.session.store.sent_messages(1, 10)[0].msg_type == b"j"
    events, messages = acceptor.feed(client.message(b"8", execution_report_body()))   # wrong direction
    assert messages[0].msg_type == b"j" and messages[0].get(372) == b"8"
    events, messages = acceptor.feed(client.message(b"ZZ"))
    assert (messages[0].msg_type, messages[0].get(373), messages[0].get(371)) == (b"3", b"11", b"35")
    assert 372 not in messages[0]
    assert acceptor.session.next_target_seq_num == 5


def test_comp_id_and_sending_time_problems_reject_then_logout():
    acceptor = Acceptor()
    acceptor.logged_on()
    wrong = acceptor.client.encoder
    from numbex.protocol.fix import FixEncoder
    acceptor.client.encoder = FixEncoder("INTRUDER", "NUMBEX")
    events, messages = acceptor.feed(acceptor.client.message(b"0"))
    assert kinds(messages) == [b"3", b"5"] and (messages[0].get(373), messages[0].get(371)) == (b"9", b"49")
    acceptor.client.encoder = wrong
    events, messages = acceptor.feed(acceptor.client.message(b"5"))
    assert events == [Disconnect("Logout confirmed")]
    acceptor = Acceptor()
    acceptor.logged_on()
    events, messages = acceptor.feed(acceptor.client.message(b"0", now_ns=T0 - 125 * NANOS))
    assert kinds(messages) == [b"3", b"5"] and (messages[0].get(373), messages[0].get(371)) == (b"10", b"52")
    assert acceptor.session.state is SessionState.LOGOUT_SENT


def test_garbled_message_dropped_without_using_a_sequence_number():
    acceptor = Acceptor()
    acceptor.logged_on()
    good = acceptor.client.message(b"D", new_order_body("O2"))
    bad = bytearray(good)
    bad[-3] = ord("0") if bad[-3] != ord("0") else ord("1")
    events, messages = acceptor.feed(bytes(bad))
    assert [type(event) for event in events] == [GarbledMessage] and messages == []
    events, messages = acceptor.feed(good)
    assert orders(events) == [(2, b"O2", False)]


def test_missing_sequence_number_is_fatal():
    acceptor = Acceptor()
    acceptor.logged_on()
    events, messages = acceptor.feed(raw_frame(b"35=0\x0149=CLIENT1\x0152=" + timestamp(T0) + b"\x0156=NUMBEX\x01"))
    assert events == [Disconnect("MsgSeqNum(34) missing or invalid")] and kinds(messages) == [b"5"]


def test_queue_is_bounded():
    acceptor = Acceptor(settings={"max_queued_messages": 3})
    acceptor.logged_on()
    data = b"".join(acceptor.client.message(b"0", seq_num=seq) for seq in range(10, 15))
    events, messages = acceptor.feed(data)
    assert isinstance(events[-1], Disconnect) and "Too many messages queued" in events[-1].reason


def test_too_high_logout_and_resend_request_are_acted_on_at_once():
    acceptor = Acceptor()
    acceptor.logged_on()
    acceptor.session.send(b"8", execution_report_body())
    acceptor.session.data_to_send()
    events, messages = acceptor.feed(acceptor.client.message(b"2", b"7=2\x0116=0\x01", seq_num=5))
    assert [(m.msg_type, m.get(34)) for m in messages] == [(b"8", b"2"), (b"2", b"3")]
    events, messages = acceptor.feed(acceptor.client.message(b"5", seq_num=9))
    assert kinds(messages) == [b"5"] and isinstance(events[-1], Disconnect)


def test_reject_from_counterparty_is_reported():
    acceptor = Acceptor()
    acceptor.logged_on()
    events, _ = acceptor.feed(acceptor.client.message(b"3", b"45=1\x01373=5\x0158=no\x01"))
    assert isinstance(events[0], RejectReceived) and events[0].message.get(58) == b"no"


def test_messages_sent_while_disconnected_are_resent_after_next_logon():
    stores = {}
    pair = ConnectionPair(exchange_stores=stores)
    pair.logon()
    pair.initiator.logout("bye", pair.now)
    pair.pump()
    assert pair.acceptor.send(b"8", execution_report_body("A", "LATE"), pair.now) == b""
    again = ConnectionPair(exchange_stores=stores, client_store=pair.client_store, now_ns=pair.now)
    again.logon()
    replayed = [event for event in again.initiator_events if isinstance(event, ApplicationMessage)]
    assert [(event.message.get(17), event.possible_duplicate) for event in replayed] == [(b"LATE", True)]
    assert again.initiator.next_target_seq_num == again.acceptor.next_sender_seq_num


def test_decode_helper_sanity():
    assert decode_all(b"") == [] and CLIENT == "CLIENT1"


def test_sending_time_before_1970_is_an_accuracy_problem():
    acceptor = Acceptor()
    acceptor.logged_on()
    payload = b"35=0\x0134=2\x0149=CLIENT1\x0152=19000101-00:00:00.000\x0156=NUMBEX\x01"
    events, messages = acceptor.feed(raw_frame(payload))
    assert kinds(messages) == [b"3", b"5"] and messages[0].get(373) == b"10"


def test_sending_time_within_skew_is_accepted_either_side():
    acceptor = Acceptor()
    acceptor.logged_on()
    for offset in (-119, 119):
        events, messages = acceptor.feed(acceptor.client.message(b"0", now_ns=T0 + offset * NANOS))
        assert messages == [] and events == []
