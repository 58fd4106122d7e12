"""Differential harness: the Numba engine against the reference matcher.

:func:`run_differential` feeds one command stream to both in batches, requires
identical EVENT arrays (a mismatch is reported field by field, see
:func:`describe_mismatch`) and after every batch checks the invariants of
docs/SEMANTICS.md on the events (:class:`EventLedger`) and on both matchers'
books (:func:`check_books`).
"""

from __future__ import annotations

import numpy as np

from numbex.engine import records as r
from numbex.engine.spec import EngineSpec

STP_MIX = (r.STP_OFF, r.STP_OFF, r.STP_CANCEL_RESTING, r.STP_CANCEL_AGGRESSOR, r.STP_CANCEL_BOTH)
SPECS = {
    "one_instrument": EngineSpec(
        band_low=(1000,), band_high=(1100,), max_order_lots=(1000,), states=(r.STATE_OPEN,),
        stp_modes=STP_MIX, max_orders=4096, max_stops=1024),
    # Different bands (one only 9 ticks wide), lot limits and initial states.
    "several_instruments": EngineSpec(
        band_low=(50, 1000, 1, 5000), band_high=(150, 1008, 30, 9000),
        max_order_lots=(1000, 8, 10**6, 50),
        states=(r.STATE_OPEN, r.STATE_OPEN, r.STATE_HALTED, r.STATE_CLOSED),
        stp_modes=STP_MIX + (r.STP_CANCEL_AGGRESSOR,), max_orders=4096, max_stops=1024),
    # Books and stop lists fill up: BOOK_FULL, STOPS_FULL and triggered-stop BOOK_FULL.
    "tiny_capacity": EngineSpec(
        band_low=(100, 100), band_high=(120, 120), max_order_lots=(30, 30),
        states=(r.STATE_OPEN, r.STATE_OPEN),
        stp_modes=(r.STP_OFF, r.STP_CANCEL_AGGRESSOR, r.STP_CANCEL_RESTING), max_orders=8, max_stops=3),
}


# --------------------------------------------------------------------------- event diff
def _field_text(name: str, event: np.void) -> str:
    value = int(event[name])
    if name == "kind":
        try:
            return f"{value} ({r.EventKind(value).name})"
        except ValueError:
            return str(value)
    if name == "reason" and value:
        return f"{value} ({r.reason_text(int(event['kind']), value)})"
    return str(value)


