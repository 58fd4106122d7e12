"""FIX 4.4 tag=value framing: an incremental decoder and a header-caching encoder.

Decoding (``FixDecoder``) is sans-IO: ``receive_data(bytes)`` then
``next_message()`` until it returns ``None`` ("need more data").  Each call
gives a ``FixMessage`` or a ``Garbled`` report; it never raises on any input.
A frame is ``8=FIX.4.4|9=<len>|...|10=<sum>|``; a frame whose BodyLength,
CheckSum or framing is wrong, or bytes that are not a frame, are reported as
``Garbled`` and the decoder resynchronises at the next ``8=FIX.4.4|9=``.

Fields are parsed over one slice of the body, never by re-slicing the buffer
per field: a C-level check proves every field is ``tag=value|`` with no ``=``
inside values and no data field present, then one ``replace`` + ``split``
gives all tags and values.  Anything else (data fields whose bytes may hold
SOH, ``=`` inside a value, a field without ``=``) takes an exact offset walk.

Encoding (``FixEncoder``) keeps the per-session header as a precomputed
template, so framing a body costs two joins, one ``len`` and one checksum.
The checksum (sum of bytes mod 256) is computed with ``zlib.adler32``, whose
low half is 1 + the byte sum modulo 65521: exact for runs up to 256 bytes,
so longer input is summed in 256-byte chunks.
"""

from __future__ import annotations

import zlib
from zlib import adler32
from collections.abc import Iterable
from dataclasses import dataclass

from numbex.protocol.fix import dictionary
from numbex.protocol.fix.errors import LocalProtocolError
from numbex.protocol.fix.message import FixMessage

SOH = b"\x01"
BEGIN_MARKER = b"8=FIX.4.4\x019="
DEFAULT_MAX_MESSAGE_BYTES = 1 << 16
#: ``10=NNN|`` for every checksum value.
CHECKSUM_FIELDS = tuple(b"10=%03d\x01" % value for value in range(256))
#: BodyLength digits -> int for common sizes (a dict lookup is cheaper than int()).
BODY_LENGTHS = {b"%d" % length: length for length in range(4096)}
#: Every byte except ``=`` and SOH: deleting these leaves only the separators.
NOT_SEPARATORS = bytes(value for value in range(256) if value not in (0x01, 0x3D))
DATA_LENGTH_KEYS = frozenset(b"%d" % tag for tag in dictionary.DATA_LENGTH_TAGS)
DATA_TAGS = frozenset(dictionary.DATA_LENGTH_TAGS.values())
DATA_KEY_BY_LENGTH_KEY = {
    b"%d" % length: b"%d" % data for length, data in dictionary.DATA_LENGTH_TAGS.items()
}

GARBLED_JUNK = "bytes outside any FIX.4.4 frame"
GARBLED_BODY_LENGTH = "BodyLength(9) is not a number"
GARBLED_TOO_LARGE = "BodyLength(9) exceeds the maximum message size"
GARBLED_FRAMING = "BodyLength(9) does not end at a CheckSum(10) field"
GARBLED_CHECKSUM = "CheckSum(10) does not match"


@dataclass(frozen=True, slots=True)
class Garbled:
    """Bytes dropped by the decoder: ``size`` bytes for ``reason``."""

    reason: str
    size: int


def checksum(data: bytes | bytearray | memoryview) -> int:
    """FIX CheckSum of ``data``: the sum of its bytes modulo 256."""
    if len(data) <= 256:
        return ((zlib.adler32(data) & 0xFFFF) - 1) & 0xFF
    view = memoryview(data)
    total = 0
    for start in range(0, len(view), 256):
        total += (zlib.adler32(view[start:start + 256]) & 0xFFFF) - 1
    return total & 0xFF


def parse_fields(body: bytes) -> tuple[list[bytes], dict[bytes, bytes]]:
    """Split a message body (fields after BodyLength, each ending in SOH).

    Returns ``(parts, values)``: ``parts`` alternates tag and value bytes in wire
    order and ends with ``b""``; ``values`` maps tag bytes to value bytes.
    """
    separators = body.translate(None, NOT_SEPARATORS)
    half = len(separators) >> 1
    if separators == b"=\x01" * half:
        parts = body.replace(b"=", SOH).split(SOH)
        pairs = iter(parts)
        values = dict(zip(pairs, pairs))
        if DATA_LENGTH_KEYS.isdisjoint(values):
            return parts, values
    parts = parse_fields_exact(body)
    return parts, dict(zip(parts[0::2], parts[1::2]))


