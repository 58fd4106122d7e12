"""Random command streams for the differential tests and benchmarks.

Two generators of the same mix:

- :func:`command_streams`: a hypothesis strategy (shrinks to small failing streams);
- :func:`random_stream`: a numpy-seeded generator, fast enough for 10^5-10^6 commands.

Both cover every op, order type, TIF and flag, cancels and replaces of live and
unknown ids (with and without ``CMD_FLAG_QTY_IS_LEAVES``), mass cancels with every
filter kind, SET_STATE (halt, resume, close, with and without ``CMD_FLAG_CANCEL_ALL``)
and a bad value for every reject reason.  Prices sit within a few ticks of the
band's middle so that orders cross often and stops trigger.  An order id decides
its usual owner (:func:`owner_of`) and instrument (:func:`symbol_of`), so cancels
and replaces usually name the right account and instrument and sometimes not.
Streams have ``seq`` increasing from ``first_seq`` (default 1) and increasing ``ts_ns``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from numbex.engine import records as r
from numbex.engine.spec import EngineSpec

BASE_TS_NS = 1_700_000_000_000_000_000
ID_POOL = 40  # ids named by hypothesis mass cancels and unknown ops
NEAR = 6  # prices are drawn within NEAR ticks of the band's middle


def owner_of(order_id: int, spec: EngineSpec) -> int:
    """The account that usually owns ``order_id``."""
    return order_id % spec.n_accounts


def symbol_of(order_id: int, spec: EngineSpec) -> int:
    """The instrument ``order_id`` usually trades."""
    return (order_id // spec.n_accounts) % spec.n_instruments


def build_commands(rows: list[dict], first_seq: int = 1) -> np.ndarray:
    """COMMAND array from dicts of fields; ``seq`` from ``first_seq``, ``ts_ns`` increasing."""
    commands = np.zeros(len(rows), dtype=r.COMMAND)
    for index, row in enumerate(rows):
        for name, value in row.items():
            commands[index][name] = value
    commands["seq"] = np.arange(first_seq, first_seq + len(rows), dtype=np.uint64)
    commands["ts_ns"] = BASE_TS_NS + 1000 * commands["seq"].astype(np.int64)
    return commands


# --------------------------------------------------------------------------- hypothesis
def _pick(draw, weighted: list[tuple[int, object]]):
    """Draw one value from ``[(weight, value), ...]``; shrinks toward the first."""
    roll = draw(st.integers(0, sum(weight for weight, _ in weighted) - 1))
    for weight, value in weighted:
        if roll < weight:
            return value
        roll -= weight
    raise AssertionError("unreachable")


def _middle(spec: EngineSpec, symbol: int) -> int:
    symbol = symbol if symbol < spec.n_instruments else 0
    return (spec.band_low[symbol] + spec.band_high[symbol]) // 2


def _price(draw, spec: EngineSpec, symbol: int, side: int | None = None) -> int:
    """Near the middle (for a side: 60% passive, up to 2 * NEAR ticks on its own side)."""
    symbol_in = symbol if symbol < spec.n_instruments else 0
    low, high = spec.band_low[symbol_in], spec.band_high[symbol_in]
    kind = _pick(draw, [(96, "near"), (1, "low"), (1, "high"), (1, "edge"), (1, "zero")])
    if kind == "near" and side in (r.SIDE_BUY, r.SIDE_SELL) and draw(st.integers(0, 9)) < 6:
        away = draw(st.integers(0, 2 * NEAR))
        return _middle(spec, symbol) + (-away if side == r.SIDE_BUY else away)
    if kind == "near":
        return _middle(spec, symbol) + draw(st.integers(-NEAR, NEAR))
    return {"low": low - 1, "high": high + 1, "edge": draw(st.sampled_from([low, high])), "zero": 0}[kind]


def _identity(draw, spec: EngineSpec, order_id: int) -> dict:
    """Account, session and symbol: usually the id's owner and instrument."""
    account = owner_of(order_id, spec)
    if draw(st.integers(0, 9)) == 0:
        account = draw(st.integers(0, spec.n_accounts))  # may be unknown
    symbol = symbol_of(order_id, spec)
    if draw(st.integers(0, 19)) == 0:
        symbol = draw(st.sampled_from([*range(spec.n_instruments), spec.n_instruments]))
    session = 100 + account + _pick(draw, [(9, 0), (1, 1000)])
    return {"account": account, "session": session, "symbol": symbol}


def _qty(draw, spec: EngineSpec, symbol: int) -> int:
    maximum = spec.max_order_lots[symbol if symbol < spec.n_instruments else 0]
    kind = _pick(draw, [(97, "normal"), (1, "zero"), (1, "negative"), (1, "above")])
    if kind == "normal":
        return draw(st.integers(1, min(12, maximum)))
    return {"zero": 0, "negative": -draw(st.integers(1, 5)), "above": maximum + 1}[kind]


