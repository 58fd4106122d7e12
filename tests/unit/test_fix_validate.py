"""Data-dictionary validation: each SessionRejectReason with its RefTagID."""

from __future__ import annotations

import pytest

from numbex.protocol.fix import FixDecoder, MessageValidator, RemoteProtocolError, frame
from numbex.protocol.fix.schema import build_schema

HEADER = b"35=D\x0134=2\x0149=CLIENT1\x0152=20240301-12:00:00.000\x0156=NUMBEX\x01"
ORDER = b"11=ORDER1\x0121=1\x0155=TEST\x0154=1\x0160=20240301-12:00:00.000\x0138=100\x0140=2\x0144=101.25\x01"


@pytest.fixture(scope="module")
def validator() -> MessageValidator:
    return MessageValidator()


def decode(payload: bytes):
    decoder = FixDecoder()
    decoder.receive_data(frame(payload))
    return decoder.next_message()


def fault(validator: MessageValidator, payload: bytes) -> tuple[int, int | None]:
    with pytest.raises(RemoteProtocolError) as caught:
        validator.validate(decode(payload))
    return caught.value.reason, caught.value.tag


def test_valid_new_order_single(validator):
    message = decode(HEADER + ORDER)
    validator.validate(message)
    assert message.groups is None


def test_every_expanded_message_type_is_compiled():
    schema = build_schema()
    assert set(schema.messages) == {b"0", b"1", b"2", b"3", b"4", b"5", b"A", b"D", b"F", b"G", b"H",
                                    b"q", b"8", b"9", b"r", b"j"}
    assert schema.admin_types == {b"0", b"1", b"2", b"3", b"4", b"5", b"A"}
    assert schema.messages[b"D"].required >= {b"11", b"54", b"60", b"40", b"35", b"49", b"56", b"34", b"52"}


@pytest.mark.parametrize(("payload", "reason", "tag"), [
    (HEADER + ORDER.replace(b"11=ORDER1\x01", b""), 1, 11),                 # required tag missing
    (HEADER.replace(b"52=20240301-12:00:00.000\x01", b"") + ORDER, 1, 52),  # required header tag
    (HEADER + ORDER + b"112=X\x01", 2, 112),                                # tag of another message
    (HEADER + ORDER + b"448=X\x01", 2, 448),                                # group member outside its group
    (HEADER + ORDER + b"9999=1\x01", 0, 9999),                              # undefined tag
    (HEADER + ORDER + b"abc=1\x01", 0, None),                               # tag not a number
    (HEADER + ORDER + b"044=1\x01", 0, None),                               # tag with a leading zero
    (HEADER + ORDER.replace(b"44=101.25", b"44="), 4, 44),                  # tag without a value
    (HEADER + ORDER.replace(b"40=2", b"40=Z"), 5, 40),                      # enum value out of range
    (HEADER + ORDER.replace(b"38=100", b"38=1e5"), 6, 38),                  # quantity format
    (HEADER + ORDER.replace(b"44=101.25", b"44=1.2.3"), 6, 44),             # price format
    (HEADER + ORDER.replace(b"60=20240301-12:00:00.000", b"60=20240231-12:00:00"), 6, 60),  # no such day
    (HEADER + ORDER.replace(b"60=20240301-12:00:00.000", b"60=20240301-24:00:00"), 6, 60),
    (HEADER + ORDER.replace(b"60=20240301-12:00:00.000", b"60=20240301-12:00:00.1"), 6, 60),
    (HEADER.replace(b"34=2", b"34=-2") + ORDER, 6, 34),                     # SeqNum must be unsigned
    (HEADER.replace(b"34=2", b"34=1234567890123456789") + ORDER, 6, 34),    # and fit in int64
    (HEADER + ORDER + b"55=TEST\x01", 13, 55),                              # tag appears twice
    (HEADER + ORDER + b"49=CLIENT1\x01", 13, 49),                           # header tag repeated in body
    (HEADER + ORDER + b"43=Y\x01", 14, 43),                                 # header tag after body
    (b"34=2\x0135=D\x0149=CLIENT1\x0152=20240301-12:00:00.000\x0156=NUMBEX\x01" + ORDER, 14, 35),
    (HEADER + ORDER + b"10=000\x01", 14, 10),                               # CheckSum inside the body
    (HEADER + ORDER + b"453=2\x01448=A\x01447=D\x01452=1\x01", 16, 453),    # NumInGroup too high
    (HEADER + ORDER + b"453=1\x01448=A\x01448=B\x01", 16, 453),             # NumInGroup too low
    (HEADER + ORDER + b"453=1\x01447=D\x01448=A\x01452=1\x01", 15, 447),    # entry must start with delimiter
    (HEADER + ORDER + b"453=1\x01448=A\x01452=1\x01452=3\x01", 13, 452),    # tag twice in one entry
    (HEADER + ORDER + b"453=x\x01448=A\x01", 6, 453),                       # NumInGroup format
    (HEADER + ORDER + b"18=1 T\x01", 5, 18),                                # multiple-value enum
    (HEADER + ORDER.replace(b"54=1", b"54=12"), 5, 54),                     # char enum
    (HEADER.replace(b"35=D", b"35=ZZ") + ORDER, 11, 35),                    # MsgType FIX 4.4 lacks
    (b"34=2\x0149=CLIENT1\x0152=20240301-12:00:00.000\x0156=NUMBEX\x01", 1, 35),  # no MsgType
])
def test_fault(validator, payload, reason, tag):
    assert fault(validator, payload) == (reason, tag)


