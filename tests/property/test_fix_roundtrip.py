"""Property tests: random valid FIX messages survive encode -> decode and validation."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path

import simplefix
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fix_helpers import ConnectionPair  # noqa: E402
from numbex.protocol.fix import (  # noqa: E402
    ApplicationMessage, FixDecoder, FixMessage, MessageValidator, encode_fields, frame,
)
from numbex.protocol.fix import dictionary  # noqa: E402
from numbex.protocol.fix.schema import (  # noqa: E402
    ENUM_VALUES, KIND_BOOLEAN, KIND_CHAR, KIND_DATE, KIND_ENUM, KIND_FLOAT, KIND_INT, KIND_MONTH_YEAR,
    KIND_MULTI_ENUM, KIND_TEXT, KIND_TIME, KIND_TIMESTAMP, KIND_UINT, build_schema,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DATA_TAGS = set(dictionary.DATA_LENGTH_TAGS) | set(dictionary.DATA_LENGTH_TAGS.values())
PLAIN_TAGS = sorted(tag for tag in dictionary.FIELDS if tag not in DATA_TAGS and tag not in (8, 9, 10))

value_bytes = st.binary(min_size=1, max_size=30).filter(lambda value: b"\x01" not in value)
plain_field = st.tuples(st.sampled_from(PLAIN_TAGS), value_bytes)
data_field = st.tuples(st.sampled_from(sorted(dictionary.DATA_LENGTH_TAGS.items())), st.binary(min_size=1, max_size=40))


def fields_strategy():
    item = st.one_of(plain_field.map(lambda field: [field]),
                     data_field.map(lambda pair: [(pair[0][0], b"%d" % len(pair[1])), (pair[0][1], pair[1])]))
    return st.lists(item, min_size=1, max_size=25).map(
        lambda groups: [(35, b"D")] + [field for group in groups for field in group])


def decode_stream(data: bytes, chunk: int) -> list:
    decoder = FixDecoder()
    items = []
    for start in range(0, len(data), chunk):
        decoder.receive_data(data[start:start + chunk])
        while (item := decoder.next_message()) is not None:
            items.append(item)
    return items


@SETTINGS
@given(fields=fields_strategy(), chunk=st.integers(min_value=1, max_value=400))
def test_encode_decode_round_trip(fields, chunk):
    data = frame(encode_fields(fields))
    items = decode_stream(data + data, chunk)
    assert len(items) == 2 and all(isinstance(item, FixMessage) for item in items)
    for message in items:
        assert message.raw == data
        assert message.fields() == fields


@SETTINGS
@given(fields=st.lists(plain_field, min_size=1, max_size=25))
def test_agrees_with_simplefix(fields):
    data = frame(encode_fields([(35, b"D")] + fields))
    parser = simplefix.FixParser()
    parser.append_buffer(data)
    reference = parser.get_message()
    decoder = FixDecoder()
    decoder.receive_data(data)
    ours = decoder.next_message()
    assert [(int(tag), value) for tag, value in reference.pairs][2:-1] == ours.fields()


def value_for(kind: int, key: bytes):
    if kind == KIND_ENUM:
        return st.sampled_from(sorted(ENUM_VALUES[key]))
    if kind == KIND_MULTI_ENUM:
        return st.lists(st.sampled_from(sorted(ENUM_VALUES[key])), min_size=1, max_size=3).map(b" ".join)
    if kind == KIND_INT:
        return st.integers(-10**9, 10**9).map(lambda number: b"%d" % number)
    if kind == KIND_UINT:
        return st.integers(0, 10**9).map(lambda number: b"%d" % number)
    if kind == KIND_FLOAT:
        return st.decimals(-10**6, 10**6, places=4, allow_nan=False, allow_infinity=False).map(
            lambda number: f"{number:f}".encode())
    if kind == KIND_CHAR:
        return st.sampled_from([b"A", b"z", b"7"])
    if kind == KIND_BOOLEAN:
        return st.sampled_from([b"Y", b"N"])
    if kind == KIND_TIMESTAMP:
        return st.datetimes(min_value=datetime(1900, 1, 1)).map(
            lambda moment: moment.strftime("%Y%m%d-%H:%M:%S.%f")[:-3].encode())
    if kind == KIND_TIME:
        return st.times().map(lambda moment: moment.strftime("%H:%M:%S").encode())
    if kind == KIND_DATE:
        return st.dates(min_value=date(1900, 1, 1)).map(lambda day: day.strftime("%Y%m%d").encode())
    if kind == KIND_MONTH_YEAR:
        return st.dates(min_value=date(1900, 1, 1)).map(lambda day: day.strftime("%Y%m").encode())
    assert kind == KIND_TEXT
    return st.text("abcXYZ09 -_.", min_size=1, max_size=12).map(str.encode)


SCHEMA = build_schema()
ORDER = SCHEMA.messages[b"D"]
OPTIONAL_ORDER_FIELDS = sorted(key for key, kind in ORDER.body.fields.items()
                               if kind <= 11 and key not in (b"11", b"54", b"60", b"40")
                               and int(key) not in DATA_TAGS)


@st.composite
def valid_orders(draw):
    chosen = draw(st.lists(st.sampled_from(OPTIONAL_ORDER_FIELDS), unique=True, max_size=20))
    body = [(int(key), draw(value_for(ORDER.body.fields[key], key))) for key in chosen]
    required = [(11, b"ORDER1"), (54, draw(value_for(KIND_ENUM, b"54"))), (60, b"20240301-12:00:00.000"),
                (40, draw(value_for(KIND_ENUM, b"40")))]
    header = [(35, b"D"), (34, b"7"), (49, b"CLIENT1"), (52, b"20240301-12:00:00.000"), (56, b"NUMBEX")]
    return header + draw(st.permutations(required + body))


@SETTINGS
@given(fields=valid_orders())
def test_random_valid_orders_pass_validation(fields):
    decoder = FixDecoder()
    decoder.receive_data(frame(encode_fields(fields)))
    MessageValidator(SCHEMA).validate(decoder.next_message())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders=st.lists(valid_orders(), min_size=1, max_size=4))
def test_session_delivers_valid_orders_unchanged(orders):
    pair = ConnectionPair()
    pair.logon()
    for order in orders:
        body = [(tag, value) for tag, value in order if tag not in (35, 34, 49, 52, 56)]
        pair.deliver(pair.initiator.send(b"D", encode_fields(body), pair.now), to_acceptor=True)
    delivered = [event for event in pair.acceptor_events if isinstance(event, ApplicationMessage)]
    assert len(delivered) == len(orders)
    for event, order in zip(delivered, orders):
        sent = [(tag, value) for tag, value in order if tag not in (35, 34, 49, 52, 56)]
        assert event.message.fields()[5:] == sent