def _new_command(draw, spec: EngineSpec, history: list[dict]) -> dict:
    kind = _pick(draw, [(92, "fresh"), (6, "earlier"), (2, "zero")]) if history else "fresh"
    order_id = {"fresh": len(history) + 1, "zero": 0,
                "earlier": history[-1 - draw(st.integers(0, len(history) - 1))]["order_id"] if history else 0}[kind]
    row = {"op": r.OP_NEW, "order_id": order_id, **_identity(draw, spec, order_id)}
    row["side"] = _pick(draw, [(49, r.SIDE_BUY), (49, r.SIDE_SELL), (1, 2), (1, 9)])
    row["ord_type"] = _pick(draw, [(60, r.ORD_LIMIT), (10, r.ORD_MARKET), (13, r.ORD_STOP),
                                   (14, r.ORD_STOP_LIMIT), (1, 4), (1, 200)])
    row["tif"] = _pick(draw, [(56, r.TIF_GTC), (20, r.TIF_DAY), (12, r.TIF_IOC), (10, r.TIF_FOK), (2, 4)])
    row["flags"] = _pick(draw, [(84, 0), (12, r.CMD_FLAG_POST_ONLY), (4, r.CMD_FLAG_QTY_IS_LEAVES)])
    row["qty"] = _qty(draw, spec, row["symbol"])
    row["price"] = _price(draw, spec, row["symbol"], row["side"])
    row["stop_price"] = _price(draw, spec, row["symbol"])
    row["client_ref"] = draw(st.integers(0, 2**64 - 1))
    return row


def _may_rest(row: dict) -> bool:
    """Whether a NEW could still be live later: a limit or stop, GTC or DAY."""
    return (row["ord_type"] in (r.ORD_LIMIT, r.ORD_STOP, r.ORD_STOP_LIMIT)
            and row["tif"] in (r.TIF_GTC, r.TIF_DAY) and row["side"] <= r.SIDE_SELL)


def _cancel_or_replace(draw, spec: EngineSpec, history: list[dict], op: int) -> dict:
    """Usually about a recent NEW of the stream that may rest (as its owner, often at its price)."""
    target = None
    candidates = [row for row in history[-40:] if _may_rest(row)][-12:] or history[-12:]
    if candidates and draw(st.integers(0, 9)) < 9:
        target = candidates[-1 - draw(st.integers(0, len(candidates) - 1))]
        order_id = target["order_id"]
    else:
        order_id = _pick(draw, [(4, len(history) + 1 + draw(st.integers(0, 5))), (1, 0)])
    row = {"op": op, "order_id": order_id, **_identity(draw, spec, order_id)}
    if target is not None and draw(st.integers(0, 9)) < 9:
        row.update(account=target["account"], session=target["session"], symbol=target["symbol"])
    row["side"] = draw(st.sampled_from([r.SIDE_BUY, r.SIDE_SELL]))
    row["client_ref"] = draw(st.integers(0, 1000))
    if op == r.OP_REPLACE:
        same_price = target is not None and draw(st.booleans())
        row["price"] = target["price"] if same_price else _price(draw, spec, row["symbol"])
        row["qty"] = _qty(draw, spec, row["symbol"])
        row["flags"] = _pick(draw, [(70, 0), (30, r.CMD_FLAG_QTY_IS_LEAVES)])
    return row


def _mass_cancel(draw, spec: EngineSpec) -> dict:
    symbol = _pick(draw, [(4, r.ALL_SYMBOLS), (5, draw(st.integers(0, spec.n_instruments - 1))),
                          (1, spec.n_instruments)])
    account = _pick(draw, [(5, r.ALL_ACCOUNTS), (5, draw(st.integers(0, spec.n_accounts)))])
    session = 100 + draw(st.integers(0, spec.n_accounts)) + _pick(draw, [(3, 0), (1, 1000)])
    session_filter = _pick(draw, [(6, -1), (3, session), (1, -2)])
    return {"op": r.OP_MASS_CANCEL, "symbol": symbol, "account": account, "aux": session_filter,
            "side": _pick(draw, [(5, r.SIDE_BOTH), (2, r.SIDE_BUY), (2, r.SIDE_SELL), (1, 3)]),
            "session": 100 + draw(st.integers(0, spec.n_accounts)),
            "order_id": _pick(draw, [(9, 0), (1, draw(st.integers(1, ID_POOL)))]),
            "client_ref": draw(st.integers(0, 1000))}


