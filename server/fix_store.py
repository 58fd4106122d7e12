"""Durable FIX session store: one append-only file per counterparty CompID.

``FileStore`` implements ``numbex.protocol.fix.store.MessageStore``: next
sender/target MsgSeqNum and every application message sent, so a session
survives a gateway restart and can answer a ResendRequest for messages sent
before it.

File format (little-endian), a sequence of records::

    crc32 u32 | length u32 | type u8 | payload[length]

``crc32`` covers type and payload.  Types: 1 next sender (i64), 2 next target
(i64), 3 application message (seq i64, msg type length u16, sending time
length u16, body length u32, then the three byte strings).  Opening replays
the file; a torn or corrupt tail (a crash mid-write) is cut off at the last
whole record.  ``reset`` truncates the file; ``compact`` (run on open when
the file is mostly sequence-number records) rewrites it.  A lock file
(``flock``) keeps two processes from sharing one session.

Durability policy (``sync``):

* ``"always"``: flush and ``fdatasync`` after every record (slow; for tests).
* ``"batch"`` (default): records are buffered; ``sync()`` flushes and
  ``fdatasync``\\ s.  The gateway calls it at the end of each batch, before it
  writes the batch's outgoing bytes, so nothing is sent that is not durable.
* ``"none"``: ``sync()`` only flushes to the OS.

Preallocation: the file grows in ``PREALLOCATE_BYTES`` steps by ``posix_fallocate``
at a sync, so most fdatasyncs write data only (an fdatasync that also commits a
new file size costs about half as much again on ext4).  The space after the last
record is zeros; opening treats an all-zero remainder as that reserve, not as a
torn tail, and ``close`` trims the file to its records.

Resend reads records back with ``os.pread`` through an offset index
(``array('q')`` by sequence number, 8 bytes per message), so memory does not
grow with message bodies.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import zlib
from array import array
from collections.abc import Iterator
from pathlib import Path

from numbex.protocol.fix.store import StoredMessage

SYNC_POLICIES = ("always", "batch", "none")
_HEADER = struct.Struct("<IIB")
_SEQ = struct.Struct("<q")
_MESSAGE = struct.Struct("<qHHI")
_SENDER, _TARGET, _MESSAGE_RECORD = 1, 2, 3
_MESSAGE_TYPE_BYTE = bytes((_MESSAGE_RECORD,))
_MAX_RECORD = 1 << 24
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
#: Opening a file with more sequence-number records than this rewrites it compactly.
COMPACT_AFTER_RECORDS = 100_000
#: The file is extended by at least this much at a time (see the module docstring).
PREALLOCATE_BYTES = 1 << 20


class StoreError(Exception):
    """A store cannot be opened (locked by another process, unreadable)."""


def store_path(directory: Path | str, comp_id: str) -> Path:
    """File of ``comp_id``'s session under ``directory`` (unsafe characters escaped)."""
    name = _SAFE_NAME.sub(lambda match: f"%{ord(match.group()):02X}", comp_id)
    return Path(directory) / f"{name}.fixstore"


