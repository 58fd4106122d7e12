"""Fuzzing the FIX gateway: random bytes and mutated valid messages over a socket to a live
gateway (poll and uvloop modes), and random order-entry fields in memory.

Whatever arrives, the gateway answers, rejects or disconnects that one connection;
it never crashes, and a second, healthy session keeps trading throughout.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway_harness import GatewayHarness, cancel_body, fields, load_config, order_body, replace_body  # noqa: E402
from gateway_net import SocketClient, running_gateway  # noqa: E402

from numbex.protocol.fix import FixEncoder, frame  # noqa: E402
from numbex.protocol.fix.timestamps import UtcTimestampFormatter  # noqa: E402

FORMATTER = UtcTimestampFormatter()
VALID_BODIES = [
    (b"D", order_body("F1", qty="10", price="99.00")),
    (b"D", order_body("F2", side="2", qty="10", ord_type="4", price="101.00", stop="100.50", tif="1")),
    (b"F", cancel_body("F3", "F1")),
    (b"G", replace_body("F4", "F1", "20", "99.50")),
    (b"H", b"11=F1\x0155=TEST\x0154=1\x01"),
    (b"q", b"11=F5\x01530=7\x0160=20240301-12:00:00.000\x01"),
    (b"0", b""),
    (b"1", b"112=PING\x01"),
]


@pytest.fixture(scope="module", params=["poll", "uvloop"])
def live(request, tmp_path_factory):
    config = load_config()
    with running_gateway(config, tmp_path_factory.mktemp(f"fuzz-{request.param}"), mode=request.param) as gateway:
        healthy = SocketClient(gateway.port, "CLIENT2")
        healthy.logon()
        try:
            yield gateway, healthy
            assert healthy.rejects() == []
            assert gateway.core.counters["internal_errors"] == 0
        finally:
            healthy.close()


def healthy_still_trades(healthy: SocketClient, tag: str) -> None:
    healthy.send(b"D", order_body(tag, side="1", qty="1", price="90.00", tif="3"))
    replies = healthy.expect(2, timeout=10)
    assert [fields(m, 11, 150) for m in replies] == [(tag, "0"), (tag, "4")]


def wait_released(gateway, connections_before: int, seconds: float = 10.0) -> None:
    """Until the fuzz connection has been accepted and is gone again."""
    core = gateway.core
    deadline = time.monotonic() + seconds
    while core.counters["connections"] <= connections_before or core.connections - {healthy_connection(gateway)}:
        assert time.monotonic() < deadline, "a fuzz connection was never released"
        time.sleep(0.005)


def healthy_connection(gateway):
    return gateway.core.entry.contexts["CLIENT2"].connection


def exchange_bytes(port: int, chunks: list[bytes], read_seconds: float = 0.05) -> None:
    """Connect, write ``chunks``, read what comes back for a moment, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.settimeout(read_seconds)
            deadline = time.monotonic() + read_seconds
            while time.monotonic() < deadline:
                if not sock.recv(1 << 16):
                    break
        except OSError:
            pass                                   # the gateway may close on us: allowed


def logon_bytes(encoder: FixEncoder) -> bytes:
    return encoder.encode(b"A", 1, FORMATTER.format(time.time_ns()), b"98=0\x01108=30\x01141=Y\x01")


@st.composite
def mutated_messages(draw, seq_num: int) -> bytes:
    msg_type, body = draw(st.sampled_from(VALID_BODIES))
    payload = b"35=%s\x0134=%d\x0149=CLIENT1\x0152=%s\x0156=NUMBEX\x01%s" % (
        msg_type, seq_num, FORMATTER.format(time.time_ns()), body)
    data = bytearray(payload)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):      # some stay valid: order entry
        action = draw(st.sampled_from(["flip", "delete", "insert", "value", "duplicate"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif action == "delete":
            del data[position:position + draw(st.integers(1, 12))]
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=12))
        elif action == "value":
            fields_list = bytes(data).split(b"\x01")
            index = draw(st.integers(0, max(0, len(fields_list) - 2)))
            tag = fields_list[index].split(b"=", 1)[0]
            fields_list[index] = tag + b"=" + draw(st.sampled_from(
                [b"", b"-1", b"0", b"1e9", b"99999999999999999999", b"A" * 300, b"\xff\xfe", b"1.5", b"=", b"Y"]))
            data = bytearray(b"\x01".join(fields_list))
        else:
            fields_list = bytes(data).split(b"\x01")
            index = draw(st.integers(0, max(0, len(fields_list) - 2)))
            fields_list.insert(index, fields_list[index])
            data = bytearray(b"\x01".join(fields_list))
    reframe = draw(st.sampled_from([True, True, True, False]))       # mostly valid framing
    return frame(bytes(data)) if reframe else b"8=FIX.4.4\x019=%d\x01%s10=000\x01" % (len(data), bytes(data))


@pytest.mark.timeout(600)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(garbage=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=4), logged_on=st.booleans())
def test_random_bytes(live, garbage, logged_on):
    gateway, healthy = live
    chunks = ([logon_bytes(FixEncoder("CLIENT1", "NUMBEX"))] if logged_on else []) + garbage
    before = gateway.core.counters["connections"]
    exchange_bytes(gateway.port, chunks)
    wait_released(gateway, before)
    healthy_still_trades(healthy, f"R{time.monotonic_ns()}")


