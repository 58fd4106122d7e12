"""Header layout and ``@njit`` kernels of the single-producer single-consumer ring.

A ring is one shared mapping: a 4096-byte header followed by ``slots`` fixed-size
records (``slots`` a power of two).  The kernels take the header as an ``int64``
array and the data area as a structured array of the ring's record dtype, so the
same code serves Python callers (:class:`numbex.engine.ring.Ring` routes every
publication through these kernels) and Numba callers (the engine polls and
emits from inside its own kernels).

Header words (``int64``; each cache line has exactly one writer)::

    line  word  name         writer     meaning
    0     0     MAGIC        creator    b"NUMBEXR1", written last by create
    0     1     VERSION      creator    LAYOUT_VERSION
    0     2     RECORD_SIZE  creator    itemsize of the record dtype, bytes
    0     3     SLOTS        creator    slot count, a power of two
    0     4     FINGERPRINT  creator    CRC32 of the dtype's field layout
    0     5     DATA_OFFSET  creator    byte offset of slot 0 (HEADER_BYTES)
    0     6     CREATOR_PID  creator    pid of the creating process (diagnostics)
    1     8     HEAD         consumer   consumer position: next record to read
    2     16    TAIL         producer   producer position: next record to write
    2     17    HEAD_CACHE   producer   last HEAD the producer read (private)
    3     24    PARKED       consumer   1 while the consumer may be asleep
    4     32    WAKE         producer   wake-up sequence; low 32 bits: futex word

Positions only ever increase; ``slot = position & (SLOTS - 1)``;
``TAIL - HEAD`` is the number of published, unconsumed records (0..SLOTS).

Publication protocol:

- Producer: copy records into ``slot(TAIL)...``, then ``store_release(TAIL)``.
  A consumer that ``load_acquire``-s the new TAIL sees the copied records.
- Consumer: ``load_acquire(TAIL)``, copy records out, then ``store_release(HEAD)``.
  A producer that ``load_acquire``-s the new HEAD may overwrite those slots: the
  consumer's reads of them happened before.
- Park (consumer): read WAKE, ``store_release(PARKED, 1)``, ``fence_seq_cst``,
  re-check TAIL; sleep on WAKE only if still empty, with a bounded timeout.
- Wake (producer, after a publish): ``fence_seq_cst``, ``load_acquire(PARKED)``;
  if set, ``store_release(WAKE, WAKE + 1)`` and futex-wake.  The two fences make
  this Dekker's pattern: either the consumer's re-check sees the new TAIL or the
  producer sees PARKED, so no wake-up is lost; if WAKE moves between the
  consumer's read and its sleep, the futex wait returns at once.

A Python-side publish goes through these kernels too (rather than plain numpy
stores followed by a plain numpy store of TAIL).  On x86-64 the plain-store
version would happen to work, because the processor keeps stores in program
order (TSO) and CPython performs them in program order; on AArch64 or POWER it
would need a release store or a ``dmb``/``lwsync`` barrier that Python cannot
express.  Routing through the kernels is correct on every architecture.
"""

from __future__ import annotations

from numbex.engine import jitcache  # noqa: F401  (must precede kernel definitions)
from numba import njit

from numbex.engine.atomics import fence_seq_cst, load_acquire, store_release

HEADER_BYTES = 4096
HEADER_WORDS = HEADER_BYTES // 8
CACHE_LINE_BYTES = 64
LAYOUT_VERSION = 1
MAGIC = int.from_bytes(b"NUMBEXR1", "little")

MAGIC_WORD = 0
VERSION_WORD = 1
RECORD_SIZE_WORD = 2
SLOTS_WORD = 3
FINGERPRINT_WORD = 4
DATA_OFFSET_WORD = 5
CREATOR_PID_WORD = 6
HEAD_WORD = 8
TAIL_WORD = 16
HEAD_CACHE_WORD = 17
PARKED_WORD = 24
WAKE_WORD = 32

WAKE_MASK = 0xFFFFFFFF


@njit(cache=True, nogil=True)
def ring_offer(header, data, records, count):
    """Copy up to ``count`` records into the ring and publish them (producer only).

    Parameters
    ----------
    header : int64 array
        The ring header.
    data : structured array
        The ring's slots.
    records : structured array, same dtype as ``data``
        Records to write; ``records[0:count]`` are offered.
    count : int
        How many to offer (clipped to ``len(records)``).

    Returns
    -------
    int
        Records written, in order; 0 when the ring is full (never blocks).
        Published with ``store_release(TAIL)`` after the copies.
    """
    slots = header[SLOTS_WORD]
    mask = slots - 1
    tail = header[TAIL_WORD]
    wanted = min(count, len(records))
    free = slots - (tail - header[HEAD_CACHE_WORD])
    if free < wanted:
        head = load_acquire(header, HEAD_WORD)
        header[HEAD_CACHE_WORD] = head
        free = slots - (tail - head)
    written = min(wanted, free)
    if written <= 0:
        return 0
    for index in range(written):
        data[(tail + index) & mask] = records[index]
    store_release(header, TAIL_WORD, tail + written)
    return written


