"""Every cross-process record of numbex, declared once as a numpy structured dtype.

Hot-path enums are plain module-level ints (usable inside ``@njit`` kernels);
``IntEnum`` mirrors at the bottom are for logs, dumps and tools only.  A unit test
pins every itemsize and offset below, so a change here is a wire change.

COMMAND (96 bytes): one inbound order command, gateway -> engine, and the WAL payload.

======  ===========  =====  =====================================================
offset  field        type   meaning
======  ===========  =====  =====================================================
0       seq          u8     global sequence number, stamped by the sequencer
8       ts_ns        i8     sequencing timestamp (ns since the epoch), stamped once
16      order_id     u8     engine order id (gateway-assigned, nonzero, unique while live)
24      client_ref   u8     gateway token echoed in events about this command's order
32      price        i8     limit price, ticks (NEW, REPLACE)
40      qty          i8     quantity, lots (NEW: order qty; REPLACE: new total qty)
48      stop_price   i8     stop trigger price, ticks (STOP, STOP_LIMIT)
56      aux          i8     SET_STATE: new state; MASS_CANCEL: session filter (-1 all)
64      account      u4     account index (MASS_CANCEL: ALL_ACCOUNTS for any)
68      session      u4     owning session (gateway << 16 | session index)
72      symbol       u2     instrument index (MASS_CANCEL: ALL_SYMBOLS for any)
74      op           u1     OP_*
75      side         u1     SIDE_* (MASS_CANCEL: SIDE_BOTH for any)
76      ord_type     u1     ORD_*
77      tif          u1     TIF_*
78      flags        u1     CMD_FLAG_*
79      pad          u1
80      origin       u8     inbound ring << 56 | ring position: where the command came
                            from, so recovery resumes each ring after its last journaled
                            command (0 for commands not from a ring)
88      reserved     u8     0
======  ===========  =====  =====================================================

EVENT (128 bytes): one engine output, engine -> gateways and publisher.

======  ==============  =====  ==================================================
offset  field           type   meaning
======  ==============  =====  ==================================================
0       seq             u8     sequence of the command that produced the event
8       ts_ns           i8     that command's timestamp
16      exec_id         u8     (seq << 24) | index of the event within the command
24      order_id        u8     the order the event is about (aggressor for TRADE)
32      other_id        u8     TRADE: the resting order
40      client_ref      u8     command's client_ref when order_id is the command's
48      price           i8     ticks (see docs/SEMANTICS.md per kind)
56      qty             i8     lots (per kind)
64      leaves          i8     order's open quantity after the event
72      cum             i8     order's executed quantity after the event
80      other_leaves    i8     TRADE: resting order's leaves after
88      other_cum       i8     TRADE: resting order's cum after
96      aux             i8     per kind: stop price, old leaves, new state, filter
104     account         u4
108     other_account   u4     TRADE: resting order's account
112     session         u4
116     symbol          u2
118     kind            u1     EV_*
119     side            u1
120     reason          u1     REASON_* for rejects, CAUSE_* for CANCELLED
121     ord_type        u1
122     tif             u1
123     flags           u1     EV_FLAG_*
124     other_session   u4     TRADE: resting order's session
======  ==============  =====  ==================================================

WAL_HEADER (24 bytes) + payload + WAL_TRAILER (8 bytes): one write-ahead-log record.

======  ==========  =====  ====================================================
offset  field       type   meaning
======  ==========  =====  ====================================================
0       length      u4     payload length in bytes
4       type        u4     WAL_* record type
8       seq         u8     sequence number
16      ts_ns       i8     sequencing timestamp
======  ==========  =====  ====================================================

The trailer is ``crc u4`` (CRC32C of header and payload) and ``pad u4``.

WAL_COMMAND_RECORD (128 bytes): a whole WAL_COMMAND record (header, COMMAND payload,
trailer) as one fixed-size dtype, so a segment of command records decodes with one
``np.frombuffer``.  Format and recovery rules: docs/WAL.md.

======  ==========  =======  ==================================================
offset  field       type     meaning
======  ==========  =======  ==================================================
0       length      u4       payload length: 80
4       type        u4       WAL_COMMAND
8       seq         u8       the command's seq
16      ts_ns       i8       the command's ts_ns
24      command     COMMAND  the command (80 bytes, offsets as above plus 24)
104     crc         u4       CRC32C (Castagnoli) of bytes 0-103
108     pad         u4       zero, not covered by the CRC
======  ==========  =======  ==================================================
"""

from __future__ import annotations

import enum

import numpy as np

