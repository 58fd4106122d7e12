"""FIX codec: golden messages both ways, checksum, incremental decoding, garbled input."""

from __future__ import annotations

import simplefix
import pytest

from numbex.protocol.fix import FixDecoder, FixEncoder, FixMessage, Garbled, LocalProtocolError, checksum, encode_fields, frame
from numbex.protocol.fix import codec

TS = b"20240301-12:00:00.000"


def header(msg_type: bytes, seq: int, sender: bytes, target: bytes) -> list[tuple[int, bytes]]:
    return [(35, msg_type), (34, b"%d" % seq), (49, sender), (52, TS), (56, target)]


CX = (b"CLIENT1", b"NUMBEX")
XC = (b"NUMBEX", b"CLIENT1")

# (name, fields after BodyLength, hand-checked wire bytes with | for SOH).
# BodyLength and CheckSum were counted by hand; test_golden_checksums re-adds them.
GOLDEN = [
    ("logon", header(b"A", 1, *CX) + [(98, b"0"), (108, b"30"), (141, b"Y"), (554, b"secret")],
     b"8=FIX.4.4|9=85|35=A|34=1|49=CLIENT1|52=20240301-12:00:00.000|56=NUMBEX|98=0|108=30|141=Y|"
     b"554=secret|10=048|"),
    ("heartbeat", header(b"0", 2, *XC) + [(112, b"TEST1")],
     b"8=FIX.4.4|9=66|35=0|34=2|49=NUMBEX|52=20240301-12:00:00.000|56=CLIENT1|112=TEST1|10=186|"),
    ("test_request", header(b"1", 3, *XC) + [(112, b"TEST1")],
     b"8=FIX.4.4|9=66|35=1|34=3|49=NUMBEX|52=20240301-12:00:00.000|56=CLIENT1|112=TEST1|10=188|"),
    ("resend_request", header(b"2", 4, *XC) + [(7, b"1"), (16, b"0")],
     b"8=FIX.4.4|9=65|35=2|34=4|49=NUMBEX|52=20240301-12:00:00.000|56=CLIENT1|7=1|16=0|10=245|"),
    ("reject", header(b"3", 5, *XC) + [(45, b"7"), (371, b"44"), (372, b"D"), (373, b"6"),
                                        (58, b"Incorrect data format for value")],
     b"8=FIX.4.4|9=115|35=3|34=5|49=NUMBEX|52=20240301-12:00:00.000|56=CLIENT1|45=7|371=44|372=D|"
     b"373=6|58=Incorrect data format for value|10=081|"),
    ("gap_fill", [(35, b"4"), (34, b"6"), (43, b"Y"), (49, b"NUMBEX"), (52, TS), (56, b"CLIENT1"),
                  (122, TS), (123, b"Y"), (36, b"9")],
     b"8=FIX.4.4|9=98|35=4|34=6|43=Y|49=NUMBEX|52=20240301-12:00:00.000|56=CLIENT1|"
     b"122=20240301-12:00:00.000|123=Y|36=9|10=112|"),
    ("logout", header(b"5", 7, *CX) + [(58, b"bye")],
     b"8=FIX.4.4|9=63|35=5|34=7|49=CLIENT1|52=20240301-12:00:00.000|56=NUMBEX|58=bye|10=105|"),
    ("new_order_single", header(b"D", 8, *CX) + [
        (11, b"ORDER1"), (21, b"1"), (55, b"TEST"), (54, b"1"), (60, TS), (38, b"100"), (40, b"2"),
        (44, b"101.25"), (59, b"0")],
     b"8=FIX.4.4|9=136|35=D|34=8|49=CLIENT1|52=20240301-12:00:00.000|56=NUMBEX|11=ORDER1|21=1|55=TEST|"
     b"54=1|60=20240301-12:00:00.000|38=100|40=2|44=101.25|59=0|10=007|"),
    ("execution_report", header(b"8", 9, *XC) + [
        (37, b"1"), (11, b"ORDER1"), (17, b"E1"), (150, b"0"), (39, b"0"), (55, b"TEST"), (54, b"1"),
        (38, b"100"), (151, b"100"), (14, b"0"), (6, b"0")],
     b"8=FIX.4.4|9=125|35=8|34=9|49=NUMBEX|52=20240301-12:00:00.000|56=CLIENT1|37=1|11=ORDER1|17=E1|"
     b"150=0|39=0|55=TEST|54=1|38=100|151=100|14=0|6=0|10=169|"),
    ("business_reject", header(b"j", 10, *XC) + [(45, b"3"), (372, b"R"), (380, b"3"),
                                                  (58, b"Unsupported Message Type")],
     b"8=FIX.4.4|9=102|35=j|34=10|49=NUMBEX|52=20240301-12:00:00.000|56=CLIENT1|45=3|372=R|380=3|"
     b"58=Unsupported Message Type|10=020|"),
]
IDS = [name for name, _, _ in GOLDEN]


