"""Order-entry building blocks: exact price/quantity conversion, record structs, throttle,
reject-code table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numbex.engine import records as r
from numbex.server.fix_executions import EVENT_STRUCT
from numbex.server.fix_orders import COMMAND_STRUCT
from numbex.server.fix_reports import REJECT_CODES, clean_text, reject_codes
from numbex.server.fix_throttle import NANOS, Throttle
from numbex.server.fix_units import InstrumentUnits, RequestRefused

CENT = InstrumentUnits("TEST", "0.01", 1)
NICKEL = InstrumentUnits("LOTS", "0.05", 100)
WHOLE = InstrumentUnits("BIG", "5", 10)


@pytest.mark.parametrize("units, text, ticks", [
    (CENT, b"100", 10000), (CENT, b"100.5", 10050), (CENT, b"100.50", 10050), (CENT, b"100.500000", 10050),
    (CENT, b"0.01", 1), (CENT, b"-1.25", -125), (NICKEL, b"50.05", 1001), (NICKEL, b"50.10", 1002),
    (WHOLE, b"15", 3), (WHOLE, b"15.000", 3),
])
def test_prices_convert_exactly(units, text, ticks):
    assert units.price_ticks(text) == ticks


@pytest.mark.parametrize("units, text", [
    (CENT, b"100.001"), (CENT, b"100.005"), (CENT, b"0.009999999999"), (NICKEL, b"50.01"), (NICKEL, b"50.07"),
    (WHOLE, b"16"), (WHOLE, b"15.5"),
])
def test_prices_off_the_grid_are_refused_never_rounded(units, text):
    with pytest.raises(RequestRefused) as error:
        units.price_ticks(text)
    assert error.value.reason == r.REASON_OFF_TICK
    assert "tick size" in error.value.text


def test_price_that_a_float_would_get_wrong_is_exact():
    # 0.1 + 0.2 style: 1.15 / 0.05 = 22.999999999999996 in binary floating point.
    assert InstrumentUnits("X", "0.05", 1).price_ticks(b"1.15") == 23


def test_price_out_of_range_is_refused():
    with pytest.raises(RequestRefused) as error:
        CENT.price_ticks(b"9" * 30)
    assert error.value.reason == r.REASON_OUTSIDE_BAND


@pytest.mark.parametrize("units, text, lots", [
    (CENT, b"100", 100), (CENT, b"100.0", 100), (NICKEL, b"300", 3), (NICKEL, b"100.00", 1),
])
def test_quantities_are_whole_lots(units, text, lots):
    assert units.quantity_lots(text) == lots


@pytest.mark.parametrize("units, text, reason", [
    (CENT, b"1.5", r.REASON_OFF_LOT), (NICKEL, b"150", r.REASON_OFF_LOT), (NICKEL, b"99", r.REASON_OFF_LOT),
    (CENT, b"0", r.REASON_BAD_QUANTITY), (CENT, b"-5", r.REASON_BAD_QUANTITY),
    (CENT, b"1" + b"0" * 20, r.REASON_QTY_ABOVE_MAX),
])
def test_bad_quantities_are_refused(units, text, reason):
    with pytest.raises(RequestRefused) as error:
        units.quantity_lots(text)
    assert error.value.reason == reason


def test_formatting_back():
    assert CENT.price_text(10050) == b"100.50"
    assert CENT.price_text(-125) == b"-1.25"
    assert NICKEL.price_text(1001) == b"50.05"
    assert WHOLE.price_text(3) == b"15"
    assert NICKEL.quantity_text(3) == b"300"


def test_average_price_is_exact_or_rounded_half_up():
    assert CENT.average_text(0, 0) == b"0"
    assert CENT.average_text(10050 * 3, 3) == b"100.50"
    # 30 @ 100.05 + 70 @ 100.10 = 10008.5 / 100 = 100.085
    assert CENT.average_text(10005 * 30 + 10010 * 70, 100) == b"100.085"
    # 1 @ 1.00 + 2 @ 1.01 -> 3.02 / 3 = 1.006666666... -> 8 decimals at most, rounded half up
    assert CENT.average_text(100 + 2 * 101, 3) == b"1.00666667"


def test_command_struct_matches_the_record():
    assert COMMAND_STRUCT.size == r.COMMAND.itemsize
    buffer = bytearray(r.COMMAND.itemsize)
    COMMAND_STRUCT.pack_into(buffer, 0, 1, 2, 3, 4, -5, 6, 7, -8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19)
    record = np.frombuffer(bytes(buffer), dtype=r.COMMAND)[0]
    names = r.COMMAND.names
    assert [int(record[name]) for name in names] == [1, 2, 3, 4, -5, 6, 7, -8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
                                                     18, 19]


def test_event_struct_matches_the_record():
    assert EVENT_STRUCT.size == r.EVENT.itemsize
    events = np.zeros(1, dtype=r.EVENT)
    for index, name in enumerate(r.EVENT.names):
        events[name] = index + 1
    assert EVENT_STRUCT.unpack(events.tobytes()) == tuple(range(1, len(r.EVENT.names) + 1))


def test_every_reason_has_a_fix_code_and_text():
    for reason in r.Reason:
        if reason == r.REASON_NONE:
            continue
        assert reason in REJECT_CODES, reason
        order_code, cancel_code, text = reject_codes(reason)
        assert order_code in {b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9", b"10", b"11", b"13",
                              b"14", b"15", b"99"}
        assert cancel_code in {b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"99"}
        assert text


def test_text_is_cleaned_for_the_wire():
    assert clean_text("a=b\x01c") == b"a?b?c"
    assert clean_text("") == b"-"


def test_throttle_token_bucket_and_abuse():
    throttle = Throttle(10, 0, logout_excess=5, logout_seconds=2)
    assert all(throttle.allow(0) for _ in range(10))          # one second's burst
    assert not throttle.allow(0)
    assert throttle.excess_run == 1 and not throttle.abusive(0)
    assert throttle.allow(NANOS // 10)                        # 100 ms refills one token
    assert throttle.excess_run == 0
    for _ in range(5):
        throttle.allow(NANOS // 10)
    assert throttle.abusive(NANOS // 10)                      # 5 in a row


def test_throttle_sustained_abuse_by_time():
    throttle = Throttle(1000, 0, burst=1, logout_excess=10**9, logout_seconds=0.5)
    assert throttle.allow(0)
    now = 0
    outcomes = []
    for _ in range(10):
        now += 500_000                 # 0.5 ms at 1000/s: half a token, so every other message passes
        outcomes.append(throttle.allow(now))
    assert outcomes == [False, True] * 5
    assert not throttle.abusive(now)   # each run of excess is broken by an allowed message
    slow = Throttle(1, 0, burst=1, logout_excess=10**9, logout_seconds=0.5)
    assert slow.allow(0)
    for step in range(1, 7):
        assert not slow.allow(step * 100_000_000)
    assert slow.abusive(6 * 100_000_000)


def test_throttle_rejects_bad_settings():
    with pytest.raises(ValueError):
        Throttle(0, 0)


def reference_ticks(units: InstrumentUnits, text: bytes):
    """Decimal arithmetic only: ticks, or None when off the grid."""
    from decimal import Decimal

    ticks = Decimal(text.decode()) / units.tick
    return int(ticks) if ticks == ticks.to_integral_value() else None


@given(whole=st.integers(0, 10**9), fraction=st.text("0123456789", max_size=8), trailing=st.integers(0, 3))
@settings(max_examples=500, deadline=None)
def test_price_conversion_agrees_with_decimal_arithmetic(whole, fraction, trailing):
    text = (b"%d" % whole) + ((b"." + fraction.encode() + b"0" * trailing) if fraction or trailing else b"")
    for units in (CENT, NICKEL, WHOLE, InstrumentUnits("Q", "0.0025", 1)):
        expected = reference_ticks(units, text)
        if expected is None:
            with pytest.raises(RequestRefused):
                units.price_ticks(text)
        else:
            assert units.price_ticks(text) == expected
            assert units.price_ticks(units.price_text(expected)) == expected
