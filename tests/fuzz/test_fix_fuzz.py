"""Fuzzing the FIX decoder and an acceptor session with random and mutated bytes.

Whatever arrives, the decoder yields messages, Garbled reports or "need more
data", and the session yields only application messages, rejects, garbled
drops or a disconnect: no exception escapes and every loop runs dry.
Everything numbex writes back must itself be well-framed, valid FIX 4.4.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fix_helpers import NANOS, T0, Acceptor, ScriptedClient, new_order_body  # noqa: E402
from numbex.server.fix_store import FileStore  # noqa: E402
from numbex.protocol.fix import (  # noqa: E402
    ApplicationMessage, Disconnect, FixDecoder, FixMessage, Garbled, GarbledMessage, MessageRejected,
    MessageValidator, RejectReceived, SessionEstablished, SessionState, checksum,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALLOWED_EVENTS = (ApplicationMessage, MessageRejected, GarbledMessage, Disconnect, RejectReceived,
                  SessionEstablished)
VALIDATOR = MessageValidator()


def valid_stream() -> list[bytes]:
    client = ScriptedClient()
    messages = [client.logon()]
    messages += [client.message(b"D", new_order_body(f"O{index}")) for index in range(3)]
    messages += [client.message(b"1", b"112=T\x01"), client.message(b"2", b"7=1\x0116=0\x01"),
                 client.message(b"4", b"123=Y\x0136=9\x01", seq_num=7),
                 client.message(b"F", b"41=O1\x0111=C1\x0155=TEST\x0154=1\x0160=20240301-12:00:00\x0138=1\x01"),
                 client.message(b"5", b"58=bye\x01")]
    return messages


VALID = valid_stream()


@st.composite
def mutated(draw) -> bytes:
    """Valid messages with byte flips, insertions, deletions, truncation and reordering."""
    parts = draw(st.lists(st.sampled_from(VALID), min_size=1, max_size=6))
    data = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 6))):
        if not data:
            break
        position = draw(st.integers(0, len(data) - 1))
        action = draw(st.sampled_from(["flip", "insert", "delete", "soh", "digit", "duplicate"]))
        if action == "flip":
            data[position] = draw(st.integers(0, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[position:position + draw(st.integers(1, 8))]
        elif action == "soh":
            data[position] = 1
        elif action == "digit":
            data[position] = draw(st.sampled_from(b"0123456789="))
        else:
            end = min(len(data), position + draw(st.integers(1, 40)))
            data[end:end] = data[position:end]
    return bytes(data)


def chunks(data: bytes, sizes: list[int]):
    start = 0
    for size in sizes:
        if start >= len(data):
            return
        yield data[start:start + size]
        start += size
    if start < len(data):
        yield data[start:]


def check_decoder(data: bytes, sizes: list[int]) -> None:
    decoder = FixDecoder(max_message_bytes=4096)
    consumed = 0
    for chunk in chunks(data, sizes):
        decoder.receive_data(chunk)
        for _ in range(len(data) + 2):
            item = decoder.next_message()
            if item is None:
                break
            assert type(item) in (FixMessage, Garbled)
            if type(item) is FixMessage:
                assert item.raw.startswith(b"8=FIX.4.4\x019=")
                assert int(item.raw[-4:-1]) == checksum(item.raw[:-7])
                consumed += len(item.raw)
            else:
                assert item.size > 0
                consumed += item.size
        else:
            raise AssertionError("decoder did not run dry")
    assert consumed + decoder.buffered == len(data)
    assert decoder.buffered <= 4096 + 64


@FUZZ
@given(data=st.binary(max_size=2000), sizes=st.lists(st.integers(1, 300), max_size=20))
def test_decoder_random_bytes(data, sizes):
    check_decoder(data, sizes)


@FUZZ
@given(data=mutated(), sizes=st.lists(st.integers(1, 300), max_size=20))
def test_decoder_mutated_messages(data, sizes):
    check_decoder(data, sizes)


def check_numbex_output(data: bytes) -> None:
    decoder = FixDecoder()
    decoder.receive_data(data)
    while (message := decoder.next_message()) is not None:
        assert type(message) is FixMessage, message
        VALIDATOR.validate(message)
    assert decoder.buffered == 0


def run_session(data: bytes, sizes: list[int], logged_on: bool, stores: dict | None = None) -> None:
    acceptor = Acceptor(stores=stores)
    if logged_on:
        acceptor.logged_on()
    session = acceptor.session
    now = T0
    for chunk in chunks(data, sizes):
        now += NANOS // 10
        session.receive_data(chunk, now)
        for _ in range(len(data) + 10):
            event = session.next_event()
            if event is None:
                break
            assert isinstance(event, ALLOWED_EVENTS), event
            if isinstance(event, ApplicationMessage):
                VALIDATOR.validate(event.message)
        else:
            raise AssertionError("session did not run dry")
        session.on_timer(now)
        check_numbex_output(session.data_to_send())
    assert session.state in SessionState


@FUZZ
@given(data=mutated(), sizes=st.lists(st.integers(1, 400), max_size=10), logged_on=st.booleans())
def test_acceptor_mutated_messages(data, sizes, logged_on):
    run_session(data, sizes, logged_on)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated(), sizes=st.lists(st.integers(1, 400), max_size=10))
def test_acceptor_with_file_store(data, sizes):
    with tempfile.TemporaryDirectory() as directory:
        store = FileStore.open(directory, "CLIENT1", sync="none")
        try:
            run_session(data, sizes, logged_on=True, stores={"CLIENT1": store})
        finally:
            store.close()
        reopened = FileStore.open(directory, "CLIENT1")
        assert reopened.next_sender_seq_num == store.next_sender_seq_num
        assert reopened.next_target_seq_num == store.next_target_seq_num
        reopened.close()


@FUZZ
@given(data=st.binary(max_size=1500), sizes=st.lists(st.integers(1, 400), max_size=10), logged_on=st.booleans())
def test_acceptor_random_bytes(data, sizes, logged_on):
    run_session(data, sizes, logged_on)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(st.tuples(st.integers(0, 1000), st.binary(max_size=12)), max_size=12),
       msg_type=st.sampled_from([b"D", b"F", b"G", b"H", b"q", b"0", b"1", b"2", b"3", b"4", b"5", b"A", b"j",
                                 b"8", b"R", b"ZZ"]),
       seq_num=st.integers(1, 6), poss_dup=st.booleans())
def test_acceptor_well_framed_nonsense(fields, msg_type, seq_num, poss_dup):
    """Correct framing and header around random fields: only rejects, drops or disconnects."""
    acceptor = Acceptor()
    acceptor.logged_on()
    body = b"".join(b"%d=%s\x01" % (tag, value.replace(b"\x01", b"")) for tag, value in fields)
    data = acceptor.client.message(msg_type, body, seq_num=seq_num, poss_dup=poss_dup)
    session = acceptor.session
    session.receive_data(data, T0)
    for _ in range(100):
        event = session.next_event()
        if event is None:
            break
        assert isinstance(event, ALLOWED_EVENTS), event
    check_numbex_output(session.data_to_send())
