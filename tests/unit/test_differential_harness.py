"""The differential harness itself: it passes on agreeing matchers and catches differences.

These run without the Numba engine: the reference matcher is compared with itself
(which also checks the invariants of docs/SEMANTICS.md on its output) and with
deliberately broken copies.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from numbex.engine import records as r  # noqa: E402
from differential import SPECS, EventLedger, batch_sizes, check_books, describe_mismatch, run_differential  # noqa: E402
from oracle import ReferenceMatcher  # noqa: E402
from streams import random_stream  # noqa: E402


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_reference_output_satisfies_the_invariants(spec_name):
    spec = SPECS[spec_name]
    commands = random_stream(spec, 20_000, seed=5)
    events = run_differential(spec, commands, batch_sizes(len(commands), 5), engine_class=ReferenceMatcher)
    assert events > len(commands)


def test_random_streams_cover_every_event_kind_reason_and_cause():
    events = np.concatenate([ReferenceMatcher(SPECS[name]).process(random_stream(SPECS[name], 40_000, seed=1))
                             for name in SPECS])
    assert set(events["kind"].tolist()) == set(int(kind) for kind in r.EventKind)
    rejects = np.isin(events["kind"], [r.EV_REJECTED, r.EV_CANCEL_REJECTED, r.EV_REPLACE_REJECTED])
    engine_reasons = {int(reason) for reason in r.Reason} - {
        r.REASON_NONE, r.REASON_OFF_LOT, r.REASON_OFF_TICK, r.REASON_SYSTEM_BUSY, r.REASON_NOT_DURABLE,
        r.REASON_ENGINE_DOWN, r.REASON_THROTTLED}
    assert set(events["reason"][rejects].tolist()) == engine_reasons
    causes = set(events["reason"][events["kind"] == r.EV_CANCELLED].tolist())
    assert causes == {int(cause) for cause in r.Cause}
    replaced_flags = set(events["flags"][events["kind"] == r.EV_REPLACED].tolist())
    assert {0, r.EV_FLAG_REDUCED, r.EV_FLAG_REMOVED} <= {flags & ~r.EV_FLAG_POST_ONLY for flags in replaced_flags}


def test_describe_mismatch_names_the_differing_field():
    spec = SPECS["one_instrument"]
    commands = random_stream(spec, 200, seed=3)
    want = ReferenceMatcher(spec).process(commands)
    assert describe_mismatch(want.copy(), want, commands) is None
    got = want.copy()
    cancelled = int(np.flatnonzero(want["kind"] == r.EV_CANCELLED)[0])
    got["reason"][cancelled] = r.CAUSE_IOC if want["reason"][cancelled] != r.CAUSE_IOC else r.CAUSE_FOK
    report = describe_mismatch(got, want, commands)
    assert f"first difference at event {cancelled}" in report
    assert "CANCELLED" in report
    reason_line = next(line for line in report.splitlines() if line.strip().startswith("reason"))
    assert reason_line.endswith("<--")
    assert "first difference at event" in describe_mismatch(want[:-1], want, commands)
    assert "not EVENT" in describe_mismatch(commands, want, commands)


class _Tampered(ReferenceMatcher):
    """A reference matcher whose trades report one lot too many for the resting side."""

    def process(self, commands):
        events = super().process(commands)
        trades = events["kind"] == r.EV_TRADE
        events["other_cum"][trades] += 1
        return events


def test_ledger_catches_a_quantity_that_is_not_conserved():
    spec = SPECS["one_instrument"]
    commands = random_stream(spec, 2000, seed=4)
    events = _Tampered(spec).process(commands)
    with pytest.raises(AssertionError, match="ledger"):
        EventLedger().feed(events, commands)


def test_ledger_catches_a_second_terminal_event():
    spec = SPECS["one_instrument"]
    commands = random_stream(spec, 2000, seed=4)
    events = ReferenceMatcher(spec).process(commands)
    cancel = events[events["kind"] == r.EV_CANCELLED][:1].copy()
    cancel["seq"] = commands["seq"][-1]
    cancel["exec_id"] = (int(cancel["seq"][0]) << r.EXEC_ID_SHIFT) | int(np.sum(events["seq"] == cancel["seq"][0]))
    with pytest.raises(AssertionError, match="not open"):
        EventLedger().feed(np.concatenate([events, cancel]), commands)


class _FakeBook:
    """Minimal matcher double with a crossed book."""

    resting_count, stop_count = 2, 0

    def book(self, symbol, side):
        return [(1051, [(1, 5)])] if side == r.SIDE_BUY else [(1050, [(2, 5)])]

    def stops(self, symbol):
        return []

    def last_price(self, symbol):
        return 0


def test_check_books_catches_a_crossed_book():
    spec = SPECS["one_instrument"]
    ledger = EventLedger()
    ledger.open = {1: [5, 0, 5], 2: [5, 0, 5]}
    fake = _FakeBook()
    with pytest.raises(AssertionError, match="crossed"):
        check_books(spec, fake, fake, ledger)


def test_run_differential_catches_a_matcher_that_differs():
    spec = SPECS["one_instrument"]
    commands = random_stream(spec, 3000, seed=6)
    with pytest.raises(AssertionError, match="first difference"):
        run_differential(spec, commands, batch_sizes(len(commands), 6), engine_class=_Tampered)
