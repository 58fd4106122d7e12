"""Data-dictionary validation of incoming FIX messages.

``MessageValidator.validate(message)`` returns normally when the message is
valid for its type and raises ``RemoteProtocolError`` carrying the
SessionRejectReason (373) and RefTagID (371) to put in the Reject otherwise.
The session decides what a valid message of a type numbex does not handle
gets (a BusinessMessageReject); here a FIX 4.4 MsgType outside the expanded
dictionary only has its header checked, and a MsgType FIX 4.4 does not
define is reason 11.

Fast path: a message whose tags are all distinct and which has no repeating
group is checked by a function compiled for its exact layout (its tags in
wire order, which a client repeats message after message): the layout is
checked once, structurally, and the function only checks the values that
have a format, in straight-line code.  Everything else (groups, duplicates,
empty values, anything wrong) goes through ``_walk``, which follows the
message level by level, fills ``message.groups`` and finds the precise fault.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from numbex.protocol.fix.errors import RemoteProtocolError
from numbex.protocol.fix.message import FieldMap, FixMessage
from numbex.protocol.fix.schema import (
    ENUM_VALUES, HEADER, KIND_BOOLEAN, KIND_CHAR, KIND_DATE, KIND_ENUM, KIND_FLOAT, KIND_GROUP,
    KIND_INT, KIND_MONTH_YEAR, KIND_MULTI_ENUM, KIND_TEXT, KIND_TIME, KIND_TIMESTAMP, KIND_UINT,
    Group, Level, MessageSchema, Schema, build_schema, is_defined_tag,
)
from numbex.protocol.fix.timestamps import (
    UtcTimestampParser, valid_date, valid_month_year, valid_utc_time_only,
)

INVALID_TAG_NUMBER = 0
REQUIRED_TAG_MISSING = 1
TAG_NOT_DEFINED_FOR_MESSAGE = 2
TAG_WITHOUT_VALUE = 4
VALUE_INCORRECT = 5
INCORRECT_DATA_FORMAT = 6
COMP_ID_PROBLEM = 9
SENDING_TIME_ACCURACY = 10
INVALID_MSG_TYPE = 11
TAG_APPEARS_MORE_THAN_ONCE = 13
TAG_OUT_OF_ORDER = 14
GROUP_FIELDS_OUT_OF_ORDER = 15
INCORRECT_NUM_IN_GROUP = 16
OTHER = 99
#: Integers (sequence numbers, counts, lengths) longer than this are a format error:
#: they must fit the int64 fields of stores and records.
MAX_INT_DIGITS = 18
#: Compiled layouts kept per MsgType (the cache is emptied when it fills).
MAX_SHAPES = 1024


def _tag(key: bytes) -> int | None:
    return int(key) if key.isdigit() and key[:1] != b"0" else None


def _reject(reason: int, text: str, key: bytes | None = None) -> RemoteProtocolError:
    return RemoteProtocolError(reason, text, None if key is None else _tag(key))


class MessageValidator:
    """Validates decoded messages against the FIX 4.4 dictionary.

    Holds immutable tables, a timestamp-parse cache (``timestamps``) and the
    compiled layouts; one instance can serve every session of a thread.

    Parameters
    ----------
    schema : Schema or None
        Compiled dictionary; built from ``dictionary`` when omitted.
    """

    def __init__(self, schema: Schema | None = None) -> None:
        self.schema = schema or build_schema()
        self.timestamps = UtcTimestampParser()
        self._shapes: dict[bytes | None, dict[tuple[bytes, ...], Callable]] = {}

    def is_known_msg_type(self, msg_type: bytes | None) -> bool:
        """True for any MsgType FIX 4.4 defines."""
        return msg_type in self.schema.msg_types

    def validate(self, message: FixMessage) -> None:
        """Check ``message``; raise ``RemoteProtocolError`` naming the first fault."""
        schema = self.schema.messages.get(message.msg_type)
        if schema is None:
            self._validate_other(message)
            return
        values = message.values
        parts = message.parts
        if (len(parts) != (len(values) << 1) + 1 or parts[0] != b"35"
                or b"=\x01" in message.raw):
            self._walk(message, schema)
            return
        shapes = self._shapes.get(message.msg_type)
        if shapes is None:
            shapes = self._shapes[message.msg_type] = {}
        shape = tuple(values)
        check = shapes.get(shape)
        if check is None:
            check = self._compile(schema, shape)
            if check is None:  # groups, or the layout itself is wrong: walk it
                self._walk(message, schema)
                return
            if len(shapes) >= MAX_SHAPES:
                shapes.clear()
            shapes[shape] = check
        key = check(values)
        if key is not None:
            kind = schema.checks[key]
            self.check_value(kind - HEADER if kind >= HEADER else kind, key, values[key])

    def _compile(self, schema: MessageSchema, shape: tuple[bytes, ...]):
        """A straight-line checker for messages of ``schema`` whose tags are exactly
        ``shape`` in this order, or None when that layout is not a valid flat one.

        The layout decides everything structural (allowed tags, header first,
        required tags present, no groups), so the checker only looks at the values
        that have a format: one line per field, no loop, no dispatch.  It returns
        the first tag whose value is wrong (``check_value`` then says why) or None.
        """
        checks = schema.checks
        in_body = False
        lines: list[str] = []
        constants: dict[str, object] = {"is_timestamp": self.timestamps.is_valid}
        for index, key in enumerate(shape):
            kind = checks.get(key)
            if kind is None:
                return None
            if kind >= HEADER:
                if in_body:
                    return None
                kind -= HEADER
            else:
                in_body = True
            if kind >= KIND_GROUP:
                return None
            if kind == KIND_TEXT:
                continue
            value = f"value{index}"
            lines.append(f"    {value} = values[{key!r}]")
            if kind == KIND_ENUM:
                constants[f"allowed{index}"] = ENUM_VALUES[key]
                lines.append(f"    if {value} not in allowed{index}: return {key!r}")
            elif kind == KIND_FLOAT:
                lines.append(f"    digits = {value}.replace(b'.', b'', 1)")
                lines.append("    if not digits.isdigit() and not (digits[:1] == b'-' and digits[1:].isdigit()):")
                lines.append(f"        return {key!r}")
            elif kind == KIND_UINT:
                lines.append(f"    if not {value}.isdigit() or len({value}) > {MAX_INT_DIGITS}:")
                lines.append(f"        return {key!r}")
            elif kind == KIND_TIMESTAMP:
                lines.append(f"    if not is_timestamp({value}): return {key!r}")
            else:
                constants[f"valid{index}"] = partial(self.value_is_valid, kind, key)
                lines.append(f"    if not valid{index}({value}): return {key!r}")
        if not schema.required <= set(shape):
            return None
        body = "\n".join("    " + line for line in lines) or "        pass"
        source = (f"def make({', '.join(constants)}):\n    def check(values):\n{body}\n"
                  f"        return None\n    return check\n")
        namespace: dict[str, object] = {}
        # The source holds only dictionary tag bytes and kinds, never message content.
        exec(compile(source, f"<FIX {schema.name} layout>", "exec"), namespace)  # noqa: S102
        return namespace["make"](**constants)

    def value_is_valid(self, kind: int, key: bytes, value: bytes) -> bool:
        """True when ``value`` is a valid value of a field of ``kind``."""
        try:
            self.check_value(kind, key, value)
        except RemoteProtocolError:
            return False
        return True

    def check_value(self, kind: int, key: bytes, value: bytes) -> None:
        """Raise when ``value`` is not a valid value of a field of ``kind``."""
        if kind == KIND_TEXT:
            return
        if kind == KIND_ENUM:
            if value not in ENUM_VALUES[key]:
                raise _reject(VALUE_INCORRECT, "Value is incorrect (out of range) for this tag", key)
            return
        if kind == KIND_MULTI_ENUM:
            allowed = ENUM_VALUES[key]
            if not all(item in allowed for item in value.split(b" ")):
                raise _reject(VALUE_INCORRECT, "Value is incorrect (out of range) for this tag", key)
            return
        if kind == KIND_UINT or kind == KIND_GROUP:
            valid = value.isdigit() and len(value) <= MAX_INT_DIGITS
        elif kind == KIND_INT:
            digits = value[1:] if value[:1] == b"-" else value
            valid = digits.isdigit() and len(digits) <= MAX_INT_DIGITS
        elif kind == KIND_FLOAT:
            digits = value[1:] if value[:1] == b"-" else value
            valid = digits.replace(b".", b"", 1).isdigit()
        elif kind == KIND_CHAR:
            valid = len(value) == 1 and value != b" "
        elif kind == KIND_BOOLEAN:
            valid = value == b"Y" or value == b"N"
        elif kind == KIND_TIMESTAMP:
            valid = self.timestamps.is_valid(value)
        elif kind == KIND_TIME:
            valid = valid_utc_time_only(value)
        elif kind == KIND_DATE:
            valid = valid_date(value)
        elif kind == KIND_MONTH_YEAR:
            valid = valid_month_year(value)
        else:
            valid = True
        if not valid:
            raise _reject(INCORRECT_DATA_FORMAT, "Incorrect data format for value", key)

    def parse_timestamp(self, value: bytes) -> int | None:
        """UTCTimestamp to nanoseconds since the epoch; None when malformed."""
        return self.timestamps.parse(value)

    # ----------------------------------------------------------------- walk

    def _validate_other(self, message: FixMessage) -> None:
        """A MsgType without a body definition: only the header is checked."""
        keys = message.parts[0:-1:2]
        values = message.parts[1::2]
        header = self.schema.header
        if not keys or keys[0] != b"35":
            if b"35" in keys:
                raise _reject(TAG_OUT_OF_ORDER, "Tag specified out of required order", b"35")
            raise _reject(REQUIRED_TAG_MISSING, "Required tag missing", b"35")
        if not self.is_known_msg_type(message.msg_type):
            raise _reject(INVALID_MSG_TYPE, "Invalid MsgType", b"35")
        seen: set[bytes] = set()
        for key, value in zip(keys, values):
            kind = header.fields.get(key)
            if kind is None:
                continue
            if key in seen:
                raise _reject(TAG_APPEARS_MORE_THAN_ONCE, "Tag appears more than once", key)
            seen.add(key)
            if not value:
                raise _reject(TAG_WITHOUT_VALUE, "Tag specified without a value", key)
            self.check_value(kind, key, value)
        for key in header.required:
            if key not in seen:
                raise _reject(REQUIRED_TAG_MISSING, "Required tag missing", key)

    def _walk(self, message: FixMessage, schema: MessageSchema) -> None:
        keys = message.parts[0:-1:2]
        values = message.parts[1::2]
        for key, value in zip(keys, values):
            if not value:
                if _tag(key) is None:
                    raise _reject(INVALID_TAG_NUMBER, "Invalid tag number", key)
                raise _reject(TAG_WITHOUT_VALUE, "Tag specified without a value", key)
        if not keys or keys[0] != b"35":
            raise _reject(TAG_OUT_OF_ORDER, "Tag specified out of required order", b"35")
        groups: dict[int, list[FieldMap]] = {}
        header_seen: set[bytes] = set()
        body_seen: set[bytes] = set()
        trailer_seen: set[bytes] = set()
        position = self._walk_level(keys, values, 0, self.schema.header, header_seen, groups, None, None)
        position = self._walk_level(keys, values, position, schema.body, body_seen, groups, None, None)
        position = self._walk_level(keys, values, position, self.schema.trailer, trailer_seen, groups,
                                    None, None)
        if position < len(keys):
            self._stray(keys[position], schema, header_seen | body_seen | trailer_seen)
        for key in schema.required_order:
            if key not in header_seen and key not in body_seen:
                raise _reject(REQUIRED_TAG_MISSING, "Required tag missing", key)
        message.groups = groups or None

    def _walk_level(self, keys: list[bytes], values: list[bytes], position: int, level: Level,
                    seen: set[bytes], groups: dict[int, list[FieldMap]],
                    entry_values: dict[bytes, bytes] | None, delimiter: bytes | None) -> int:
        fields = level.fields
        end = len(keys)
        while position < end:
            key = keys[position]
            kind = fields.get(key)
            if kind is None or key == delimiter:
                return position
            if key in seen:
                raise _reject(TAG_APPEARS_MORE_THAN_ONCE, "Tag appears more than once", key)
            seen.add(key)
            value = values[position]
            self.check_value(kind, key, value)
            if entry_values is not None:
                entry_values[key] = value
            position += 1
            if kind == KIND_GROUP:
                entries, position = self._walk_group(keys, values, position, level.groups[key], int(value))
                groups[int(key)] = entries
        return position

    def _walk_group(self, keys: list[bytes], values: list[bytes], position: int, group: Group,
                    count: int) -> tuple[list[FieldMap], int]:
        entries: list[FieldMap] = []
        delimiter = group.delimiter
        end = len(keys)
        while position < end and keys[position] == delimiter:
            value = values[position]
            self.check_value(group.entry.fields[delimiter], delimiter, value)
            entry_values = {delimiter: value}
            nested: dict[int, list[FieldMap]] = {}
            seen = {delimiter}
            position = self._walk_level(keys, values, position + 1, group.entry, seen, nested,
                                        entry_values, delimiter)
            for key in group.entry.required:
                if key not in seen:
                    raise _reject(REQUIRED_TAG_MISSING, "Required tag missing", key)
            entries.append(FieldMap(entry_values, nested or None))
        if len(entries) != count:
            if not entries and position < end and keys[position] in group.entry.fields:
                raise _reject(GROUP_FIELDS_OUT_OF_ORDER, "Repeating group fields out of order",
                              keys[position])
            raise RemoteProtocolError(
                INCORRECT_NUM_IN_GROUP, "Incorrect NumInGroup count for repeating group", group.count_tag)
        return entries, position

    def _stray(self, key: bytes, schema: MessageSchema, seen: set[bytes]) -> None:
        """Raise the right reason for a field found where its level does not allow it."""
        tag = _tag(key)
        if tag is None:
            raise _reject(INVALID_TAG_NUMBER, "Invalid tag number", key)
        if key in seen:
            raise _reject(TAG_APPEARS_MORE_THAN_ONCE, "Tag appears more than once", key)
        if (key in (b"8", b"9", b"10") or key in self.schema.header.fields
                or key in schema.body.fields or key in self.schema.trailer.fields):
            raise _reject(TAG_OUT_OF_ORDER, "Tag specified out of required order", key)
        if key in schema.group_members or is_defined_tag(tag):
            raise _reject(TAG_NOT_DEFINED_FOR_MESSAGE, "Tag not defined for this message type", key)
        raise _reject(INVALID_TAG_NUMBER, "Invalid tag number", key)