def test_groups_are_parsed_and_nested(validator):
    payload = (HEADER + ORDER + b"453=2\x01448=A\x01447=D\x01452=1\x01802=1\x01523=SUB\x01803=1\x01"
               b"448=B\x01452=3\x01")
    message = decode(payload)
    validator.validate(message)
    parties = message.group(453)
    assert [entry.get(448) for entry in parties] == [b"A", b"B"]
    assert parties[0].group(802)[0].get(523) == b"SUB"
    assert parties[1].group(802) == []
    assert message.group(78) == []


def test_header_group_and_multiple_value_enum(validator):
    payload = (HEADER + b"627=1\x01628=HOP\x01629=20240301-12:00:00.000\x01" + ORDER + b"18=1 2 G\x01")
    message = decode(payload)
    validator.validate(message)
    assert message.group(627)[0].get(628) == b"HOP"


@pytest.mark.parametrize("time_value", [
    b"20240301-12:00:00", b"20240301-12:00:00.123", b"20240301-12:00:00.123456",
    b"20240301-12:00:00.123456789", b"20240229-23:59:60",
])
def test_accepted_timestamps(validator, time_value):
    validator.validate(decode(HEADER + ORDER.replace(b"20240301-12:00:00.000", time_value)))


def test_other_value_kinds(validator):
    good = HEADER + ORDER + b"432=20240315\x01200=202403w2\x01126=20240301-13:00:00\x01110=5\x01"
    validator.validate(decode(good))
    assert fault(validator, HEADER + ORDER + b"432=20230229\x01") == (6, 432)   # not a leap year
    assert fault(validator, HEADER + ORDER + b"200=202413\x01") == (6, 200)     # month 13
    assert fault(validator, HEADER + ORDER + b"114=X\x01") == (5, 114)          # boolean with enum Y/N


def test_valid_session_messages(validator):
    base = b"34=2\x0149=NUMBEX\x0152=20240301-12:00:00.000\x0156=CLIENT1\x01"
    for payload in (b"35=0\x01" + base, b"35=1\x01" + base + b"112=T\x01", b"35=2\x01" + base + b"7=1\x0116=0\x01",
                    b"35=4\x01" + base + b"123=Y\x0136=5\x01", b"35=5\x01" + base + b"58=bye\x01",
                    b"35=A\x01" + base + b"98=0\x01108=30\x01141=Y\x01553=u\x01554=p\x01",
                    b"35=3\x01" + base + b"45=1\x01371=44\x01372=D\x01373=6\x0158=t\x01"):
        validator.validate(decode(payload))
    assert fault(validator, b"35=1\x01" + base) == (1, 112)
    assert fault(validator, b"35=A\x01" + base + b"98=0\x01") == (1, 108)
    assert fault(validator, b"35=A\x01" + base + b"98=7\x01108=30\x01") == (5, 98)


def test_unexpanded_msg_type_only_checks_header(validator):
    # QuoteRequest (R) is FIX 4.4 but not expanded: its body is not checked.
    validator.validate(decode(HEADER.replace(b"35=D", b"35=R") + b"131=Q1\x0155=X\x0155=Y\x01"))
    assert fault(validator, HEADER.replace(b"35=D", b"35=R").replace(b"34=2\x01", b"")) == (1, 34)
    assert fault(validator, HEADER.replace(b"35=D", b"35=R") + b"49=X\x01") == (13, 49)


def test_data_field_with_soh_is_valid(validator):
    message = decode(HEADER + ORDER + b"354=3\x01355=a\x01b\x01")
    validator.validate(message)
    assert message.get(355) == b"a\x01b"
