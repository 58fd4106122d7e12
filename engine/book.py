"""The price-time order book core: preallocated arrays and O(1) kernels over them.

Layout
------
* ``pool``: ``ORDER_SLOT`` records (56 bytes), one per resting order; a free list
  threads unused slots through ``next``.
* ``index``: open-addressing hash table (int32 slot numbers, -1 empty, linear
  probing, backward-shift deletion, load factor <= 0.6) from order id to a slot:
  values below ``max_orders`` are pool slots, values from ``max_orders`` on are stop
  slots (``value - max_orders``).  Per resting order: 56 + 8 = 64 bytes at 1M orders.
* Levels: one entry per price tick inside each instrument's band, shared by both
  sides (a price holds bids or asks, never both, because the book is never crossed
  at rest): ``level_head``/``level_tail`` (int32 slots of an intrusive doubly linked
  FIFO) and ``level_qty`` (int64 open lots).  ``bits`` marks non-empty levels
  (uint64 words) so the next best price is found by word scans.
* ``inst``: int64 row per instrument, columns ``I_*``; ``glob``: int64 scalars ``G_*``.
* ``stops``: ``STOP_SLOT`` records, a per-instrument doubly linked list in arrival
  order, with their own free list.

Ordering invariant: within a level, ``next`` runs from oldest to newest; the best
bid is the highest non-empty level holding bids, the best ask the lowest holding
asks; ``best_bid < best_ask`` whenever both exist.

Modify semantics: an order keeps its place only when its price is unchanged and
its open quantity does not grow (see docs/SEMANTICS.md); otherwise it is removed
and appended at the back of its new level.

Limits: ``max_orders`` resting orders and ``max_stops`` untriggered stops in all;
price bands of at most 2**22 ticks per instrument; int32 slot numbers.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros, trailing_zeros

from numbex.engine import jitcache  # noqa: F401  (must precede kernel definitions)

ORDER_SLOT = np.dtype(
    [
        ("order_id", "<u8"),
        ("leaves", "<i8"),
        ("cum", "<i8"),
        ("price", "<i8"),
        ("next", "<i4"),
        ("prev", "<i4"),
        ("account", "<u4"),
        ("session", "<u4"),
        ("symbol", "<u2"),
        ("side", "u1"),
        ("ord_type", "u1"),
        ("tif", "u1"),
        ("flags", "u1"),
        ("pad", "u1", (2,)),
    ],
    align=True,
)

STOP_SLOT = np.dtype(
    [
        ("order_id", "<u8"),
        ("qty", "<i8"),
        ("price", "<i8"),
        ("stop_price", "<i8"),
        ("next", "<i4"),
        ("prev", "<i4"),
        ("account", "<u4"),
        ("session", "<u4"),
        ("symbol", "<u2"),
        ("side", "u1"),
        ("ord_type", "u1"),
        ("tif", "u1"),
        ("flags", "u1"),
        ("pad", "u1", (2,)),
    ],
    align=True,
)

# inst columns
I_LOW = 0
I_HIGH = 1
I_MAX_LOTS = 2
I_STATE = 3
I_BEST_BID = 4  # price, -1 when no bid
I_BEST_ASK = 5  # price, -1 when no ask
I_LAST = 6  # last trade price, 0 when none
I_STOP_HEAD = 7
I_STOP_TAIL = 8
I_LEVEL_BASE = 9
I_BITS_BASE = 10
I_BIDS = 11  # resting bid orders
I_ASKS = 12  # resting ask orders
I_STOPS = 13  # untriggered stops
I_COLUMNS = 14

# glob entries
G_FREE = 0
G_RESTING = 1
G_STOP_FREE = 2
G_STOPS = 3
G_MAX_ORDERS = 4
G_MAX_STOPS = 5
G_INDEX_MASK = 6
G_INDEX_SHIFT = 7
G_INSTRUMENTS = 8
G_ACCOUNTS = 9
G_COLUMNS = 10

if numba.config.DISABLE_JIT:  # the intrinsics only exist compiled; plain Python equivalents

    def leading_zeros(word):  # noqa: F811
        return 64 - int(word).bit_length()

    def trailing_zeros(word):  # noqa: F811
        word = int(word)
        return (word & -word).bit_length() - 1


def index_size(max_orders: int, max_stops: int) -> int:
    """Hash table slots: the power of two keeping the load factor at most 0.6."""
    need = int((max_orders + max_stops) / 0.6) + 1
    size = 1
    while size < need:
        size <<= 1
    return size


# --------------------------------------------------------------------------- index


@njit(cache=True, _nrt=False)
def _home(order_id, glob):
    key = np.uint64(order_id)
    folded = key ^ (key >> np.uint64(glob[G_INDEX_SHIFT]))
    return np.int64(folded & np.uint64(glob[G_INDEX_MASK]))


@njit(cache=True, _nrt=False)
def index_home(order_id, glob):
    """Home slot of ``order_id`` in the index (where its probe starts)."""
    return _home(order_id, glob)


@njit(cache=True, _nrt=False)
def _key(value, pool, stops, glob):
    if value < glob[G_MAX_ORDERS]:
        return pool[value].order_id
    return stops[value - glob[G_MAX_ORDERS]].order_id


@njit(cache=True, _nrt=False)
def index_find(index, pool, stops, glob, order_id):
    """Slot value for ``order_id`` (pool slot, or max_orders + stop slot), -1 if absent."""
    mask = glob[G_INDEX_MASK]
    i = _home(order_id, glob)
    while True:
        value = index[i]
        if value < 0:
            return -1
        if _key(value, pool, stops, glob) == order_id:
            return np.int64(value)
        i = (i + 1) & mask


@njit(cache=True, _nrt=False)
def index_insert(index, glob, order_id, value):
    """Insert ``order_id`` -> ``value``; the caller knows the id is absent."""
    mask = glob[G_INDEX_MASK]
    i = _home(order_id, glob)
    while index[i] >= 0:
        i = (i + 1) & mask
    index[i] = value


@njit(cache=True, _nrt=False)
def index_delete(index, pool, stops, glob, order_id):
    """Remove ``order_id`` (must be present) with backward-shift deletion."""
    mask = glob[G_INDEX_MASK]
    i = _home(order_id, glob)
    while _key(index[i], pool, stops, glob) != order_id:
        i = (i + 1) & mask
    j = i
    while True:
        j = (j + 1) & mask
        value = index[j]
        if value < 0:
            break
        home = _home(_key(value, pool, stops, glob), glob)
        if i <= j:
            stays = i < home <= j
        else:
            stays = home > i or home <= j
        if not stays:
            index[i] = value
            i = j
    index[i] = -1


# --------------------------------------------------------------------------- levels


@njit(cache=True, _nrt=False)
def next_level_down(bits, inst, symbol, price):
    """Highest non-empty level price strictly below ``price``, -1 if none."""
    low = inst[symbol, I_LOW]
    offset = price - 1 - low
    if offset < 0:
        return -1
    base = inst[symbol, I_BITS_BASE]
    word = offset >> 6
    masked = bits[base + word] & ((np.uint64(2) << np.uint64(offset & 63)) - np.uint64(1))
    while True:
        if masked != 0:
            return low + (word << 6) + 63 - np.int64(leading_zeros(masked))
        word -= 1
        if word < 0:
            return -1
        masked = bits[base + word]


@njit(cache=True, _nrt=False)
def next_level_up(bits, inst, symbol, price):
    """Lowest non-empty level price strictly above ``price``, -1 if none."""
    low = inst[symbol, I_LOW]
    offset = price + 1 - low
    last = inst[symbol, I_HIGH] - low
    if offset > last:
        return -1
    base = inst[symbol, I_BITS_BASE]
    word = offset >> 6
    last_word = last >> 6
    masked = bits[base + word] & ~((np.uint64(1) << np.uint64(offset & 63)) - np.uint64(1))
    while True:
        if masked != 0:
            return low + (word << 6) + np.int64(trailing_zeros(masked))
        word += 1
        if word > last_word:
            return -1
        masked = bits[base + word]


@njit(cache=True, _nrt=False)
def book_append(pool, inst, level_head, level_tail, level_qty, bits, slot):
    """Append resting order ``slot`` (fields already set) at the back of its level."""
    symbol = pool[slot].symbol
    price = pool[slot].price
    offset = price - inst[symbol, I_LOW]
    level = inst[symbol, I_LEVEL_BASE] + offset
    tail = level_tail[level]
    pool[slot].next = -1
    pool[slot].prev = tail
    if tail < 0:
        level_head[level] = slot
        word = inst[symbol, I_BITS_BASE] + (offset >> 6)
        bits[word] |= np.uint64(1) << np.uint64(offset & 63)
    else:
        pool[tail].next = slot
    level_tail[level] = slot
    level_qty[level] += pool[slot].leaves
    if pool[slot].side == 0:
        inst[symbol, I_BIDS] += 1
        if inst[symbol, I_BEST_BID] < price:
            inst[symbol, I_BEST_BID] = price
    else:
        inst[symbol, I_ASKS] += 1
        best = inst[symbol, I_BEST_ASK]
        if best < 0 or price < best:
            inst[symbol, I_BEST_ASK] = price


@njit(cache=True, _nrt=False)
def book_unlink(pool, inst, level_head, level_tail, level_qty, bits, slot):
    """Take ``slot`` off its level (its leaves leave the level total); fix best prices."""
    symbol = pool[slot].symbol
    price = pool[slot].price
    offset = price - inst[symbol, I_LOW]
    level = inst[symbol, I_LEVEL_BASE] + offset
    previous = pool[slot].prev
    following = pool[slot].next
    if previous >= 0:
        pool[previous].next = following
    else:
        level_head[level] = following
    if following >= 0:
        pool[following].prev = previous
    else:
        level_tail[level] = previous
    level_qty[level] -= pool[slot].leaves
    if pool[slot].side == 0:
        inst[symbol, I_BIDS] -= 1
    else:
        inst[symbol, I_ASKS] -= 1
    if level_head[level] < 0:
        word = inst[symbol, I_BITS_BASE] + (offset >> 6)
        bits[word] &= ~(np.uint64(1) << np.uint64(offset & 63))
        if pool[slot].side == 0:
            if inst[symbol, I_BEST_BID] == price:
                inst[symbol, I_BEST_BID] = next_level_down(bits, inst, symbol, price)
        elif inst[symbol, I_BEST_ASK] == price:
            inst[symbol, I_BEST_ASK] = next_level_up(bits, inst, symbol, price)


# --------------------------------------------------------------------------- slots


@njit(cache=True, _nrt=False)
def slot_alloc(records, glob, free_head):
    """Take a slot off the free list whose head is ``glob[free_head]`` (G_FREE, G_STOP_FREE)."""
    slot = glob[free_head]
    glob[free_head] = records[slot].next
    return slot


@njit(cache=True, _nrt=False)
def slot_free(records, glob, free_head, slot):
    """Return ``slot`` (of the pool or the stop table) to its free list."""
    records[slot].order_id = 0
    records[slot].next = glob[free_head]
    glob[free_head] = slot


@njit(cache=True, _nrt=False)
def stop_append(stops, inst, slot):
    symbol = stops[slot].symbol
    tail = inst[symbol, I_STOP_TAIL]
    stops[slot].next = -1
    stops[slot].prev = tail
    if tail < 0:
        inst[symbol, I_STOP_HEAD] = slot
    else:
        stops[tail].next = slot
    inst[symbol, I_STOP_TAIL] = slot
    inst[symbol, I_STOPS] += 1


@njit(cache=True, _nrt=False)
def stop_unlink(stops, inst, slot):
    symbol = stops[slot].symbol
    previous = stops[slot].prev
    following = stops[slot].next
    if previous >= 0:
        stops[previous].next = following
    else:
        inst[symbol, I_STOP_HEAD] = following
    if following >= 0:
        stops[following].prev = previous
    else:
        inst[symbol, I_STOP_TAIL] = previous
    inst[symbol, I_STOPS] -= 1
