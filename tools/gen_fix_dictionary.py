"""Generate ``protocol/fix/dictionary.py`` from QuickFIX's ``FIX44.xml``.

The generated module is committed; regenerate it only when the message set
changes::

    pip download --no-deps --no-binary :all: quickfix==1.16.0 -d /tmp/qfsrc
    tar xzf /tmp/qfsrc/quickfix-1.16.0.tar.gz -C /tmp/qfsrc
    python -m numbex.tools.gen_fix_dictionary \\
        --spec /tmp/qfsrc/quickfix-1.16.0/spec/FIX44.xml --output protocol/fix/dictionary.py

Only the messages numbex uses are expanded (components inlined, repeating
groups nested); for every other FIX 4.4 message only its MsgType is kept, so
the session can tell "unsupported" (BusinessMessageReject) from "invalid"
(Reject).  The output is deterministic: the same spec gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

# Messages whose bodies are expanded into the dictionary, in output order.
MESSAGE_TYPES = ("0", "1", "2", "3", "4", "5", "A", "D", "F", "G", "H", "q", "8", "9", "r", "j")

# Fields whose enum values also get named constants (SIDE_BUY = b"1", ...).
CONSTANT_FIELDS = (
    "MsgType", "EncryptMethod", "Side", "OrdType", "TimeInForce", "HandlInst", "ExecInst",
    "ExecType", "OrdStatus", "OrdRejReason", "CxlRejReason", "CxlRejResponseTo",
    "ExecRestatementReason", "SessionRejectReason", "BusinessRejectReason",
    "MassCancelRequestType", "MassCancelResponse", "MassCancelRejectReason",
)


def constant_name(camel: str) -> str:
    """``ClOrdID`` -> ``CL_ORD_ID``; ``NoPartyIDs`` -> ``NO_PARTY_IDS``."""
    spaced = re.sub(r"([A-Z]{2,})s(?=[A-Z]|$)", r"\1S", camel)     # plural acronym: IDs
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", spaced)
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced)
    return spaced.upper()


def enum_constant_suffix(description: str, value: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", description).strip("_").upper()
    if not cleaned or cleaned[0].isdigit():
        cleaned = f"VALUE_{cleaned or value}"
    return cleaned


class Spec:
    """The parts of a QuickFIX data-dictionary XML that numbex needs."""

    def __init__(self, root: ElementTree.Element) -> None:
        self.fields: dict[str, tuple[int, str, list[tuple[str, str]]]] = {}
        for node in root.find("fields"):
            values = [(value.get("enum"), value.get("description")) for value in node.findall("value")]
            self.fields[node.get("name")] = (int(node.get("number")), node.get("type"), values)
        self.components = {node.get("name"): node for node in root.find("components")}
        self.messages = {node.get("msgtype"): node for node in root.find("messages")}
        self.header = root.find("header")
        self.trailer = root.find("trailer")
        self.used: set[str] = set()
        self.used_components: dict[str, list[tuple]] = {}

    def items(self, node: ElementTree.Element) -> list[tuple]:
        """Items of ``node``: ``(tag, required)``, ``(count, required, items)`` or ``(name, required)``."""
        result: list[tuple] = []
        for child in node:
            required = child.get("required") == "Y"
            name = child.get("name")
            if child.tag == "field":
                self.used.add(name)
                result.append((self.fields[name][0], required))
            elif child.tag == "group":
                self.used.add(name)
                result.append((self.fields[name][0], required, tuple(self.items(child))))
            elif child.tag == "component":
                if name not in self.used_components:
                    self.used_components[name] = []  # placeholder against cycles
                    self.used_components[name] = self.items(self.components[name])
                result.append((name, required))
            else:  # pragma: no cover - the XML has nothing else
                raise ValueError(f"unexpected element <{child.tag}> in {node.get('name')}")
        return result


def render_items(items: list[tuple] | tuple, indent: int) -> list[str]:
    """Render expanded items compactly: plain fields packed several to a line."""
    pad = " " * indent
    lines: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        line = pad
        for text in pending:
            if len(line) + len(text) + 1 > 99 and line.strip():
                lines.append(line.rstrip())
                line = pad
            line += text + " "
        if line.strip():
            lines.append(line.rstrip())
        pending.clear()

    for item in items:
        if len(item) == 2:
            pending.append(f"({item[0]!r}, {item[1]}),")
        else:
            flush()
            lines.append(f"{pad}({item[0]}, {item[1]}, (")
            lines.extend(render_items(item[2], indent + 4))
            lines.append(f"{pad})),")
    flush()
    return lines


def generate(spec_path: Path) -> str:
    data = spec_path.read_bytes()
    root = ElementTree.fromstring(data)
    spec = Spec(root)
    header = spec.items(spec.header)
    trailer = spec.items(spec.trailer)
    messages = []
    for msg_type in MESSAGE_TYPES:
        node = spec.messages[msg_type]
        messages.append((msg_type, node.get("name"), node.get("msgcat"), spec.items(node)))
    spec.used.update(("MsgType", "BeginString", "BodyLength", "CheckSum"))
    for name, (_, field_type, _) in spec.fields.items():  # every data field and its length field:
        if field_type == "DATA":                          # the decoder needs them in any message
            spec.used.add(name)
            spec.used.update(f"{name}{suffix}" for suffix in ("Len", "Length")
                             if f"{name}{suffix}" in spec.fields)
    used = sorted(spec.used, key=lambda name: spec.fields[name][0])

    out: list[str] = []
    emit = out.append
    emit('"""FIX 4.4 data dictionary for numbex.  GENERATED by tools/gen_fix_dictionary.py; do not edit.')
    emit("")
    emit(f"Source: QuickFIX {spec_path.name} (sha256 {hashlib.sha256(data).hexdigest()[:16]}).")
    emit('This product includes software developed by quickfixengine.org (http://www.quickfixengine.org/).')
    emit("")
    emit("Contents: ``TAG_*`` tag numbers for every field of the expanded messages;")
    emit("enum-value constants (bytes, as on the wire) for a few order-entry fields;")
    emit("``FIELDS`` tag -> (name, type, space-separated enum values); ``DEFINED_TAG_RANGES``")
    emit("(every tag FIX 4.4 defines); ``DATA_LENGTH_TAGS`` length tag -> data tag;")
    emit("``HEADER``, ``TRAILER``, ``COMPONENTS`` name -> items and ``MESSAGES`` msg type ->")
    emit("(name, category, items).  An item is ``(tag, required)`` for a field, ``(count_tag,")
    emit("required, items)`` for a repeating group (its first item is the delimiter; requiredness")
    emit("inside is per entry) or ``(component_name, required)``; fields of a component that is")
    emit("not required are optional wherever the component is.")
    emit('"""')
    emit("")
    emit("# fmt: off")
    emit('BEGIN_STRING = b"FIX.4.4"')
    emit("")
    emit("# Tag numbers.")
    for name in used:
        emit(f"TAG_{constant_name(name)} = {spec.fields[name][0]}")
    emit("")
    emit("# Enum values of selected fields, as bytes on the wire.")
    seen: set[str] = set()
    for field_name in CONSTANT_FIELDS:
        prefix = constant_name(field_name)
        for value, description in spec.fields[field_name][2]:
            constant = f"{prefix}_{enum_constant_suffix(description, value)}"
            if constant in seen:
                constant = f"{constant}_{enum_constant_suffix(value, value)}"
            if constant in seen:
                raise ValueError(f"duplicate constant {constant}")
            seen.add(constant)
            emit(f"{constant} = {value.encode()!r}")
    emit("")
    emit("# tag -> (name, type, enum values separated by spaces; empty when free-form).")
    emit("FIELDS = {")
    for name in used:
        number, field_type, values = spec.fields[name]
        enum_text = " ".join(value for value, _ in values)
        if any(" " in value for value, _ in values):  # pragma: no cover - FIX 4.4 has none
            raise ValueError(f"enum value with a space in {name}")
        emit(f"    {number}: ({name!r}, {field_type!r}, {enum_text!r}),")
    emit("}")
    emit("")
    numbers = sorted(number for number, _, _ in spec.fields.values())
    ranges: list[list[int]] = []
    for number in numbers:
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    emit("# Every tag number FIX 4.4 defines, as inclusive ranges.")
    emit("DEFINED_TAG_RANGES = (" + ", ".join(f"({low}, {high})" for low, high in ranges) + ")")
    emit("")
    emit("# Length field -> the data field it prefixes (for every FIX 4.4 data field).")
    pairs = []
    for name, (number, field_type, _) in sorted(spec.fields.items(), key=lambda item: item[1][0]):
        if field_type == "DATA":
            for suffix in ("Len", "Length"):
                if f"{name}{suffix}" in spec.fields:
                    pairs.append((spec.fields[f"{name}{suffix}"][0], number))
    emit("DATA_LENGTH_TAGS = {" + ", ".join(f"{length}: {data_tag}" for length, data_tag in pairs) + "}")
    emit("")
    emit("HEADER = (")
    out.extend(render_items(header, 4))
    emit(")")
    emit("")
    emit("TRAILER = (")
    out.extend(render_items(trailer, 4))
    emit(")")
    emit("")
    emit("COMPONENTS = {")
    for name in sorted(spec.used_components):
        emit(f"    {name!r}: (")
        out.extend(render_items(spec.used_components[name], 8))
        emit("    ),")
    emit("}")
    emit("")
    emit("MESSAGES = {")
    for msg_type, name, category, items in messages:
        emit(f"    {msg_type.encode()!r}: ({name!r}, {category!r}, (")
        out.extend(render_items(items, 8))
        emit("    )),")
    emit("}")
    emit("# fmt: on")
    return "\n".join(out) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spec", required=True, type=Path, help="path to QuickFIX's FIX44.xml")
    parser.add_argument("--output", type=Path, default=None, help="output file (default: stdout)")


def run(args: argparse.Namespace) -> int:
    text = generate(args.spec)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
