"""The generated FIX 4.4 dictionary compiled into lookup tables for validation.

Tags are keyed by their wire bytes (``b"44"``) so a decoded message can be
checked without converting tags to ints.  Each field has a *kind*, a small
int that selects the value check; the header, body and trailer of a message
and each repeating-group entry are a ``Level``: its own fields, the required
ones, and its groups.  A message's ``checks`` table flattens the levels that
a message without repeating groups can use, with ``HEADER`` added to header
kinds, so the validator's fast path is one dict lookup per field.
"""

from __future__ import annotations

from dataclasses import dataclass

from numbex.protocol.fix import dictionary

KIND_TEXT = 0
KIND_INT = 1
KIND_UINT = 2
KIND_FLOAT = 3
KIND_CHAR = 4
KIND_BOOLEAN = 5
KIND_TIMESTAMP = 6
KIND_TIME = 7
KIND_DATE = 8
KIND_MONTH_YEAR = 9
KIND_ENUM = 10
KIND_MULTI_ENUM = 11
KIND_GROUP = 12       # NumInGroup: the fast path hands the message to the structural walk
KIND_TRAILER = 13     # SignatureLength/Signature: likewise
KIND_MISPLACED = 14   # BeginString/BodyLength/CheckSum inside the body
HEADER = 32           # added to the kind of header fields in MessageSchema.checks

_KIND_BY_TYPE = {
    "STRING": KIND_TEXT, "CURRENCY": KIND_TEXT, "EXCHANGE": KIND_TEXT, "COUNTRY": KIND_TEXT,
    "DATA": KIND_TEXT, "MULTIPLEVALUESTRING": KIND_TEXT,
    "INT": KIND_INT, "SEQNUM": KIND_UINT, "LENGTH": KIND_UINT, "DAYOFMONTH": KIND_UINT,
    "NUMINGROUP": KIND_GROUP,
    "PRICE": KIND_FLOAT, "AMT": KIND_FLOAT, "QTY": KIND_FLOAT, "FLOAT": KIND_FLOAT,
    "PRICEOFFSET": KIND_FLOAT, "PERCENTAGE": KIND_FLOAT,
    "CHAR": KIND_CHAR, "BOOLEAN": KIND_BOOLEAN, "UTCTIMESTAMP": KIND_TIMESTAMP,
    "UTCTIMEONLY": KIND_TIME, "UTCDATEONLY": KIND_DATE, "LOCALMKTDATE": KIND_DATE,
    "MONTHYEAR": KIND_MONTH_YEAR,
}


def field_kind(tag: int) -> int:
    """Value-check kind of a dictionary field."""
    _, field_type, enum_text = dictionary.FIELDS[tag]
    if field_type == "NUMINGROUP":
        return KIND_GROUP
    if enum_text:
        return KIND_MULTI_ENUM if field_type == "MULTIPLEVALUESTRING" else KIND_ENUM
    return _KIND_BY_TYPE[field_type]


#: tag bytes -> allowed values, for every enumerated field.
ENUM_VALUES: dict[bytes, frozenset[bytes]] = {
    b"%d" % tag: frozenset(enum_text.encode("ascii").split())
    for tag, (_, _, enum_text) in dictionary.FIELDS.items()
    if enum_text
}


def is_defined_tag(tag: int) -> bool:
    """True when FIX 4.4 defines ``tag`` (in any message)."""
    return any(low <= tag <= high for low, high in dictionary.DEFINED_TAG_RANGES)


@dataclass(frozen=True, slots=True)
class Level:
    """One message level: fields allowed directly in it, required ones, groups."""

    fields: dict[bytes, int]
    required: tuple[bytes, ...]
    groups: dict[bytes, Group]


@dataclass(frozen=True, slots=True)
class Group:
    """A repeating group: ``count_tag`` (NumInGroup), the delimiter field and the entry level."""

    count_tag: int
    delimiter: bytes
    entry: Level


def expand(items: tuple, required_context: bool = True) -> list[tuple]:
    """Inline component references; a field of an optional component is optional."""
    result: list[tuple] = []
    for item in items:
        if isinstance(item[0], str):
            result.extend(expand(dictionary.COMPONENTS[item[0]], required_context and item[1]))
        elif len(item) == 2:
            result.append((item[0], required_context and item[1]))
        else:
            result.append((item[0], required_context and item[1], tuple(expand(item[2], True))))
    return result


def build_level(items: list[tuple]) -> Level:
    fields: dict[bytes, int] = {}
    required: list[bytes] = []
    groups: dict[bytes, Group] = {}
    for item in items:
        key = b"%d" % item[0]
        fields[key] = field_kind(item[0])
        if item[1]:
            required.append(key)
        if len(item) == 3:
            entry = build_level(list(item[2]))
            groups[key] = Group(item[0], b"%d" % item[2][0][0], entry)
    return Level(fields, tuple(required), groups)


def _group_members(level: Level, into: set[bytes]) -> set[bytes]:
    for group in level.groups.values():
        into.update(group.entry.fields)
        _group_members(group.entry, into)
    return into


@dataclass(frozen=True, slots=True)
class MessageSchema:
    """Everything the validator needs about one message type."""

    msg_type: bytes
    name: str
    category: str
    body: Level
    checks: dict[bytes, int]
    required: frozenset[bytes]
    required_order: tuple[bytes, ...]
    group_members: frozenset[bytes]


@dataclass(frozen=True, slots=True)
class Schema:
    """The compiled dictionary: header, trailer and every expanded message."""

    header: Level
    trailer: Level
    messages: dict[bytes, MessageSchema]
    msg_types: frozenset[bytes]
    admin_types: frozenset[bytes]


def build_schema() -> Schema:
    """Compile ``dictionary`` (a few milliseconds; build once and share)."""
    header = build_level(expand(dictionary.HEADER))
    trailer = build_level(expand(dictionary.TRAILER))
    # BeginString, BodyLength and CheckSum are consumed by the decoder.
    for key in (b"8", b"9"):
        header.fields.pop(key)
    trailer.fields.pop(b"10")
    header_required = tuple(key for key in header.required if key in header.fields)
    header = Level(header.fields, header_required, header.groups)
    trailer = Level(trailer.fields, (), trailer.groups)
    messages = {}
    for msg_type, (name, category, items) in dictionary.MESSAGES.items():
        body = build_level(expand(items))
        checks = {key: kind for key, kind in body.fields.items()}
        checks.update((key, kind + HEADER) for key, kind in header.fields.items())
        checks.update((key, KIND_TRAILER) for key in trailer.fields)
        checks.update((key, KIND_MISPLACED) for key in (b"8", b"9", b"10"))
        required = header.required + body.required
        messages[msg_type] = MessageSchema(
            msg_type, name, category, body, checks, frozenset(required), required,
            frozenset(_group_members(body, set())),
        )
    msg_types = frozenset(dictionary.FIELDS[35][2].encode("ascii").split())
    admin_types = frozenset(key for key, schema in messages.items() if schema.category == "admin")
    return Schema(header, trailer, messages, msg_types, admin_types)
