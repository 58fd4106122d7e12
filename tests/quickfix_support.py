"""QuickFIX data dictionary and application helpers for interop tests.

QuickFIX needs a FIX44.xml to validate.  ``NUMBEX_FIX44_XML`` may point at
QuickFIX's own file (from its sdist); otherwise one is written from
``numbex.protocol.fix.dictionary`` (which was generated from that file) with
the messages numbex uses.  Either way the checks are QuickFIX's C++ ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import quoteattr

from numbex.protocol.fix import dictionary


def _items_xml(items: tuple, indent: str) -> list[str]:
    lines = []
    for item in items:
        required = "Y" if item[1] else "N"
        if isinstance(item[0], str):
            lines.append(f"{indent}<component name={quoteattr(item[0])} required='{required}'/>")
        elif len(item) == 2:
            lines.append(f"{indent}<field name={quoteattr(dictionary.FIELDS[item[0]][0])} required='{required}'/>")
        else:
            lines.append(f"{indent}<group name={quoteattr(dictionary.FIELDS[item[0]][0])} required='{required}'>")
            lines.extend(_items_xml(item[2], indent + " "))
            lines.append(f"{indent}</group>")
    return lines


def quickfix_xml() -> str:
    """A QuickFIX-format FIX 4.4 data dictionary of numbex's messages."""
    lines = ["<fix type='FIX' major='4' minor='4' servicepack='0'>", " <header>"]
    lines += _items_xml(dictionary.HEADER, "  ")
    lines += [" </header>", " <messages>"]
    for msg_type, (name, category, items) in dictionary.MESSAGES.items():
        lines.append(f"  <message name='{name}' msgtype={quoteattr(msg_type.decode())} msgcat='{category}'>")
        lines += _items_xml(items, "   ")
        lines.append("  </message>")
    lines += [" </messages>", " <trailer>"]
    lines += _items_xml(dictionary.TRAILER, "  ")
    lines += [" </trailer>", " <components>"]
    for name, items in dictionary.COMPONENTS.items():
        lines.append(f"  <component name={quoteattr(name)}>")
        lines += _items_xml(items, "   ")
        lines.append("  </component>")
    lines += [" </components>", " <fields>"]
    for tag, (name, field_type, enum_text) in sorted(dictionary.FIELDS.items()):
        if not enum_text:
            lines.append(f"  <field number='{tag}' name={quoteattr(name)} type='{field_type}'/>")
            continue
        lines.append(f"  <field number='{tag}' name={quoteattr(name)} type='{field_type}'>")
        lines += [f"   <value enum={quoteattr(value)} description='V{index}'/>"
                  for index, value in enumerate(enum_text.split())]
        lines.append("  </field>")
    lines += [" </fields>", "</fix>"]
    return "\n".join(lines) + "\n"


def installed_fix44_xml() -> Path | None:
    """QuickFIX's own FIX44.xml: ``$NUMBEX_FIX44_XML``, else the one its wheel installs."""
    import sys

    configured = os.environ.get("NUMBEX_FIX44_XML")
    if configured:
        return Path(configured)
    shipped = Path(sys.prefix) / "share" / "quickfix" / "FIX44.xml"
    return shipped if shipped.exists() else None


def fix44_xml(directory: Path) -> Path:
    """Path of a FIX44.xml for QuickFIX: QuickFIX's own (see :func:`installed_fix44_xml`),
    or, without it, one written into ``directory`` from numbex's dictionary."""
    installed = installed_fix44_xml()
    if installed is not None:
        return installed
    path = Path(directory) / "FIX44.xml"
    path.write_text(quickfix_xml())
    return path


class AdminLog:
    """Mixin for a QuickFIX ``Application`` (list it first): records the MsgType of every
    admin message QuickFIX sends (``admin_out``) and receives (``admin_in``)."""

    def __init__(self) -> None:
        super().__init__()
        self.admin_in: list[str] = []
        self.admin_out: list[str] = []

    def onLogout(self, session_id):
        pass

    def toAdmin(self, message, session_id):
        self.admin_out.append(message.getHeader().getField(35))

    def fromAdmin(self, message, session_id):
        self.admin_in.append(message.getHeader().getField(35))

    def toApp(self, message, session_id):
        pass