class FileStore:
    """Append-only durable ``MessageStore`` for one session.

    Use ``FileStore.open(directory, comp_id, sync=...)``.
    """

    def __init__(self, path: Path, sync: str = "batch") -> None:
        if sync not in SYNC_POLICIES:
            raise ValueError(f"sync must be one of {SYNC_POLICIES}, not {sync!r}")
        self.path = Path(path)
        self.sync_policy = sync
        self._next_sender = 1
        self._next_target = 1
        self._base = 1                      # sequence number of _offsets[0]
        self._offsets = array("q")          # record offset by seq - _base, -1 when none
        self._sequence_records = 0          # sender/target records replayed (compaction trigger)
        self._lock = open(self.path.with_name(self.path.name + ".lock"), "a+b")  # noqa: SIM115
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            self._lock.close()
            raise StoreError(f"{self.path} is in use by another process") from error
        self._file = _open_read_write(self.path)
        self._preallocate = True
        self._size = self._replay()
        if self._sequence_records > COMPACT_AFTER_RECORDS:
            self.compact()

    @classmethod
    def open(cls, directory: Path | str, comp_id: str, sync: str = "batch") -> FileStore:
        """Open (creating if needed) the store of ``comp_id`` under ``directory``."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        return cls(store_path(directory, comp_id), sync)

    # ------------------------------------------------------------ MessageStore

    @property
    def next_sender_seq_num(self) -> int:
        return self._next_sender

    @property
    def next_target_seq_num(self) -> int:
        return self._next_target

    def set_next_sender_seq_num(self, value: int) -> None:
        self._next_sender = value
        self._append(_SENDER, _SEQ.pack(value))

    def set_next_target_seq_num(self, value: int) -> None:
        self._next_target = value
        self._append(_TARGET, _SEQ.pack(value))

    def store_sent(self, seq_num: int, msg_type: bytes, sending_time: bytes, body: bytes) -> None:
        lengths = _MESSAGE.pack(seq_num, len(msg_type), len(sending_time), len(body))
        tail = b"".join((_MESSAGE_TYPE_BYTE, lengths, msg_type, sending_time, body))
        offsets = self._offsets
        if offsets and seq_num == self._base + len(offsets):  # the usual case: the next number
            offsets.append(self._size)
        else:
            self._index(seq_num, self._size)
        self._next_sender = seq_num + 1
        length = len(tail) - 1
        self._file.write(_HEADER.pack(zlib.crc32(tail), length, _MESSAGE_RECORD) + tail[1:])
        self._size += _HEADER.size + length
        if self.sync_policy == "always":
            self._durable()

    def sent_messages(self, begin: int, end: int) -> Iterator[StoredMessage]:
        self._file.flush()
        descriptor = self._file.fileno()
        offsets = self._offsets
        first = max(begin, self._base)
        last = min(end, self._base + len(offsets) - 1)
        for seq_num in range(first, last + 1):
            offset = offsets[seq_num - self._base]
            if offset < 0:
                continue
            header = os.pread(descriptor, _HEADER.size, offset)
            _, length, _ = _HEADER.unpack(header)
            yield _decode_message(os.pread(descriptor, length, offset + _HEADER.size))

    def reset(self) -> None:
        self._file.truncate(0)
        self._file.seek(0)
        self._allocated = 0
        self._size = 0
        self._offsets = array("q")
        self._base = 1
        self._next_sender = self._next_target = 1
        self._durable()

    # ------------------------------------------------------------ lifecycle

    def sync(self) -> None:
        """Make everything appended so far durable, per the sync policy."""
        if self.sync_policy == "none":
            self._file.flush()
        else:
            self._durable()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            if self._allocated > self._size:  # trim the reserve: a closed file is its records
                self._file.truncate(self._size)
                self._allocated = self._size
            if self.sync_policy != "none":
                os.fdatasync(self._file.fileno())
            self._file.close()
            self._lock.close()

    def compact(self) -> None:
        """Rewrite the file as two sequence-number records plus the stored messages.

        Every inbound message appends a next-target record, so a long-lived
        session's file is mostly those; opening a file with more than
        ``COMPACT_AFTER_RECORDS`` of them compacts it.  The new file is written
        beside the old one, made durable, then renamed over it.
        """
        self._file.flush()
        temporary = self.path.with_name(self.path.name + ".compact")
        descriptor = self._file.fileno()
        with open(temporary, "wb") as output:
            for record_type, value in ((_SENDER, self._next_sender), (_TARGET, self._next_target)):
                payload = _SEQ.pack(value)
                output.write(_HEADER.pack(zlib.crc32(bytes((record_type,)) + payload), len(payload),
                                          record_type) + payload)
            for offset in self._offsets:
                if offset >= 0:
                    _, length, _ = _HEADER.unpack(os.pread(descriptor, _HEADER.size, offset))
                    output.write(os.pread(descriptor, _HEADER.size + length, offset))
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._file.close()
        self._file = _open_read_write(self.path)
        self._offsets = array("q")
        self._base = 1
        self._sequence_records = 0
        self._size = self._replay()

    def __enter__(self) -> FileStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals

    def _append(self, record_type: int, payload: bytes) -> None:
        tail = bytes((record_type,)) + payload
        self._file.write(_HEADER.pack(zlib.crc32(tail), len(payload), record_type) + payload)
        self._size += _HEADER.size + len(payload)
        if self.sync_policy == "always":
            self._durable()

    def _durable(self) -> None:
        if self._size > self._allocated and self._preallocate:
            self._reserve()
        self._file.flush()
        os.fdatasync(self._file.fileno())

    def _reserve(self) -> None:
        """Extend the file past the records written (zeros); see the module docstring."""
        length = max(PREALLOCATE_BYTES, self._size - self._allocated + PREALLOCATE_BYTES // 2)
        try:
            os.posix_fallocate(self._file.fileno(), self._allocated, length)
        except OSError:  # not supported here, or no room: plain appends (a full disk fails the write)
            self._preallocate = False
            return
        self._allocated += length

    def _index(self, seq_num: int, offset: int) -> None:
        if not self._offsets:
            self._base = seq_num
        position = seq_num - self._base
        if position < 0:  # a lower number after a SequenceReset: rebuild from it
            self._offsets = array("q", [-1] * -position) + self._offsets
            self._base = seq_num
            position = 0
        if position >= len(self._offsets):
            self._offsets.extend([-1] * (position - len(self._offsets) + 1))
        self._offsets[position] = offset

    def _replay(self) -> int:
        """Apply every whole record; cut a torn tail.  Returns the valid size."""
        self._file.seek(0)
        data = self._file.read()
        offset = 0
        end = len(data)
        while offset + _HEADER.size <= end:
            crc, length, record_type = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            if length > _MAX_RECORD or start + length > end:
                break
            payload = data[start:start + length]
            if zlib.crc32(bytes((record_type,)) + payload) != crc:
                break
            if record_type == _SENDER and length == _SEQ.size:
                self._next_sender = _SEQ.unpack(payload)[0]
                self._sequence_records += 1
            elif record_type == _TARGET and length == _SEQ.size:
                self._next_target = _SEQ.unpack(payload)[0]
                self._sequence_records += 1
            elif record_type == _MESSAGE_RECORD and length >= _MESSAGE.size:
                seq_num = _MESSAGE.unpack_from(payload)[0]
                self._index(seq_num, offset)
                self._next_sender = seq_num + 1
            else:
                break
            offset = start + length
        self._allocated = end
        if offset != end and data.count(0, offset) != end - offset:  # not just the zero reserve
            self._file.truncate(offset)
            self._allocated = offset
            self._file.flush()
            os.fdatasync(self._file.fileno())
        self._file.seek(offset)
        return offset


def _open_read_write(path: Path):
    """The store file for reading and writing at any offset (created if missing)."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        return os.fdopen(descriptor, "r+b")
    except BaseException:
        os.close(descriptor)
        raise


def _decode_message(payload: bytes) -> StoredMessage:
    seq_num, type_length, time_length, body_length = _MESSAGE.unpack_from(payload)
    start = _MESSAGE.size
    msg_type = payload[start:start + type_length]
    start += type_length
    sending_time = payload[start:start + time_length]
    start += time_length
    return StoredMessage(seq_num, msg_type, sending_time, payload[start:start + body_length])