def _set_state(draw, spec: EngineSpec) -> dict:
    symbol = _pick(draw, [(9, draw(st.integers(0, spec.n_instruments - 1))), (1, spec.n_instruments)])
    state = _pick(draw, [(16, r.STATE_OPEN), (2, r.STATE_HALTED), (2, r.STATE_CLOSED), (1, 3)])
    return {"op": r.OP_SET_STATE, "symbol": symbol, "aux": state,
            "flags": _pick(draw, [(3, 0), (1, r.CMD_FLAG_CANCEL_ALL)]),
            "account": draw(st.integers(0, spec.n_accounts)), "session": 7,
            "order_id": _pick(draw, [(3, 0), (1, draw(st.integers(1, ID_POOL)))]),
            "stop_price": draw(st.integers(-3, 3)), "client_ref": draw(st.integers(0, 1000))}


def _other_op(draw, spec: EngineSpec) -> dict:
    return {"op": draw(st.sampled_from([0, 6, 200])), "order_id": draw(st.integers(0, ID_POOL)),
            "price": draw(st.integers(-5, 5)), "symbol": draw(st.integers(0, spec.n_instruments)),
            "client_ref": draw(st.integers(0, 1000))}


@st.composite
def command_streams(draw, spec: EngineSpec, max_size: int = 200) -> np.ndarray:
    """Hypothesis strategy of COMMAND arrays of 1..max_size commands for ``spec``.

    The length is drawn first (uniformly, shrinking toward 1; a plain ``st.lists``
    would average only a handful of commands).  NEWs take fresh ids, sometimes an
    earlier one (duplicate or reuse) or 0; cancels and replaces mostly name a recent
    NEW of the stream, as its owner and often at its price.
    """
    rows: list[dict] = []
    history: list[dict] = []  # the NEW commands so far
    for _ in range(draw(st.integers(1, max_size))):
        kind = _pick(draw, [(120, r.OP_NEW), (30, r.OP_CANCEL), (36, r.OP_REPLACE),
                            (3, r.OP_MASS_CANCEL), (3, r.OP_SET_STATE), (3, 0)])
        if kind == r.OP_NEW:
            row = _new_command(draw, spec, history)
            history.append(row)
        elif kind in (r.OP_CANCEL, r.OP_REPLACE):
            row = _cancel_or_replace(draw, spec, history, kind)
        elif kind == r.OP_MASS_CANCEL:
            row = _mass_cancel(draw, spec)
        elif kind == r.OP_SET_STATE:
            row = _set_state(draw, spec)
        else:
            row = _other_op(draw, spec)
        rows.append(row)
    return build_commands(rows)


# --------------------------------------------------------------------------- numpy
def _choose(rng: np.random.Generator, weighted: list[tuple[float, int]], size: int) -> np.ndarray:
    weights = np.array([weight for weight, _ in weighted], dtype=float)
    values = np.array([value for _, value in weighted], dtype=np.int64)
    return rng.choice(values, size=size, p=weights / weights.sum())


def _spoil(rng: np.random.Generator, values: np.ndarray, rate: float, bad: np.ndarray) -> np.ndarray:
    """Replace about ``rate`` of ``values`` by the matching entry of ``bad``."""
    mask = rng.random(len(values)) < rate
    values[mask] = bad[mask]
    return values