@pytest.mark.timeout(600)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data(), count=st.integers(1, 6))
def test_mutated_valid_messages(live, data, count):
    gateway, healthy = live
    messages = [data.draw(mutated_messages(seq_num)) for seq_num in range(2, 2 + count)]
    before = gateway.core.counters["connections"]
    exchange_bytes(gateway.port, [logon_bytes(FixEncoder("CLIENT1", "NUMBEX"))] + messages)
    wait_released(gateway, before)
    healthy_still_trades(healthy, f"M{time.monotonic_ns()}")


# ------------------------------------------------------------------ order entry in memory

PRICES = st.sampled_from(["100.00", "99.99", "100.001", "0", "-1", "100", "150.00", "99999999999999", "0.05"])
QUANTITIES = st.sampled_from(["1", "100", "0", "-5", "1.5", "100000000", "1000000", "3"])
CL_ORD_IDS = st.sampled_from(["A", "B", "C", "D", "\u00c9"])


@st.composite
def order_entry_messages(draw) -> tuple[bytes, bytes]:
    kind = draw(st.sampled_from(["D", "F", "G", "H", "q"]))
    side = draw(st.sampled_from(["1", "2", "5"]))
    symbol = draw(st.sampled_from(["TEST", "LOTS", "NOPE", "\u00e9t\u00e9"]))
    if kind == "D":
        return b"D", order_body(draw(CL_ORD_IDS), side=side, qty=draw(QUANTITIES),
                                ord_type=draw(st.sampled_from(["1", "2", "3", "4", "P"])),
                                price=draw(st.one_of(st.none(), PRICES)), symbol=symbol,
                                tif=draw(st.sampled_from([None, "0", "1", "3", "4", "6"])),
                                stop=draw(st.one_of(st.none(), PRICES)),
                                exec_inst=draw(st.sampled_from([None, "6", "G", "6 G"])))
    if kind == "F":
        return b"F", cancel_body(draw(CL_ORD_IDS), draw(CL_ORD_IDS), side=side, symbol=symbol,
                                 order_id=draw(st.sampled_from([None, "1", "2", "999", "18446744073709551615"])))
    if kind == "G":
        return b"G", replace_body(draw(CL_ORD_IDS), draw(CL_ORD_IDS), draw(QUANTITIES),
                                  draw(st.one_of(st.none(), PRICES)), side=side, symbol=symbol,
                                  ord_type=draw(st.sampled_from(["1", "2", "3", "4"])))
    if kind == "H":
        return b"H", b"11=%s\x0155=%s\x0154=%s\x01" % (draw(CL_ORD_IDS).encode(), symbol.encode(), side.encode())
    request_type = draw(st.sampled_from(["1", "3", "7"]))
    return b"q", b"11=M\x01530=%s\x0155=%s\x0160=20240301-12:00:00.000\x01" % (request_type.encode(), symbol.encode())


@settings(max_examples=150, deadline=None)
@given(script=st.lists(st.tuples(st.sampled_from(["CLIENT1", "CLIENT2"]), order_entry_messages()), min_size=1,
                       max_size=25))
def test_order_entry_answers_every_request(script):
    harness = GatewayHarness()
    clients = {"CLIENT1": harness.client("CLIENT1"), "CLIENT2": harness.client("CLIENT2")}
    for comp_id, (msg_type, body) in script:
        clients[comp_id].send(msg_type, body)
        harness.pump()
        replies = clients[comp_id].take()
        assert replies, (msg_type, body)                 # every request gets an answer
        for reply in replies:
            assert reply.msg_type in (b"8", b"9", b"r")
            if reply.msg_type == b"8":
                assert reply.get(39) in (b"0", b"1", b"2", b"4", b"8", b"C")
                assert reply.get(150) in (b"0", b"4", b"5", b"8", b"C", b"F", b"I")
    for client in clients.values():
        assert client.rejects() == []
    assert harness.core.counters["internal_errors"] == 0
    assert harness.core.entry.pending_requests == 0
    engine_live = sum(1 for order in harness.core.entry.live.values() if order.live)
    assert engine_live == len(harness.core.entry.live)
