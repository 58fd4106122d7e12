"""Single-producer single-consumer ring of fixed-size records in shared memory.

One :class:`Ring` is one named file under ``/dev/shm`` mapped by exactly two
processes: one producer and one consumer (one ring per producer-consumer pair).
The layout, the kernels and the publication protocol are documented in
:mod:`numbex.engine.ring_kernels`; this module creates, attaches and unlinks the
mapping and gives Python callers a vectorized API on top of the same kernels::

    ring = Ring.create("numbex-in-0", COMMAND, 1 << 16)     # producer side
    ring.offer(commands)            # -> records written (0: full, never blocks)

    ring = Ring.attach("numbex-in-0", COMMAND)              # consumer side
    count = ring.poll(batch)        # -> records copied into batch[:count]
    ring.park(1_000_000)            # sleep until woken or 1 ms, when idle

Numba code uses :attr:`Ring.header` and :attr:`Ring.data` with the kernels
directly (``ring_offer(header, data, records, n)``, ``ring_poll(header, data, out)``).

The file outlives both processes: if the producer dies, the consumer keeps its
mapping and reads every record that was published, and a restarted producer can
attach and continue from the stored tail.  The creator or a supervisor removes
the name with :meth:`Ring.unlink`.
"""

from __future__ import annotations

import mmap
import os
import struct
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from numbex.engine import futex
from numbex.engine import ring_kernels as k

PARK_READY = 0
"""Records were already there: the consumer did not sleep."""
PARK_WOKEN = 1
"""The producer woke the consumer (or published just before it slept)."""
PARK_TIMEOUT = 2
"""The bounded wait elapsed without a wake-up."""
PARK_INTERRUPTED = 3
"""A signal interrupted the wait."""

_FUTEX_STATUS = {
    futex.WAIT_WOKEN: PARK_WOKEN,
    futex.WAIT_CHANGED: PARK_WOKEN,
    futex.WAIT_TIMEOUT: PARK_TIMEOUT,
    futex.WAIT_INTERRUPTED: PARK_INTERRUPTED,
}


class RingError(ValueError):
    """A ring cannot be created or attached; the message says why."""


def ring_path(name: str | os.PathLike) -> Path:
    """The file of a ring: a bare name lives under ``/dev/shm`` (or the temp dir)."""
    text = os.fspath(name)
    if os.sep in text:
        return Path(text)
    if not text or text.startswith("."):
        raise RingError(f"invalid ring name {text!r}")
    base = Path("/dev/shm")
    return (base if base.is_dir() else Path(tempfile.gettempdir())) / text


def dtype_fingerprint(dtype: np.dtype) -> int:
    """CRC32 of a record dtype's field names, types and offsets (itemsize included)."""
    dtype = np.dtype(dtype)
    if dtype.names is None:
        layout = [dtype.str, dtype.itemsize]
    else:
        layout = [(name, dtype.fields[name][0].str, dtype.fields[name][1]) for name in dtype.names]
        layout.append(dtype.itemsize)
    return zlib.crc32(repr(layout).encode())


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.hasobject or dtype.itemsize == 0 or dtype.subdtype is not None:
        raise RingError(f"ring records need a fixed-size plain dtype, got {dtype}")
    return dtype


