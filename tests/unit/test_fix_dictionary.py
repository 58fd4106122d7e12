"""The generated FIX 4.4 dictionary: internal consistency and reproducible generation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from numbex.protocol.fix import dictionary
from numbex.tools import gen_fix_dictionary

DICTIONARY_FILE = Path(dictionary.__file__)


def referenced_tags(items) -> set[int]:
    tags = set()
    for item in items:
        if isinstance(item[0], str):
            assert item[0] in dictionary.COMPONENTS, item
        else:
            tags.add(item[0])
            if len(item) == 3:
                tags |= referenced_tags(item[2])
    return tags


def test_every_referenced_tag_and_component_is_defined():
    tags = referenced_tags(dictionary.HEADER) | referenced_tags(dictionary.TRAILER)
    for items in dictionary.COMPONENTS.values():
        tags |= referenced_tags(items)
    for _, _, items in dictionary.MESSAGES.values():
        tags |= referenced_tags(items)
    assert tags <= set(dictionary.FIELDS)


def test_tag_constants_match_field_table():
    for tag, (name, _, _) in dictionary.FIELDS.items():
        assert getattr(dictionary, "TAG_" + gen_fix_dictionary.constant_name(name)) == tag
    assert (dictionary.TAG_CL_ORD_ID, dictionary.TAG_MSG_SEQ_NUM, dictionary.TAG_NO_PARTY_IDS) == (11, 34, 453)


def test_enum_constants_are_wire_values():
    assert dictionary.MSG_TYPE_NEW_ORDER_SINGLE == b"D"
    assert dictionary.MSG_TYPE_ORDER_MASS_CANCEL_REQUEST == b"q"
    assert (dictionary.SIDE_BUY, dictionary.SIDE_SELL) == (b"1", b"2")
    assert dictionary.EXEC_TYPE_TRADE == b"F"
    assert dictionary.SESSION_REJECT_REASON_COMP_ID_PROBLEM == b"9"
    assert dictionary.BUSINESS_REJECT_REASON_UNSUPPORTED_MESSAGE_TYPE == b"3"


def test_data_fields_pair_with_length_fields():
    for length_tag, data_tag in dictionary.DATA_LENGTH_TAGS.items():
        assert dictionary.FIELDS[length_tag][1] == "LENGTH"
        assert dictionary.FIELDS[data_tag][1] == "DATA"


def test_group_delimiters_are_fields():
    def check(items):
        for item in items:
            if len(item) == 3:
                assert dictionary.FIELDS[item[0]][1] == "NUMINGROUP"
                assert isinstance(item[2][0][0], (int, str))
                check(item[2])
    for _, _, items in dictionary.MESSAGES.values():
        check(items)


MINIMAL_SPEC = textwrap.dedent("""\
    <fix type='FIX' major='4' minor='4' servicepack='0'>
     <header><field name='BeginString' required='Y'/><field name='MsgType' required='Y'/></header>
     <trailer><field name='CheckSum' required='Y'/></trailer>
     <messages>
    {messages}
     </messages>
     <components>
      <component name='Parties'><group name='NoPartyIDs' required='N'><field name='PartyID' required='N'/></group></component>
     </components>
     <fields>
      <field number='8' name='BeginString' type='STRING'/>
      <field number='9' name='BodyLength' type='LENGTH'/>
      <field number='10' name='CheckSum' type='STRING'/>
      <field number='35' name='MsgType' type='STRING'><value enum='D' description='NEW_ORDER_SINGLE'/></field>
      <field number='448' name='PartyID' type='STRING'/>
      <field number='453' name='NoPartyIDs' type='NUMINGROUP'/>
      <field number='54' name='Side' type='CHAR'><value enum='1' description='BUY'/></field>
      <field number='95' name='RawDataLength' type='LENGTH'/>
      <field number='96' name='RawData' type='DATA'/>
     </fields>
    </fix>
""")


def test_generator_on_a_minimal_spec(tmp_path, monkeypatch):
    messages = "\n".join(
        f"  <message name='M{msg_type}' msgtype='{msg_type}' msgcat='app'>"
        "<field name='Side' required='Y'/><component name='Parties' required='N'/>"
        "<field name='RawData' required='N'/></message>"
        for msg_type in gen_fix_dictionary.MESSAGE_TYPES)
    spec = tmp_path / "FIX44.xml"
    spec.write_text(MINIMAL_SPEC.format(messages=messages))
    monkeypatch.setattr(gen_fix_dictionary, "CONSTANT_FIELDS", ("MsgType", "Side"))
    text = gen_fix_dictionary.generate(spec)
    assert text == gen_fix_dictionary.generate(spec)          # deterministic
    namespace: dict = {}
    exec(compile(text, "generated", "exec"), namespace)        # noqa: S102 - our own generated module
    assert namespace["TAG_NO_PARTY_IDS"] == 453 and namespace["SIDE_BUY"] == b"1"
    assert namespace["COMPONENTS"]["Parties"] == ((453, False, ((448, False),)),)
    assert namespace["MESSAGES"][b"D"] == ("MD", "app", ((54, True), ("Parties", False), (96, False)))
    assert namespace["DATA_LENGTH_TAGS"] == {95: 96}
    assert 95 in namespace["FIELDS"]                           # length field of a used data field


def test_committed_dictionary_is_what_the_generator_makes():
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from quickfix_support import installed_fix44_xml

    spec = installed_fix44_xml()
    if spec is None:
        pytest.skip("QuickFIX's FIX44.xml is not installed (make test installs the quickfix wheel)")
    assert gen_fix_dictionary.generate(spec) == DICTIONARY_FILE.read_text()