COMMAND = np.dtype(
    [
        ("seq", "<u8"),
        ("ts_ns", "<i8"),
        ("order_id", "<u8"),
        ("client_ref", "<u8"),
        ("price", "<i8"),
        ("qty", "<i8"),
        ("stop_price", "<i8"),
        ("aux", "<i8"),
        ("account", "<u4"),
        ("session", "<u4"),
        ("symbol", "<u2"),
        ("op", "u1"),
        ("side", "u1"),
        ("ord_type", "u1"),
        ("tif", "u1"),
        ("flags", "u1"),
        ("pad", "u1"),
        ("origin", "<u8"),
        ("reserved", "<u8"),
    ],
    align=True,
)

EVENT = np.dtype(
    [
        ("seq", "<u8"),
        ("ts_ns", "<i8"),
        ("exec_id", "<u8"),
        ("order_id", "<u8"),
        ("other_id", "<u8"),
        ("client_ref", "<u8"),
        ("price", "<i8"),
        ("qty", "<i8"),
        ("leaves", "<i8"),
        ("cum", "<i8"),
        ("other_leaves", "<i8"),
        ("other_cum", "<i8"),
        ("aux", "<i8"),
        ("account", "<u4"),
        ("other_account", "<u4"),
        ("session", "<u4"),
        ("symbol", "<u2"),
        ("kind", "u1"),
        ("side", "u1"),
        ("reason", "u1"),
        ("ord_type", "u1"),
        ("tif", "u1"),
        ("flags", "u1"),
        ("other_session", "<u4"),
    ],
    align=True,
)

WAL_HEADER = np.dtype(
    [("length", "<u4"), ("type", "<u4"), ("seq", "<u8"), ("ts_ns", "<i8")], align=True
)
WAL_TRAILER = np.dtype([("crc", "<u4"), ("pad", "<u4")], align=True)
WAL_COMMAND_RECORD = np.dtype(
    [("length", "<u4"), ("type", "<u4"), ("seq", "<u8"), ("ts_ns", "<i8"),
     ("command", COMMAND), ("crc", "<u4"), ("pad", "<u4")],
    align=True,
)

# Bench interchange format (docs/BENCHMARKS.md): 40-byte records replayable by any engine.
BENCH_ORDER = np.dtype(
    [
        ("order_id", "<u8"),
        ("price", "<i8"),
        ("qty", "<i8"),
        ("client", "<u4"),
        ("symbol", "<u4"),
        ("op", "u1"),
        ("side", "u1"),
        ("tif", "u1"),
    ],
    align=True,
)

# --------------------------------------------------------------------------- ops
OP_NEW = 1
OP_CANCEL = 2
OP_REPLACE = 3
OP_MASS_CANCEL = 4
OP_SET_STATE = 5

SIDE_BUY = 0
SIDE_SELL = 1
SIDE_BOTH = 2  # MASS_CANCEL filter only

ORD_LIMIT = 0
ORD_MARKET = 1
ORD_STOP = 2
ORD_STOP_LIMIT = 3

TIF_GTC = 0
TIF_IOC = 1
TIF_FOK = 2
TIF_DAY = 3

CMD_FLAG_POST_ONLY = 1
CMD_FLAG_QTY_IS_LEAVES = 2  # REPLACE: qty is the new open quantity, not the new total
CMD_FLAG_CANCEL_ALL = 4  # SET_STATE: cancel every order of the instrument (cause HALT)

ALL_SYMBOLS = 0xFFFF
ALL_ACCOUNTS = 0xFFFFFFFF

STATE_OPEN = 0
STATE_HALTED = 1
STATE_CLOSED = 2

# --------------------------------------------------------------------------- events
EV_ACCEPTED = 1
EV_REJECTED = 2
EV_TRADE = 3
EV_CANCELLED = 4
EV_REPLACED = 5
EV_CANCEL_REJECTED = 6
EV_REPLACE_REJECTED = 7
EV_STOP_TRIGGERED = 8
EV_BOOK_ADD = 9
EV_MASS_CANCEL_DONE = 10
EV_STATE_CHANGED = 11

EV_FLAG_ON_BOOK = 1  # CANCELLED: the order was resting (market data: delete)
EV_FLAG_REDUCED = 2  # REPLACED: kept priority, leaves reduced (aux = old leaves)
EV_FLAG_REMOVED = 4  # REPLACED: taken off its level (lost priority or finished)
EV_FLAG_POST_ONLY = 8  # the order is post-only