def random_stream(spec: EngineSpec, n: int, seed: int, first_seq: int = 1) -> np.ndarray:
    """``n`` random commands for ``spec`` (same mix as :func:`command_streams`), reproducible by seed."""
    rng = np.random.default_rng(seed)
    commands = np.zeros(n, dtype=r.COMMAND)
    commands["seq"] = np.arange(first_seq, first_seq + n, dtype=np.uint64)
    commands["ts_ns"] = BASE_TS_NS + np.cumsum(rng.integers(0, 5000, n))
    commands["client_ref"] = rng.integers(0, 2**63, n)
    op = _choose(rng, [(58, r.OP_NEW), (15, r.OP_CANCEL), (18, r.OP_REPLACE), (0.3, r.OP_MASS_CANCEL),
                       (0.5, r.OP_SET_STATE), (0.3, 0), (0.2, 7)], n)
    is_new = op == r.OP_NEW

    # Order ids: a NEW usually takes a fresh id, sometimes a recent one (duplicate or
    # reuse of a finished id) or 0; cancels and replaces name recent ids.
    fresh = np.cumsum(is_new).astype(np.int64)
    recent = np.maximum(fresh - rng.geometric(1 / 40, n) + 1, 0)
    order_id = np.where(is_new, fresh, recent)
    order_id = _spoil(rng, order_id, 0.03 * is_new, recent)
    order_id = _spoil(rng, order_id, 0.003, np.zeros(n, dtype=np.int64))
    commands["order_id"] = order_id

    accounts, instruments = spec.n_accounts, spec.n_instruments
    account = _spoil(rng, order_id % accounts, 0.08, rng.integers(0, accounts + 1, n))
    symbol = _spoil(rng, (order_id // accounts) % instruments, 0.03, rng.integers(0, instruments + 1, n))
    valid_symbol = np.minimum(symbol, instruments - 1)
    low = np.array(spec.band_low, dtype=np.int64)[valid_symbol]
    high = np.array(spec.band_high, dtype=np.int64)[valid_symbol]
    middle = (low + high) // 2
    max_lots = np.array(spec.max_order_lots, dtype=np.int64)[valid_symbol]
    bad_price = np.choose(rng.integers(0, 4, n), [low - 1, high + 1, np.zeros(n, np.int64), -low])
    # 60% of NEWs and REPLACEs are "scripted": side and a passive price (up to 2 * NEAR
    # ticks from the middle on the order's own side) follow from the order id, so
    # they build a book and replaces often keep the price.  The rest cross it often.
    scripted = rng.random(n) < 0.6
    id_side = (order_id >> 2) & 1
    id_away = ((order_id * 2654435761) >> 8) % (2 * NEAR + 1)
    side = _choose(rng, [(49, r.SIDE_BUY), (49, r.SIDE_SELL), (1, 2), (1, 9)], n)
    side = np.where(scripted & is_new, id_side, side)
    price = np.where(scripted, middle + np.where(id_side == r.SIDE_BUY, -id_away, id_away),
                     middle + rng.integers(-NEAR, NEAR + 1, n))
    commands["price"] = _spoil(rng, price, 0.02, bad_price)
    commands["stop_price"] = _spoil(rng, middle + rng.integers(-NEAR, NEAR + 1, n), 0.02, bad_price)
    bad_qty = np.choose(rng.integers(0, 3, n), [np.zeros(n, np.int64), -rng.integers(1, 5, n), max_lots + 1])
    commands["qty"] = _spoil(rng, np.minimum(rng.integers(1, 13, n), max_lots), 0.02, bad_qty)
    commands["side"] = side
    commands["ord_type"] = _choose(rng, [(60, r.ORD_LIMIT), (10, r.ORD_MARKET), (13, r.ORD_STOP),
                                         (15, r.ORD_STOP_LIMIT), (1, 4), (1, 200)], n)
    commands["tif"] = _choose(rng, [(55, r.TIF_GTC), (20, r.TIF_DAY), (12, r.TIF_IOC), (10, r.TIF_FOK),
                                    (3, 4)], n)
    new_flags = _choose(rng, [(84, 0), (14, r.CMD_FLAG_POST_ONLY), (2, r.CMD_FLAG_QTY_IS_LEAVES)], n)
    replace_flags = _choose(rng, [(70, 0), (30, r.CMD_FLAG_QTY_IS_LEAVES)], n)
    commands["flags"] = np.where(op == r.OP_REPLACE, replace_flags, np.where(is_new, new_flags, 0))
    commands["aux"] = 0
    session = 100 + account + 1000 * (rng.random(n) < 0.1)

    mass = op == r.OP_MASS_CANCEL
    symbol[mass] = _choose(rng, [(4, r.ALL_SYMBOLS), (5, 0), (1, instruments)], mass.sum())
    symbol[mass & (symbol == 0)] = rng.integers(0, instruments, (mass & (symbol == 0)).sum())
    account[mass & (rng.random(n) < 0.5)] = r.ALL_ACCOUNTS
    commands["side"][mass] = _choose(rng, [(5, r.SIDE_BOTH), (2, r.SIDE_BUY), (2, r.SIDE_SELL), (1, 3)],
                                     mass.sum())
    commands["aux"][mass] = _choose(rng, [(6, -1), (3, 0), (1, -2)], mass.sum())
    filter_session = mass & (commands["aux"] == 0)
    commands["aux"][filter_session] = session[filter_session]
    commands["order_id"][mass & (rng.random(n) < 0.9)] = 0

    state = op == r.OP_SET_STATE
    commands["aux"][state] = _choose(rng, [(85, r.STATE_OPEN), (7, r.STATE_HALTED), (7, r.STATE_CLOSED),
                                           (0.5, 3), (0.5, -1)], state.sum())
    commands["flags"][state] = _choose(rng, [(3, 0), (1, r.CMD_FLAG_CANCEL_ALL)], state.sum())
    symbol[state] = _spoil(rng, rng.integers(0, instruments, state.sum()), 0.1,
                           np.full(state.sum(), instruments))

    commands["op"] = op
    commands["account"] = account
    commands["symbol"] = symbol
    commands["session"] = session
    return commands