def describe_mismatch(got: np.ndarray, want: np.ndarray, commands: np.ndarray) -> str | None:
    """None if ``got == want``; else a readable account of the first differing event."""
    if got.dtype != r.EVENT:
        return f"engine returned dtype {got.dtype}, not EVENT"
    if len(got) == len(want) and np.array_equal(got, want):
        return None
    index = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), min(len(got), len(want)))
    lines = [f"engine gave {len(got)} events, reference {len(want)}; first difference at event {index}"]
    reference = want[index] if index < len(want) else got[index]
    seq = int(reference["seq"])
    command = commands[commands["seq"] == seq]
    if len(command):
        fields = ", ".join(f"{name}={int(command[0][name])}" for name in r.COMMAND.names if int(command[0][name]))
        op = int(command[0]["op"])
        lines.append(f"command seq {seq} ({r.Op(op).name if op in r.Op._value2member_map_ else op}): {fields}")
    for before in range(max(0, index - 3), index):
        lines.append(f"  earlier event {before}: " + ", ".join(
            f"{name}={_field_text(name, want[before])}" for name in ("kind", "order_id", "other_id", "qty")))
    if index >= len(got):
        lines.append("engine: (missing)")
    if index >= len(want):
        lines.append("reference: (missing)")
    lines.append(f"{'field':>14}  {'engine':>28}  {'reference':>28}")
    for name in r.EVENT.names:
        engine_text = _field_text(name, got[index]) if index < len(got) else "-"
        reference_text = _field_text(name, want[index]) if index < len(want) else "-"
        marker = "  <--" if engine_text != reference_text else ""
        lines.append(f"{name:>14}  {engine_text:>28}  {reference_text:>28}{marker}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- invariants
class EventLedger:
    """Per-order quantities rebuilt from events; checks conservation and termination.

    Every accepted order is open until exactly one terminal event (TRADE to leaves 0,
    CANCELLED, REPLACED to leaves 0); ``cum + leaves == qty`` after every event, and
    each TRADE moves the same quantity for both sides.
    """

    def __init__(self) -> None:
        self.open: dict[int, list[int]] = {}  # order_id -> [qty, cum, leaves]
        self.events = 0

    def _order(self, order_id: int, event: dict) -> list[int]:
        assert order_id in self.open, f"event about order {order_id}, which is not open: {event}"
        return self.open[order_id]

    def _close_if_done(self, order_id: int) -> None:
        if self.open[order_id][2] == 0:
            del self.open[order_id]

    def feed(self, events: np.ndarray, commands: np.ndarray) -> None:
        """Check one batch of events produced by ``commands``."""
        seqs = commands["seq"].tolist()
        by_command = {seq: [] for seq in seqs}
        for values in events.tolist():
            event = dict(zip(r.EVENT.names, values))
            assert event["seq"] in by_command, f"event of unknown seq {event['seq']}"
            by_command[event["seq"]].append(event)
        event_seqs = events["seq"].tolist()
        assert event_seqs == sorted(event_seqs), "events out of command order"
        for seq in seqs:
            group = by_command[seq]
            assert group, f"command seq {seq} produced no event"
            for index, event in enumerate(group):
                assert event["exec_id"] == (seq << r.EXEC_ID_SHIFT) | index, event
                self._apply(event)
            self._check_counts(group)
            self.events += len(group)

    def _apply(self, event: dict) -> None:
        kind, order_id = event["kind"], event["order_id"]
        if kind == r.EV_ACCEPTED:
            assert order_id not in self.open, f"order {order_id} accepted while open"
            assert event["qty"] > 0 and event["leaves"] == event["qty"] and event["cum"] == 0, event
            self.open[order_id] = [event["qty"], 0, event["qty"]]
        elif kind == r.EV_TRADE:
            quantity = event["qty"]
            assert quantity > 0, event
            for party, leaves, cum in ((order_id, "leaves", "cum"),
                                       (event["other_id"], "other_leaves", "other_cum")):
                order = self._order(party, event)
                order[1] += quantity
                order[2] -= quantity
                assert (order[2], order[1]) == (event[leaves], event[cum]), f"{event} vs ledger {order}"
                assert order[2] >= 0 and order[1] + order[2] == order[0], event
                self._close_if_done(party)
        elif kind == r.EV_CANCELLED:
            order = self._order(order_id, event)
            assert (event["qty"], event["cum"], event["leaves"]) == (order[2], order[1], 0), f"{event} vs {order}"
            del self.open[order_id]
        elif kind == r.EV_REPLACED:
            order = self._order(order_id, event)
            assert event["aux"] == order[2] and event["cum"] == order[1], f"{event} vs {order}"
            assert event["qty"] == event["cum"] + event["leaves"] and event["leaves"] >= 0, event
            order[0], order[2] = event["qty"], event["leaves"]
            self._close_if_done(order_id)
        elif kind in (r.EV_STOP_TRIGGERED, r.EV_BOOK_ADD):
            order = self._order(order_id, event)
            assert (event["leaves"], event["cum"]) == (order[2], order[1]), f"{event} vs {order}"
            assert event["leaves"] > 0, event

    @staticmethod
    def _check_counts(group: list[dict]) -> None:
        last = group[-1]
        if last["kind"] in (r.EV_MASS_CANCEL_DONE, r.EV_STATE_CHANGED):
            cancelled = sum(1 for event in group if event["kind"] == r.EV_CANCELLED)
            assert last["qty"] == cancelled == len(group) - 1, f"{last} after {cancelled} cancels"


def _normalised_book(matcher, symbol: int, side: int) -> list[tuple[int, list[tuple[int, int]]]]:
    return [(int(price), [(int(order_id), int(leaves)) for order_id, leaves in level])
            for price, level in matcher.book(symbol, side)]


def check_books(spec: EngineSpec, engine, oracle, ledger: EventLedger) -> None:
    """Both matchers hold the same books, stops and last prices, consistent with the ledger."""
    live: dict[int, int] = {}
    resting = stops = 0
    for symbol in range(spec.n_instruments):
        sides = []
        for side in (r.SIDE_BUY, r.SIDE_SELL):
            book = _normalised_book(oracle, symbol, side)
            assert _normalised_book(engine, symbol, side) == book, f"books differ: symbol {symbol} side {side}"
            prices = [price for price, _ in book]
            best_first = sorted(prices, reverse=side == r.SIDE_BUY)
            assert prices == best_first and len(set(prices)) == len(prices), f"levels out of order: {prices}"
            for price, level in book:
                assert level and spec.band_low[symbol] <= price <= spec.band_high[symbol], (price, level)
                for order_id, leaves in level:
                    assert order_id not in live, f"order {order_id} rests twice"
                    live[order_id] = leaves
                    resting += 1
            sides.append(prices)
        bids, asks = sides
        assert not bids or not asks or bids[0] < asks[0], f"symbol {symbol} crossed at rest: {bids[0]} >= {asks[0]}"
        stop_ids = [int(order_id) for order_id in oracle.stops(symbol)]
        assert [int(order_id) for order_id in engine.stops(symbol)] == stop_ids, f"stops differ: symbol {symbol}"
        for order_id in stop_ids:
            assert order_id not in live, f"order {order_id} is live twice"
            live[order_id] = ledger.open.get(order_id, [0, 0, -1])[2]
            stops += 1
        assert int(engine.last_price(symbol)) == oracle.last_price(symbol), f"last price differs: {symbol}"
    assert int(engine.resting_count) == oracle.resting_count == resting
    assert int(engine.stop_count) == oracle.stop_count == stops
    assert live == {order_id: order[2] for order_id, order in ledger.open.items()}, "live orders != open orders"


def batch_sizes(total: int, seed: int, largest: int = 500) -> list[int]:
    """Varied batch sizes summing to ``total``: singles, small batches and up to ``largest``."""
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < total:
        kind = rng.integers(0, 4)
        size = (1, int(rng.integers(2, 16)), int(rng.integers(16, 128)), int(rng.integers(128, largest + 1)))[kind]
        sizes.append(min(size, total - sum(sizes)))
    return sizes


def run_differential(spec: EngineSpec, commands: np.ndarray, sizes: list[int], engine_class=None) -> int:
    """Process ``commands`` in batches of ``sizes`` on the engine and the reference.

    Returns the number of events compared; raises AssertionError on the first difference.
    """
    from oracle import ReferenceMatcher

    if engine_class is None:
        from numbex.engine.matcher import Engine as engine_class
    engine, oracle, ledger = engine_class(spec), ReferenceMatcher(spec), EventLedger()
    start = 0
    for size in sizes:
        batch = commands[start:start + size]
        start += size
        got, want = engine.process(batch), oracle.process(batch)
        mismatch = describe_mismatch(got, want, batch)
        assert mismatch is None, mismatch
        ledger.feed(want, batch)
        check_books(spec, engine, oracle, ledger)
    assert start == len(commands), f"batch sizes cover {start} of {len(commands)} commands"
    return ledger.events


def main(argv: list[str]) -> int:
    """``python tests/differential.py SPEC SEED COUNT``: one random-stream run, for subprocesses.

    Prints the number of commands and events compared; exits 1 with the mismatch
    report on a difference.
    """
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from streams import random_stream

    spec_name, seed, count = argv[0], int(argv[1]), int(argv[2])
    spec = SPECS[spec_name]
    commands = random_stream(spec, count, seed)
    try:
        events = run_differential(spec, commands, batch_sizes(count, seed))
    except AssertionError as error:
        print(f"{spec_name} seed {seed}: {error}")
        return 1
    print(f"{spec_name} seed {seed}: {count} commands, {events} events agree")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
