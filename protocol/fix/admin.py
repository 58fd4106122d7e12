"""Bodies of the FIX 4.4 session (admin) messages numbex sends.

Each function returns the fields after the standard header, SOH-terminated,
ready for ``FixEncoder.encode``.  Free text is made safe for a STRING field:
ASCII only, no SOH, never empty.
"""

from __future__ import annotations

HEARTBEAT = b"0"
TEST_REQUEST = b"1"
RESEND_REQUEST = b"2"
REJECT = b"3"
SEQUENCE_RESET = b"4"
LOGOUT = b"5"
LOGON = b"A"
BUSINESS_MESSAGE_REJECT = b"j"
ADMIN_MSG_TYPES = frozenset((HEARTBEAT, TEST_REQUEST, RESEND_REQUEST, REJECT, SEQUENCE_RESET, LOGOUT, LOGON))

UNSUPPORTED_MESSAGE_TYPE = 3  # BusinessRejectReason(380)


def text_value(text: str) -> bytes:
    """``text`` as a STRING value: non-ASCII and SOH replaced by ``?``, at most 200 bytes."""
    data = text.encode("ascii", "replace").replace(b"\x01", b"?")[:200]
    return data or b"-"


def logon_body(heartbeat_seconds: int, reset: bool, username: str = "", password: str = "") -> bytes:
    body = b"98=0\x01108=%d\x01" % heartbeat_seconds
    if reset:
        body += b"141=Y\x01"
    if username:
        body += b"553=" + text_value(username) + b"\x01"
    if password:
        body += b"554=" + text_value(password) + b"\x01"
    return body


def logout_body(text: str = "") -> bytes:
    return b"58=" + text_value(text) + b"\x01" if text else b""


def heartbeat_body(test_request_id: bytes | None = None) -> bytes:
    return b"112=" + test_request_id + b"\x01" if test_request_id else b""


def test_request_body(test_request_id: bytes) -> bytes:
    return b"112=" + test_request_id + b"\x01"


def resend_request_body(begin: int, end: int) -> bytes:
    return b"7=%d\x0116=%d\x01" % (begin, end)


def gap_fill_body(new_seq_num: int) -> bytes:
    return b"123=Y\x0136=%d\x01" % new_seq_num


def reset_body(new_seq_num: int) -> bytes:
    return b"36=%d\x01" % new_seq_num


def reject_body(ref_seq_num: int, reason: int, text: str, ref_tag: int | None = None,
                ref_msg_type: bytes | None = None) -> bytes:
    """Reject (35=3): RefSeqNum(45), RefTagID(371), RefMsgType(372), SessionRejectReason(373), Text(58)."""
    body = b"45=%d\x01" % ref_seq_num
    if ref_tag is not None:
        body += b"371=%d\x01" % ref_tag
    if ref_msg_type and b"\x01" not in ref_msg_type:
        body += b"372=" + ref_msg_type + b"\x01"
    return body + b"373=%d\x0158=%s\x01" % (reason, text_value(text))


def business_reject_body(ref_seq_num: int, ref_msg_type: bytes, reason: int, text: str) -> bytes:
    """BusinessMessageReject (35=j): RefSeqNum(45), RefMsgType(372), BusinessRejectReason(380), Text(58)."""
    return b"45=%d\x01372=%s\x01380=%d\x0158=%s\x01" % (
        ref_seq_num, ref_msg_type or b"?", reason, text_value(text))
