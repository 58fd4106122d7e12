"""A small harness for hand-written matching scenarios.

A :class:`Scenario` feeds one command at a time to a matcher (the reference
matcher by default) and returns its events as dicts of their **nonzero** fields,
after checking the fields every event shares (``seq``, ``ts_ns``, ``exec_id``).
Comparing such dicts with an expected list compares every field, since a field
left out of an expected dict must be zero.

Each command gets ``seq`` = its 1-based position, ``ts_ns`` = 1000 * seq and, by
default, ``client_ref`` = 500 + seq, so the client_ref rule is visible.
"""

from __future__ import annotations

import numpy as np

from numbex.engine import records as r
from numbex.engine.spec import EngineSpec

_SHARED = ("seq", "ts_ns", "exec_id")
ORDER_FIELDS = ("account", "session", "symbol", "side", "ord_type", "tif")


def event_dict(event: np.void) -> dict[str, int]:
    """The nonzero fields of one EVENT record, shared fields excluded."""
    return {name: int(event[name]) for name in r.EVENT.names
            if name not in _SHARED and int(event[name]) != 0}


class Scenario:
    """Drive a matcher command by command and describe expected events compactly.

    Parameters
    ----------
    matcher : object
        Anything with ``process(commands) -> events`` (reference matcher or engine).
    session_of_account : callable, optional
        Session used for an account when a command does not name one.
    """

    def __init__(self, matcher, session_of_account=lambda account: 100 + account) -> None:
        self.matcher = matcher
        self.seq = 0
        self._session_of_account = session_of_account
        self._orders: dict[int, dict[str, int]] = {}

    def ref(self, offset: int = 0) -> int:
        """client_ref of the last command (or of the command ``offset`` before it)."""
        return 500 + self.seq - offset

    def send(self, **fields) -> list[dict[str, int]]:
        """Process one command; return its events as nonzero-field dicts."""
        self.seq += 1
        command = np.zeros(1, dtype=r.COMMAND)
        fields.setdefault("client_ref", 500 + self.seq)
        fields.setdefault("session", self._session_of_account(fields.get("account", 0)) & 0xFFFFFFFF)
        for name, value in fields.items():
            command[0][name] = value
        command[0]["seq"] = self.seq
        command[0]["ts_ns"] = 1000 * self.seq
        events = self.matcher.process(command)
        assert len(events) >= 1, "every command produces at least one event"
        for index, event in enumerate(events):
            assert int(event["seq"]) == self.seq
            assert int(event["ts_ns"]) == 1000 * self.seq
            assert int(event["exec_id"]) == (self.seq << r.EXEC_ID_SHIFT) | index
        if fields.get("op") == r.OP_NEW:
            self._orders[fields["order_id"]] = {
                "order_id": fields["order_id"],
                "flags": r.EV_FLAG_POST_ONLY if fields.get("flags", 0) & r.CMD_FLAG_POST_ONLY else 0,
                **{name: int(command[0][name]) for name in ORDER_FIELDS},
            }
        return [event_dict(event) for event in events]

    def new(self, order_id: int, side: int, qty: int, price: int = 0, **fields) -> list[dict[str, int]]:
        """Send a NEW (LIMIT GTC unless ``ord_type`` / ``tif`` say otherwise)."""
        return self.send(op=r.OP_NEW, order_id=order_id, side=side, qty=qty, price=price, **fields)

    def ev(self, kind: int, order_id: int, **fields) -> dict[str, int]:
        """Expected event about order ``order_id``: its order fields plus ``fields``.

        ``flags`` given here are OR-ed with the order's post-only flag; zero
        values are dropped, as in :func:`event_dict`.
        """
        base = dict(self._orders[order_id])
        flags = base.pop("flags") | fields.pop("flags", 0)
        expected = {"kind": kind, **base, "flags": flags, **fields}
        return {name: value for name, value in expected.items() if value != 0}

    @staticmethod
    def raw(kind: int, **fields) -> dict[str, int]:
        """Expected event given field by field (zero values dropped)."""
        return {name: value for name, value in {"kind": kind, **fields}.items() if value != 0}


# Accounts of the scenario spec: 0 and 1 without STP, then one per STP mode.
SCENARIO_STP_MODES = (r.STP_OFF, r.STP_OFF, r.STP_CANCEL_RESTING, r.STP_CANCEL_AGGRESSOR,
                      r.STP_CANCEL_BOTH)


def scenario_spec(n_instruments: int = 1, max_orders: int = 100, max_stops: int = 100) -> EngineSpec:
    """Band [50, 150], at most 1000 lots per order, accounts as :data:`SCENARIO_STP_MODES`."""
    return EngineSpec(band_low=(50,) * n_instruments, band_high=(150,) * n_instruments,
                      max_order_lots=(1000,) * n_instruments,
                      states=(r.STATE_OPEN,) * n_instruments, stp_modes=SCENARIO_STP_MODES,
                      max_orders=max_orders, max_stops=max_stops)
