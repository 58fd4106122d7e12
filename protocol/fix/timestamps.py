"""FIX UTC time values: formatting SendingTime and checking/parsing time fields.

Both directions cache the ``YYYYMMDD-HH:MM:SS`` part for the current second,
so consecutive messages cost a slice, a compare and a table lookup instead of
a calendar conversion.  Nothing here reads the clock: times arrive as
nanoseconds since the epoch.
"""

from __future__ import annotations

import calendar
import time

NANOS_PER_SECOND = 1_000_000_000
#: ``.000`` .. ``.999``: the millisecond suffix of a UTCTimestamp.
MILLISECOND_SUFFIXES = tuple(b".%03d" % value for value in range(1000))
_DAYS_IN_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_FRACTION_SCALE = {0: 0, 3: 1_000_000, 6: 1_000, 9: 1}


class UtcTimestampFormatter:
    """Formats ``now_ns`` as a UTCTimestamp with milliseconds (``20240102-03:04:05.678``)."""

    __slots__ = ("_second", "_prefix")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def format(self, now_ns: int) -> bytes:
        """``YYYYMMDD-HH:MM:SS.sss`` for ``now_ns`` nanoseconds since the epoch (UTC)."""
        second, remainder = divmod(now_ns, NANOS_PER_SECOND)
        if second != self._second:
            self._prefix = time.strftime("%Y%m%d-%H:%M:%S", time.gmtime(second)).encode("ascii")
            self._second = second
        return self._prefix + MILLISECOND_SUFFIXES[remainder // 1_000_000]


def _valid_date(value: bytes) -> bool:
    """``YYYYMMDD`` with a real calendar date."""
    if len(value) != 8 or not value.isdigit():
        return False
    year, month, day = int(value[:4]), int(value[4:6]), int(value[6:])
    if not 1 <= month <= 12 or not 1 <= day <= _DAYS_IN_MONTH[month]:
        return False
    return month != 2 or day < 29 or calendar.isleap(year)


def _valid_time(value: bytes) -> bool:
    """``HH:MM:SS`` optionally followed by ``.sss``, ``.ssssss`` or ``.sssssssss``."""
    if len(value) < 8 or value[2:3] != b":" or value[5:6] != b":":
        return False
    hour, minute, second = value[0:2], value[3:5], value[6:8]
    if not (hour.isdigit() and minute.isdigit() and second.isdigit()):
        return False
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:
        return False
    fraction = value[8:]
    if not fraction:
        return True
    return fraction[:1] == b"." and len(fraction) - 1 in (3, 6, 9) and fraction[1:].isdigit()


class UtcTimestampParser:
    """Checks and converts UTCTimestamp values (``YYYYMMDD-HH:MM:SS[.sss]``).

    Fractions of 3, 6 or 9 digits are accepted (FIX 4.4 specifies
    milliseconds; QuickFIX and others may send more).  Seconds may be 60
    (leap second) as the FIX specification allows.
    """

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._prefix: bytes | None = None  # the cached, already checked first 17 bytes
        self._second = 0

    def is_valid(self, value: bytes) -> bool:
        """True when ``value`` is a UTCTimestamp (cheap when its second was seen last)."""
        if value[:17] == self._prefix:
            size = len(value)
            if size == 21 or size == 24 or size == 27:
                return value[17] == 0x2E and value[18:].isdigit()
            return size == 17
        return self.parse(value) is not None

    def epoch_second(self, value: bytes) -> int | None:
        """Whole seconds since the epoch (fraction not checked); None when malformed."""
        if value[:17] == self._prefix:
            return self._second
        nanos = self.parse(value[:17])
        return None if nanos is None else nanos // NANOS_PER_SECOND

    def parse(self, value: bytes) -> int | None:
        """Nanoseconds since the epoch (negative before 1970), or None when not a UTCTimestamp."""
        prefix = value[:17]
        if prefix != self._prefix:
            if len(prefix) != 17 or value[8:9] != b"-":
                return None
            if not _valid_date(prefix[:8]) or not _valid_time(prefix[9:]):
                return None
            self._second = calendar.timegm((
                int(prefix[:4]), int(prefix[4:6]), int(prefix[6:8]),
                int(prefix[9:11]), int(prefix[12:14]), int(prefix[15:17]), 0, 0, 0,
            ))
            self._prefix = prefix
        fraction = value[17:]
        if not fraction:
            return self._second * NANOS_PER_SECOND
        scale = _FRACTION_SCALE.get(len(fraction) - 1)
        if not scale or fraction[:1] != b"." or not fraction[1:].isdigit():
            return None
        return self._second * NANOS_PER_SECOND + int(fraction[1:]) * scale


def valid_utc_time_only(value: bytes) -> bool:
    """UTCTimeOnly: ``HH:MM:SS[.sss]``."""
    return _valid_time(value)


def valid_date(value: bytes) -> bool:
    """UTCDateOnly or LocalMktDate: ``YYYYMMDD``."""
    return _valid_date(value)


def valid_month_year(value: bytes) -> bool:
    """MonthYear: ``YYYYMM``, ``YYYYMMDD`` or ``YYYYMMwN`` (week 1-5)."""
    if len(value) < 6 or not value[:6].isdigit() or not 1 <= int(value[4:6]) <= 12:
        return False
    rest = value[6:]
    if not rest:
        return True
    if len(rest) == 2 and rest[:1] == b"w":
        return rest[1:] in (b"1", b"2", b"3", b"4", b"5")
    return _valid_date(value)