def parse_fields_exact(body: bytes) -> list[bytes]:
    """Offset walk honouring data fields: a data field takes exactly the length
    its length field gives, SOH bytes included.  A field with no ``=`` becomes
    the tag ``b"=<field bytes>"``, which no dictionary matches."""
    parts: list[bytes] = []
    end = len(body)
    position = 0
    data_key = None
    data_length = -1
    while position < end:
        field_end = body.find(SOH, position)
        if field_end < 0:
            field_end = end
        equals = body.find(b"=", position, field_end)
        if equals < 0:
            parts.append(b"=" + body[position:field_end])
            parts.append(b"")
            position = field_end + 1
            data_key = None
            continue
        tag = body[position:equals]
        value_end = field_end
        if tag == data_key and data_length >= 0:
            candidate = equals + 1 + data_length
            if candidate < end and body[candidate] == 0x01:
                value_end = candidate
        parts.append(tag)
        parts.append(body[equals + 1:value_end])
        data_key = DATA_KEY_BY_LENGTH_KEY.get(tag)
        value = parts[-1]
        data_length = int(value) if data_key is not None and value.isdigit() and len(value) < 7 else -1
        position = value_end + 1
    parts.append(b"")
    return parts


class FixDecoder:
    """Incremental FIX 4.4 decoder: feed bytes, pull messages.

    Parameters
    ----------
    max_message_bytes : int
        A BodyLength above this is reported as garbled instead of buffered.
    """

    __slots__ = ("_buffer", "_position", "_max_body")

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._buffer = b""
        self._position = 0
        self._max_body = max_message_bytes

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed."""
        return len(self._buffer) - self._position

    def receive_data(self, data: bytes) -> None:
        """Append bytes from the transport."""
        if self._position:
            self._buffer = self._buffer[self._position:] + bytes(data)
            self._position = 0
        else:
            self._buffer += bytes(data)

    def next_message(self) -> FixMessage | Garbled | None:
        """The next message, a ``Garbled`` report, or ``None`` when more data is needed."""
        buffer = self._buffer
        start = self._position
        if start >= len(buffer):
            return None
        if not buffer.startswith(BEGIN_MARKER, start):
            return self._skip_junk(buffer, start)
        length_start = start + 12
        length_end = buffer.find(SOH, length_start, length_start + 8)
        if length_end < 0:
            if len(buffer) - length_start < 8:
                return None
            return self._resync(GARBLED_BODY_LENGTH)
        digits = buffer[length_start:length_end]
        body_length = BODY_LENGTHS.get(digits)
        if body_length is None:
            if not digits.isdigit():
                return self._resync(GARBLED_BODY_LENGTH)
            body_length = int(digits)
        if body_length > self._max_body:
            return self._resync(GARBLED_TOO_LARGE)
        body_start = length_end + 1
        body_end = body_start + body_length
        end = body_end + 7
        if len(buffer) < end:
            return None
        raw = buffer[start:end]
        summed = body_end - start
        if summed <= 256:
            expected = CHECKSUM_FIELDS[((adler32(raw[:summed]) & 0xFFFF) - 1) & 0xFF]
        else:
            expected = CHECKSUM_FIELDS[checksum(raw[:summed])]
        if raw[summed - 1] != 0x01 or raw[summed:] != expected:
            trailer = raw[summed:]
            if (raw[summed - 1] != 0x01 or not trailer.startswith(b"10=") or trailer[-1] != 0x01
                    or not trailer[3:6].isdigit()):
                return self._resync(GARBLED_FRAMING)
            return self._resync(GARBLED_CHECKSUM)
        self._position = end
        body = raw[body_start - start:summed]
        # Fast path (see parse_fields): every field is tag=value with no "=" in values.
        separators = body.translate(None, NOT_SEPARATORS)
        if separators == b"=\x01" * (len(separators) >> 1):
            parts = body.replace(b"=", SOH).split(SOH)
            pairs = iter(parts)
            values = dict(zip(pairs, pairs))
            if DATA_LENGTH_KEYS.isdisjoint(values):
                return FixMessage(raw, parts, values)
        parts = parse_fields_exact(body)
        return FixMessage(raw, parts, dict(zip(parts[0::2], parts[1::2])))

    def _skip_junk(self, buffer: bytes, start: int) -> Garbled | None:
        found = buffer.find(BEGIN_MARKER, start)
        if found < 0:
            keep = 0
            for size in range(min(len(BEGIN_MARKER) - 1, len(buffer) - start), 0, -1):
                if buffer.endswith(BEGIN_MARKER[:size]):
                    keep = size
                    break
            found = len(buffer) - keep
            if found == start:
                return None
        self._position = found
        return Garbled(GARBLED_JUNK, found - start)

    def _resync(self, reason: str) -> Garbled:
        start = self._position
        found = self._buffer.find(BEGIN_MARKER, start + 1)
        if found < 0:
            found = len(self._buffer)
        self._position = found
        return Garbled(reason, found - start)


def _value_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("ascii")
    if isinstance(value, bool):
        return b"Y" if value else b"N"
    if isinstance(value, int):
        return b"%d" % value
    return str(value).encode("ascii")


def encode_fields(fields: Iterable[tuple[int, object]]) -> bytes:
    """Body bytes for ``(tag, value)`` pairs; values are bytes, str, int, bool or Decimal.

    Only data fields (RawData, EncodedText, ...) may hold SOH; their length
    field must precede them, as in FIX.

    Raises
    ------
    LocalProtocolError
        A value is empty or holds SOH outside a data field, or a tag is not a positive int.
    """
    out = []
    for tag, value in fields:
        data = _value_bytes(value)
        if not data or (SOH in data and tag not in DATA_TAGS) or type(tag) is not int or tag <= 0:
            raise LocalProtocolError(f"cannot encode field {tag!r}={value!r}")
        out.append(b"%d=%s\x01" % (tag, data))
    return b"".join(out)


def frame(payload: bytes) -> bytes:
    """Wrap ``payload`` (fields from MsgType on, SOH-terminated) with BeginString,
    BodyLength and CheckSum."""
    message = b"8=FIX.4.4\x019=%d\x01%s" % (len(payload), payload)
    return message + CHECKSUM_FIELDS[checksum(message)]


class FixEncoder:
    """Builds complete messages for one session direction.

    The standard header is a precomputed template: MsgType, MsgSeqNum,
    SenderCompID, SendingTime, TargetCompID (the order QuickFIX uses).

    Parameters
    ----------
    sender_comp_id, target_comp_id : str
        SenderCompID (49) and TargetCompID (56) of messages this encoder builds.
    """

    __slots__ = ("_header", "_resend_header")

    def __init__(self, sender_comp_id: str, target_comp_id: str) -> None:
        for comp_id in (sender_comp_id, target_comp_id):
            if not comp_id or "\x01" in comp_id or "=" in comp_id:
                raise LocalProtocolError(f"invalid CompID {comp_id!r}")
        sender = sender_comp_id.encode("ascii").replace(b"%", b"%%")
        target = target_comp_id.encode("ascii").replace(b"%", b"%%")
        self._header = b"35=%s\x0134=%d\x0149=" + sender + b"\x0152=%s\x0156=" + target + b"\x01"
        self._resend_header = (b"35=%s\x0134=%d\x0143=Y\x0149=" + sender + b"\x0152=%s\x0156="
                               + target + b"\x01122=%s\x01")

    def encode(self, msg_type: bytes, seq_num: int, sending_time: bytes, body: bytes = b"") -> bytes:
        """A complete message: header + ``body`` (SOH-terminated fields) + trailer."""
        payload = self._header % (msg_type, seq_num, sending_time) + body
        message = b"8=FIX.4.4\x019=%d\x01%s" % (len(payload), payload)
        return message + CHECKSUM_FIELDS[checksum(message)]

    def encode_possible_duplicate(self, msg_type: bytes, seq_num: int, sending_time: bytes,
                                  orig_sending_time: bytes, body: bytes = b"") -> bytes:
        """A resent message: PossDupFlag(43)=Y and OrigSendingTime(122) in the header."""
        payload = self._resend_header % (msg_type, seq_num, sending_time, orig_sending_time) + body
        message = b"8=FIX.4.4\x019=%d\x01%s" % (len(payload), payload)
        return message + CHECKSUM_FIELDS[checksum(message)]