def wire(text: bytes) -> bytes:
    return text.replace(b"|", b"\x01")


def decode_one(data: bytes) -> FixMessage:
    decoder = FixDecoder()
    decoder.receive_data(data)
    message = decoder.next_message()
    assert isinstance(message, FixMessage), message
    assert decoder.next_message() is None
    return message


@pytest.mark.parametrize(("name", "fields", "text"), GOLDEN, ids=IDS)
def test_golden_checksums_and_lengths(name, fields, text):
    data = wire(text)
    body_start = data.index(b"\x01", 10) + 1
    trailer = data.rindex(b"10=")
    assert int(data[12:body_start - 1]) == trailer - body_start
    assert int(data[trailer + 3:trailer + 6]) == sum(data[:trailer]) % 256
    assert checksum(data[:trailer]) == sum(data[:trailer]) % 256


@pytest.mark.parametrize(("name", "fields", "text"), GOLDEN, ids=IDS)
def test_golden_encode(name, fields, text):
    assert frame(encode_fields(fields)) == wire(text)


@pytest.mark.parametrize(("name", "fields", "text"), GOLDEN, ids=IDS)
def test_golden_decode(name, fields, text):
    message = decode_one(wire(text))
    assert message.fields() == [(tag, value) for tag, value in fields]
    assert message.raw == wire(text)
    assert message.msg_type == fields[0][1]
    for tag, value in fields:
        assert message.get(tag) == value and tag in message and message[tag] == value


@pytest.mark.parametrize(("name", "fields", "text"), GOLDEN, ids=IDS)
def test_golden_against_simplefix(name, fields, text):
    reference = simplefix.FixMessage()
    reference.append_pair(8, "FIX.4.4")
    for tag, value in fields:
        reference.append_pair(tag, value)
    assert reference.encode() == wire(text)
    parser = simplefix.FixParser()
    parser.append_buffer(wire(text))
    parsed = parser.get_message()
    assert [(int(tag), value) for tag, value in parsed.pairs][2:-1] == fields


def test_session_encoder_builds_golden_header():
    encoder = FixEncoder("CLIENT1", "NUMBEX")
    body = b"11=ORDER1\x0121=1\x0155=TEST\x0154=1\x0160=" + TS + b"\x0138=100\x0140=2\x0144=101.25\x0159=0\x01"
    assert encoder.encode(b"D", 8, TS, body) == wire(GOLDEN[7][2])
    gap_fill = FixEncoder("NUMBEX", "CLIENT1").encode_possible_duplicate(b"4", 6, TS, TS, b"123=Y\x0136=9\x01")
    assert gap_fill == wire(GOLDEN[5][2])


def test_checksum_long_input_matches_plain_sum():
    for size in (0, 1, 255, 256, 257, 511, 512, 513, 5000):
        data = bytes((index * 37 + 11) % 256 for index in range(size))
        assert checksum(data) == sum(data) % 256
    assert checksum(b"\xff" * 70000) == (255 * 70000) % 256


def test_incremental_byte_by_byte():
    stream = b"".join(wire(text) for _, _, text in GOLDEN)
    decoder = FixDecoder()
    received = []
    for index in range(len(stream)):
        decoder.receive_data(stream[index:index + 1])
        while (item := decoder.next_message()) is not None:
            received.append(item)
    assert [message.raw for message in received] == [wire(text) for _, _, text in GOLDEN]


def test_many_messages_in_one_chunk_then_need_data():
    data = wire(GOLDEN[1][2]) * 3 + wire(GOLDEN[2][2])[:20]
    decoder = FixDecoder()
    decoder.receive_data(data)
    assert [decoder.next_message().msg_type for _ in range(3)] == [b"0"] * 3
    assert decoder.next_message() is None
    assert decoder.buffered == 20