# Reject reasons (REJECTED, CANCEL_REJECTED, REPLACE_REJECTED).
REASON_NONE = 0
REASON_UNKNOWN_INSTRUMENT = 1
REASON_UNKNOWN_ACCOUNT = 2
REASON_DUPLICATE_ORDER_ID = 3
REASON_UNKNOWN_ORDER = 4
REASON_NOT_OWNER = 5
REASON_HALTED = 6
REASON_CLOSED = 7
REASON_BAD_QUANTITY = 8
REASON_QTY_ABOVE_MAX = 9
REASON_OFF_LOT = 10  # edge conversion (gateway): quantity not a multiple of the lot
REASON_OFF_TICK = 11  # edge conversion (gateway): price not on the tick grid
REASON_OUTSIDE_BAND = 12
REASON_BAD_SIDE = 13
REASON_BAD_ORDER_TYPE = 14
REASON_BAD_TIF = 15
REASON_BAD_COMBINATION = 16
REASON_BOOK_FULL = 17
REASON_STOPS_FULL = 18
REASON_UNKNOWN_OP = 19
REASON_NOT_REPLACEABLE = 20
REASON_SYSTEM_BUSY = 21  # gateway: inbound ring full
REASON_NOT_DURABLE = 22  # engine: the WAL cannot be written; nothing is acknowledged
REASON_ENGINE_DOWN = 23  # gateway: engine not running
REASON_THROTTLED = 24  # gateway: session over its message rate
REASON_BAD_STATE = 25
REASON_BAD_ORDER_ID = 26

# Cancel causes (CANCELLED.reason).
CAUSE_USER = 1
CAUSE_IOC = 2
CAUSE_FOK = 3
CAUSE_MARKET_REMAINDER = 4
CAUSE_STP = 5
CAUSE_MASS = 6
CAUSE_HALT = 7
CAUSE_EXPIRED = 8
CAUSE_POST_ONLY = 9
CAUSE_BOOK_FULL = 10

WAL_COMMAND = 1

STP_OFF = 0
STP_CANCEL_RESTING = 1
STP_CANCEL_AGGRESSOR = 2
STP_CANCEL_BOTH = 3
STP_BY_NAME = {"off": STP_OFF, "cancel-resting": STP_CANCEL_RESTING,
               "cancel-aggressor": STP_CANCEL_AGGRESSOR, "cancel-both": STP_CANCEL_BOTH}
STATE_BY_NAME = {"open": STATE_OPEN, "halted": STATE_HALTED, "closed": STATE_CLOSED}

EXEC_ID_SHIFT = 24


# --------------------------------------------------------------------------- mirrors
class Op(enum.IntEnum):
    NEW = OP_NEW
    CANCEL = OP_CANCEL
    REPLACE = OP_REPLACE
    MASS_CANCEL = OP_MASS_CANCEL
    SET_STATE = OP_SET_STATE


class Side(enum.IntEnum):
    BUY = SIDE_BUY
    SELL = SIDE_SELL
    BOTH = SIDE_BOTH


class OrdType(enum.IntEnum):
    LIMIT = ORD_LIMIT
    MARKET = ORD_MARKET
    STOP = ORD_STOP
    STOP_LIMIT = ORD_STOP_LIMIT


class Tif(enum.IntEnum):
    GTC = TIF_GTC
    IOC = TIF_IOC
    FOK = TIF_FOK
    DAY = TIF_DAY


class State(enum.IntEnum):
    OPEN = STATE_OPEN
    HALTED = STATE_HALTED
    CLOSED = STATE_CLOSED


class EventKind(enum.IntEnum):
    ACCEPTED = EV_ACCEPTED
    REJECTED = EV_REJECTED
    TRADE = EV_TRADE
    CANCELLED = EV_CANCELLED
    REPLACED = EV_REPLACED
    CANCEL_REJECTED = EV_CANCEL_REJECTED
    REPLACE_REJECTED = EV_REPLACE_REJECTED
    STOP_TRIGGERED = EV_STOP_TRIGGERED
    BOOK_ADD = EV_BOOK_ADD
    MASS_CANCEL_DONE = EV_MASS_CANCEL_DONE
    STATE_CHANGED = EV_STATE_CHANGED


def _mirror(name: str, prefix: str) -> type[enum.IntEnum]:
    members = {key[len(prefix):]: value for key, value in globals().items() if key.startswith(prefix)}
    return enum.IntEnum(name, members)


Reason = _mirror("Reason", "REASON_")
Cause = _mirror("Cause", "CAUSE_")


def reason_text(kind: int, reason: int) -> str:
    """Readable name of an event's reason field (a cause for CANCELLED)."""
    try:
        if kind == EV_CANCELLED:
            return Cause(reason).name
        return Reason(reason).name
    except ValueError:
        return str(reason)
