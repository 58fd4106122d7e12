"""The parsed FIX message: a light, dict-like map of tag -> value bytes.

Decoding keeps tags as the ASCII bytes they arrive as (``b"35"``), because a
dict keyed by the wire bytes is built in C without converting each tag to an
int.  The public accessors take int tags (``message.get(11)``) and convert
through a precomputed table, so callers never handle tag bytes.

Repeating groups are filled in by the validator, which is the part that
knows the message layout: ``message.group(453)`` gives the entries of the
NoPartyIDs group as ``FieldMap`` objects (which may hold nested groups).
For a tag that occurs inside a group, the top-level accessors give the value
of its last occurrence; use ``group()`` to read groups.
"""

from __future__ import annotations

from collections.abc import Iterator

from numbex.protocol.fix import dictionary

SOH = b"\x01"

#: int tag -> wire bytes, for every tag FIX 4.4 defines (immutable after import).
TAG_KEYS: dict[int, bytes] = {
    tag: b"%d" % tag
    for low, high in dictionary.DEFINED_TAG_RANGES
    for tag in range(low, high + 1)
}


def tag_key(tag: int) -> bytes:
    """Wire bytes of an int tag (``35`` -> ``b"35"``)."""
    key = TAG_KEYS.get(tag)
    return key if key is not None else b"%d" % tag


class FieldMap:
    """Tag -> value bytes for one message level (a message body or a group entry).

    Parameters
    ----------
    values : dict[bytes, bytes]
        Tag bytes -> value bytes.
    groups : dict[int, list[FieldMap]] or None
        Repeating groups by their NumInGroup tag.
    """

    __slots__ = ("values", "groups")

    def __init__(self, values: dict[bytes, bytes], groups: dict[int, list[FieldMap]] | None = None):
        self.values = values
        self.groups = groups

    def get(self, tag: int, default: bytes | None = None) -> bytes | None:
        """Value of ``tag`` or ``default`` when absent."""
        key = TAG_KEYS.get(tag)
        return self.values.get(key if key is not None else b"%d" % tag, default)

    def __getitem__(self, tag: int) -> bytes:
        key = TAG_KEYS.get(tag)
        return self.values[key if key is not None else b"%d" % tag]

    def __contains__(self, tag: int) -> bool:
        key = TAG_KEYS.get(tag)
        return (key if key is not None else b"%d" % tag) in self.values

    def get_int(self, tag: int, default: int | None = None) -> int | None:
        """Value of ``tag`` as an int (``default`` when absent; ValueError when not an int)."""
        value = self.get(tag)
        return default if value is None else int(value)

    def group(self, count_tag: int) -> list[FieldMap]:
        """Entries of the repeating group counted by ``count_tag`` (empty when absent)."""
        if not self.groups:
            return []
        return self.groups.get(count_tag, [])

    def items(self) -> Iterator[tuple[int, bytes]]:
        """(int tag, value) pairs at this level, in wire order of first appearance."""
        for key, value in self.values.items():
            yield int(key) if key.isdigit() else -1, value

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{key.decode('ascii', 'replace')}={value!r}" for key, value in self.values.items())
        return f"{type(self).__name__}({fields})"


class FixMessage(FieldMap):
    """One decoded FIX message.

    Attributes
    ----------
    raw : bytes
        The whole message as received, ``8=`` through the CheckSum field.
    parts : list[bytes]
        Tags and values of every field between BodyLength and CheckSum in wire
        order, alternating ``[tag, value, tag, value, ..., b""]``.
    values : dict[bytes, bytes]
        Tag bytes -> value bytes (last occurrence wins).
    groups : dict[int, list[FieldMap]] or None
        Repeating groups, filled in by validation.
    msg_type : bytes or None
        MsgType (35), e.g. ``b"D"``.
    """

    __slots__ = ("raw", "parts", "msg_type")

    def __init__(self, raw: bytes, parts: list[bytes], values: dict[bytes, bytes]) -> None:
        self.raw = raw
        self.parts = parts
        self.values = values
        self.groups = None
        self.msg_type = values.get(b"35")

    def fields(self) -> list[tuple[int, bytes]]:
        """Every field in wire order as (int tag, value); -1 for a tag that is not a number."""
        parts = self.parts
        return [
            (int(tag) if tag.isdigit() else -1, value)
            for tag, value in zip(parts[0:-1:2], parts[1::2])
        ]

    def __repr__(self) -> str:
        printable = self.raw.replace(SOH, b"|")
        return f"FixMessage({printable!r})"