def expect_garbled_then_good(data: bytes, reason: str) -> None:
    good = wire(GOLDEN[1][2])
    decoder = FixDecoder()
    decoder.receive_data(data + good)
    first = decoder.next_message()
    assert isinstance(first, Garbled) and first.reason == reason, first
    items = []
    while (item := decoder.next_message()) is not None:
        items.append(item)
    assert isinstance(items[-1], FixMessage) and items[-1].raw == good
    assert all(isinstance(item, Garbled) for item in items[:-1])


def test_bad_checksum_is_garbled_and_decoder_resyncs():
    data = bytearray(wire(GOLDEN[7][2]))
    data[-4:-1] = b"000" if data[-4:-1] != b"000" else b"001"
    expect_garbled_then_good(bytes(data), codec.GARBLED_CHECKSUM)


def test_body_length_too_short_or_long_is_garbled():
    message = wire(GOLDEN[7][2])
    expect_garbled_then_good(message.replace(b"9=136", b"9=130"), codec.GARBLED_FRAMING)
    expect_garbled_then_good(message.replace(b"9=136", b"9=137"), codec.GARBLED_FRAMING)
    expect_garbled_then_good(message.replace(b"9=136", b"9=1x6"), codec.GARBLED_BODY_LENGTH)


def test_too_long_body_length_recovers_following_message():
    # BodyLength too large: the decoder waits, then finds the next message inside.
    bad = wire(GOLDEN[7][2]).replace(b"9=136", b"9=200")
    decoder = FixDecoder()
    decoder.receive_data(bad + wire(GOLDEN[1][2]) * 2)
    items = [decoder.next_message() for _ in range(3)]
    assert isinstance(items[0], Garbled)
    assert [item.msg_type for item in items[1:]] == [b"0", b"0"]


def test_junk_before_and_between_messages():
    expect_garbled_then_good(b"hello world", codec.GARBLED_JUNK)
    expect_garbled_then_good(b"8=FIX.4.2\x019=5\x0135=0\x0110=000\x01", codec.GARBLED_JUNK)


def test_junk_without_marker_keeps_possible_prefix():
    decoder = FixDecoder()
    decoder.receive_data(b"x" * 1000 + b"8=FIX.4")
    garbled = decoder.next_message()
    assert garbled == Garbled(codec.GARBLED_JUNK, 1000)
    assert decoder.next_message() is None and decoder.buffered == 7
    decoder.receive_data(wire(GOLDEN[1][2])[7:])
    assert decoder.next_message().msg_type == b"0"


def test_oversized_body_length_is_garbled_not_buffered():
    decoder = FixDecoder(max_message_bytes=100)
    data = b"8=FIX.4.4\x019=999999\x0135=0\x01"
    decoder.receive_data(data)
    assert decoder.next_message() == Garbled(codec.GARBLED_TOO_LARGE, len(data))
    assert decoder.buffered == 0


def test_data_field_may_hold_soh_and_equals():
    head = encode_fields(header(b"D", 8, *CX) + [(11, b"A")])
    message = decode_one(frame(head + b"354=8\x01355=x\x0144=5\x01y\x01"))
    assert message.get(355) == b"x\x0144=5\x01y"
    assert 44 not in message
    # A length that does not match falls back to the field delimiter.
    message = decode_one(frame(head + b"354=9\x01355=x\x0144=5\x01y\x01"))
    assert message.get(355) == b"x" and message.get(44) == b"5"


def test_value_with_equals_sign_and_field_without_equals():
    message = decode_one(frame(b"35=D\x0158=a=b=c\x01"))
    assert message.get(58) == b"a=b=c"
    message = decode_one(frame(b"35=D\x0158=x=55\x01TEST\x01"))
    assert message.get(58) == b"x=55" and 55 not in message
    assert (-1, b"") in message.fields()


def test_encode_fields_rejects_bad_values():
    for bad in ([(11, b"")], [(11, b"a\x01b")], [(0, b"x")], [("11", b"x")]):
        with pytest.raises(LocalProtocolError):
            encode_fields(bad)
    assert encode_fields([(54, 1), (44, "10.5"), (141, True)]) == b"54=1\x0144=10.5\x01141=Y\x01"


def test_encoder_rejects_bad_comp_ids():
    for bad in ("", "A\x01B", "A=B"):
        with pytest.raises(LocalProtocolError):
            FixEncoder(bad, "NUMBEX")


def test_percent_in_comp_id_is_literal():
    data = FixEncoder("C%d", "NUMBEX").encode(b"0", 1, TS)
    assert decode_one(data).get(49) == b"C%d"