@njit(cache=True, nogil=True)
def ring_poll(header, data, out):
    """Copy up to ``len(out)`` published records out and release their slots (consumer only).

    Returns
    -------
    int
        Records copied into ``out[0:n]``, in publication order; 0 when empty.
        Reads TAIL with ``load_acquire``; frees the slots with ``store_release(HEAD)``.
    """
    mask = header[SLOTS_WORD] - 1
    head = header[HEAD_WORD]
    available = load_acquire(header, TAIL_WORD) - head
    taken = min(available, len(out))
    if taken <= 0:
        return 0
    for index in range(taken):
        out[index] = data[(head + index) & mask]
    store_release(header, HEAD_WORD, head + taken)
    return taken


@njit(cache=True, nogil=True)
def ring_claim(header, max_count):
    """Number of free slots writable in place from ``slot(TAIL)`` without wrapping (producer).

    The producer fills ``data[TAIL & mask : ... + n]`` and then calls
    :func:`ring_publish`.  At most ``max_count``; 0 when full.
    """
    slots = header[SLOTS_WORD]
    tail = header[TAIL_WORD]
    free = slots - (tail - header[HEAD_CACHE_WORD])
    if free < max_count:
        head = load_acquire(header, HEAD_WORD)
        header[HEAD_CACHE_WORD] = head
        free = slots - (tail - head)
    contiguous = slots - (tail & (slots - 1))
    return max(0, min(max_count, free, contiguous))


@njit(cache=True, nogil=True)
def ring_publish(header, count):
    """Publish ``count`` records written in place after :func:`ring_claim` (``store_release(TAIL)``)."""
    store_release(header, TAIL_WORD, header[TAIL_WORD] + count)


@njit(cache=True, nogil=True)
def ring_peek(header, max_count):
    """Number of published records readable in place from ``slot(HEAD)`` without wrapping (consumer).

    The consumer reads ``data[HEAD & mask : ... + n]`` and then calls
    :func:`ring_release`.  Reads TAIL with ``load_acquire``.
    """
    slots = header[SLOTS_WORD]
    head = header[HEAD_WORD]
    available = load_acquire(header, TAIL_WORD) - head
    contiguous = slots - (head & (slots - 1))
    return max(0, min(max_count, available, contiguous))


@njit(cache=True, nogil=True)
def ring_release(header, count):
    """Free ``count`` slots read in place after :func:`ring_peek` (``store_release(HEAD)``)."""
    store_release(header, HEAD_WORD, header[HEAD_WORD] + count)


@njit(cache=True, nogil=True)
def ring_signal_consumer(header):
    """After a publish: 1 if the consumer is parked and needs a futex wake (producer).

    ``fence_seq_cst`` orders the producer's TAIL store before its PARKED load;
    when PARKED is set, WAKE is bumped with ``store_release`` (the producer is its
    only writer) and the caller must then wake the futex on WAKE's low word.
    """
    fence_seq_cst()
    if load_acquire(header, PARKED_WORD) == 0:
        return 0
    store_release(header, WAKE_WORD, (header[WAKE_WORD] + 1) & WAKE_MASK)
    return 1


@njit(cache=True, nogil=True)
def ring_offer_signal(header, data, records, count):
    """:func:`ring_offer` then :func:`ring_signal_consumer` in one call: ``2 * written + wake``."""
    written = ring_offer(header, data, records, count)
    if written == 0:
        return 0
    return 2 * written + ring_signal_consumer(header)


@njit(cache=True, nogil=True)
def ring_prepare_park(header):
    """Announce that the consumer is about to sleep (consumer).

    Returns
    -------
    int
        The WAKE value to sleep on (>= 0), or -1 if records arrived meanwhile,
        in which case PARKED is cleared again and the consumer must not sleep.
    """
    expected = load_acquire(header, WAKE_WORD) & WAKE_MASK
    store_release(header, PARKED_WORD, 1)
    fence_seq_cst()
    if load_acquire(header, TAIL_WORD) != header[HEAD_WORD]:
        store_release(header, PARKED_WORD, 0)
        return -1
    return expected


@njit(cache=True, nogil=True)
def ring_unpark(header):
    """Clear PARKED after a sleep (consumer)."""
    store_release(header, PARKED_WORD, 0)


@njit(cache=True, nogil=True)
def ring_size(header):
    """Published, unconsumed records (a snapshot; either side or a monitor may call it)."""
    head = load_acquire(header, HEAD_WORD)
    return min(load_acquire(header, TAIL_WORD) - head, header[SLOTS_WORD])


@njit(cache=True, nogil=True)
def ring_consumer_parked(header):
    """1 if the consumer has announced it may be asleep."""
    return load_acquire(header, PARKED_WORD)