class Ring:
    """A mapped SPSC ring; build one with :meth:`create` or :meth:`attach`.

    Parameters
    ----------
    path : Path
        The ring's file.
    mapping : mmap.mmap
        The whole file, mapped shared and writable.
    dtype : numpy.dtype
        The record dtype.
    """

    def __init__(self, path: Path, mapping: mmap.mmap, dtype: np.dtype) -> None:
        self.path = path
        self.dtype = dtype
        self._mapping = mapping
        self.header = np.frombuffer(mapping, dtype=np.int64, count=k.HEADER_WORDS)
        self.capacity = int(self.header[k.SLOTS_WORD])
        self.data = np.frombuffer(
            mapping, dtype=dtype, count=self.capacity, offset=k.HEADER_BYTES
        )
        # The futex word is WAKE's low 32 bits (the higher address on big-endian machines).
        low_half = 4 if sys.byteorder == "big" else 0
        self._wake_address = self.header.ctypes.data + 8 * k.WAKE_WORD + low_half
        self._claimed = 0
        self._peeked = 0

    # -- life cycle -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike, dtype, slots: int, *, replace: bool = False) -> Ring:
        """Create a ring file and map it.

        Parameters
        ----------
        path : str or PathLike
            A bare name (placed under ``/dev/shm``) or a file path.
        dtype : numpy.dtype
            Record dtype, e.g. ``records.COMMAND``.
        slots : int
            Slot count, a power of two >= 2.
        replace : bool
            Replace an existing file of that name (attached processes keep the
            old mapping); otherwise an existing name is an error.

        Raises
        ------
        RingError
            Bad slot count or dtype, or the name exists and ``replace`` is false.
        """
        dtype = _check_dtype(dtype)
        if not isinstance(slots, (int, np.integer)) or slots < 2 or slots & (slots - 1):
            raise RingError(f"ring slots must be a power of two >= 2, got {slots!r}")
        target = ring_path(path)
        size = k.HEADER_BYTES + int(slots) * dtype.itemsize
        # Build under a private name and link it into place, so an attacher never
        # sees a half-initialised header.
        staging = target.with_name(f".{target.name}.{os.getpid()}.{time.monotonic_ns()}")
        fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        mapping = None
        try:
            os.ftruncate(fd, size)
            mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            words = [0] * (k.CREATOR_PID_WORD + 1)
            words[k.VERSION_WORD] = k.LAYOUT_VERSION
            words[k.RECORD_SIZE_WORD] = dtype.itemsize
            words[k.SLOTS_WORD] = int(slots)
            words[k.FINGERPRINT_WORD] = dtype_fingerprint(dtype)
            words[k.DATA_OFFSET_WORD] = k.HEADER_BYTES
            words[k.CREATOR_PID_WORD] = os.getpid()
            struct.pack_into(f"<{len(words)}q", mapping, 0, *words)
            struct.pack_into("<q", mapping, 8 * k.MAGIC_WORD, k.MAGIC)  # last: header complete
            if replace:
                os.replace(staging, target)
            else:
                try:
                    os.link(staging, target)
                except FileExistsError:
                    raise RingError(f"ring {target} already exists") from None
                os.unlink(staging)
        except BaseException:
            if mapping is not None:
                mapping.close()
            staging.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        return cls(target, mapping, dtype)

    @classmethod
    def attach(cls, path: str | os.PathLike, dtype) -> Ring:
        """Map an existing ring, checking magic, version and record layout.

        Raises
        ------
        RingError
            No such ring, not a numbex ring, another layout version, or records
            of another size or layout than ``dtype``.
        """
        dtype = _check_dtype(dtype)
        target = ring_path(path)
        try:
            fd = os.open(target, os.O_RDWR)
        except FileNotFoundError:
            raise RingError(f"no ring at {target}") from None
        try:
            size = os.fstat(fd).st_size
            if size < k.HEADER_BYTES:
                raise RingError(
                    f"{target} is {size} bytes, smaller than a ring header "
                    f"({k.HEADER_BYTES}): not a numbex ring"
                )
            mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        try:
            _validate_header(target, mapping, size, dtype)
        except BaseException:
            mapping.close()
            raise
        return cls(target, mapping, dtype)

    def close(self) -> None:
        """Unmap this process's view (the file stays until :meth:`unlink`)."""
        mapping, self._mapping = self._mapping, None
        self.header = self.data = None
        if mapping is not None:
            try:
                mapping.close()
            except BufferError:
                # A caller still holds a view from claim()/peek(); the mapping goes
                # away with the last such view.
                pass

    def unlink(self) -> None:
        """Remove the ring's name; mapped processes keep working on their mapping."""
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Ring:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._mapping is None else f"{self.size()}/{self.capacity}"
        return f"Ring({str(self.path)!r}, {self.dtype.itemsize}-byte records, {state})"

    @staticmethod
    def warm_up(dtype, directory: str | os.PathLike | None = None) -> None:
        """Compile (or load from the cache) every ring kernel for records of ``dtype``.

        Runs them on a private two-slot ring (a temporary file, removed at once), so a
        role can do it before it says it is up without touching its real rings.
        """
        base = Path(directory) if directory is not None else ring_path("x").parent
        handle, name = tempfile.mkstemp(prefix=".numbex-warm-", dir=base)
        os.close(handle)
        os.unlink(name)
        ring = Ring.create(name, dtype, 2)
        try:
            one = np.zeros(1, dtype=ring.dtype)
            ring.offer(one)
            ring.poll(np.zeros(1, dtype=ring.dtype))
            ring.publish(len(ring.claim(1)))
            ring.release(len(ring.peek(1)))
            ring.wake_consumer()
            ring.size()
            ring.consumer_parked()
            if int(k.ring_prepare_park(ring.header)) >= 0:
                k.ring_unpark(ring.header)
        finally:
            ring.close()
            ring.unlink()

    # -- producer ---------------------------------------------------------------

    def offer(self, records: np.ndarray) -> int:
        """Copy ``records`` (in order) into the ring and wake a parked consumer.

        Returns
        -------
        int
            Records written, a prefix of ``records``; 0 when the ring is full.
            Never blocks and never raises on a full ring.
        """
        records = self._records_argument(records)
        result = k.ring_offer_signal(self.header, self.data, records, len(records))
        if result & 1:
            self._futex_wake()
        return int(result) >> 1

    def claim(self, max_count: int) -> np.ndarray:
        """A writable view of up to ``max_count`` free slots (contiguous, may be shorter).

        Fill it, then call :meth:`publish`.  An empty view means the ring is full.
        """
        count = int(k.ring_claim(self.header, max_count))
        start = int(self.header[k.TAIL_WORD]) & (self.capacity - 1)
        self._claimed = count
        return self.data[start : start + count]

    def publish(self, count: int) -> None:
        """Publish the first ``count`` records of the last :meth:`claim` and wake the consumer."""
        if not 0 <= count <= self._claimed:
            raise ValueError(f"publish({count}) exceeds the {self._claimed} slots claimed")
        self._claimed = 0
        if count:
            k.ring_publish(self.header, count)
            self.wake_consumer()

    def wake_consumer(self) -> bool:
        """Wake the consumer if it is parked (after Numba code published); True if it was."""
        if k.ring_signal_consumer(self.header):
            self._futex_wake()
            return True
        return False

    def _futex_wake(self) -> None:
        if futex.FUTEX_SUPPORTED:
            futex.futex_wake(self._wake_address, 1)

    # -- consumer ---------------------------------------------------------------

    def poll(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` records into ``out`` and free their slots.

        Returns
        -------
        int
            Records copied into ``out[:n]``; 0 when the ring is empty.
        """
        if not isinstance(out, np.ndarray) or out.dtype != self.dtype or out.ndim != 1:
            raise TypeError(f"poll needs a 1-d array of the ring's dtype, got {_describe(out)}")
        if not (out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("poll needs a writable contiguous output array")
        return int(k.ring_poll(self.header, self.data, out))

    def peek(self, max_count: int) -> np.ndarray:
        """A read-only view of up to ``max_count`` published records (contiguous); then :meth:`release`."""
        count = int(k.ring_peek(self.header, max_count))
        start = int(self.header[k.HEAD_WORD]) & (self.capacity - 1)
        self._peeked = count
        view = self.data[start : start + count]
        view.flags.writeable = False
        return view

    def release(self, count: int) -> None:
        """Free the first ``count`` records of the last :meth:`peek`."""
        if not 0 <= count <= self._peeked:
            raise ValueError(f"release({count}) exceeds the {self._peeked} records peeked")
        self._peeked = 0
        if count:
            k.ring_release(self.header, count)

    def park(self, timeout_ns: int) -> int:
        """Sleep until the producer publishes, at most ``timeout_ns`` (consumer only).

        Returns
        -------
        int
            ``PARK_READY`` (records present, no sleep), ``PARK_WOKEN``,
            ``PARK_TIMEOUT`` or ``PARK_INTERRUPTED``.
        """
        expected = int(k.ring_prepare_park(self.header))
        if expected < 0:
            return PARK_READY
        try:
            if futex.FUTEX_SUPPORTED:
                status = futex.futex_wait(self._wake_address, expected, timeout_ns)
                return _FUTEX_STATUS[status]
            time.sleep(timeout_ns / 1e9)
            return PARK_WOKEN if k.ring_size(self.header) else PARK_TIMEOUT
        finally:
            k.ring_unpark(self.header)

    # -- either side ------------------------------------------------------------

    def size(self) -> int:
        """Published, unconsumed records right now (a snapshot)."""
        return int(k.ring_size(self.header))

    def consumer_parked(self) -> bool:
        """Whether the consumer has announced it may be asleep."""
        return bool(k.ring_consumer_parked(self.header))

    def _records_argument(self, records) -> np.ndarray:
        if not isinstance(records, np.ndarray) or records.dtype != self.dtype or records.ndim != 1:
            raise TypeError(
                f"offer needs a 1-d array of the ring's dtype, got {_describe(records)}"
            )
        if not records.flags.c_contiguous:
            records = np.ascontiguousarray(records)
        return records


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.ndim}-d array of {value.dtype}"
    return type(value).__name__


def _validate_header(target: Path, mapping: mmap.mmap, size: int, dtype: np.dtype) -> None:
    # struct, not a numpy view: no buffer export may outlive a failed attach.
    header = struct.unpack_from(f"<{k.CREATOR_PID_WORD + 1}q", mapping, 0)
    magic = header[k.MAGIC_WORD] & 0xFFFFFFFFFFFFFFFF
    if magic != k.MAGIC:
        raise RingError(
            f"{target}: bad magic {magic:#018x} (expected {k.MAGIC:#018x}): not a numbex ring"
        )
    version = header[k.VERSION_WORD]
    if version != k.LAYOUT_VERSION:
        raise RingError(f"{target}: ring layout version {version}, this build reads {k.LAYOUT_VERSION}")
    record_size = header[k.RECORD_SIZE_WORD]
    if record_size != dtype.itemsize:
        raise RingError(
            f"{target}: ring holds {record_size}-byte records, "
            f"but the dtype's itemsize is {dtype.itemsize}"
        )
    fingerprint = header[k.FINGERPRINT_WORD]
    if fingerprint != dtype_fingerprint(dtype):
        raise RingError(
            f"{target}: record layout differs from the dtype given "
            f"(fingerprint {fingerprint:#010x}, dtype has {dtype_fingerprint(dtype):#010x})"
        )
    slots = header[k.SLOTS_WORD]
    expected_size = k.HEADER_BYTES + slots * record_size
    if slots < 2 or slots & (slots - 1) or size != expected_size:
        raise RingError(
            f"{target}: corrupt header: {slots} slots of {record_size} bytes "
            f"need {expected_size} bytes, the file has {size}"
        )
