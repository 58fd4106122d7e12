"""FIX codec and session micro-benchmarks: numbex's codec against simplefix.

    python -m numbex.tools.bench_fix_codec [--messages 20000] [--repeat 5]

Measures, per message (best of ``--repeat`` runs over ``--messages``):
decoding a NewOrderSingle (numbex ``FixDecoder`` vs ``simplefix.FixParser``),
validating it, the acceptor session's whole receive path (decode, header
checks, sequence, validation, event), encoding an ExecutionReport (numbex
``FixEncoder`` vs ``simplefix.FixMessage``) and the session's ``send``
(encode plus store, in memory and in a ``FileStore`` synced every 256
messages).  Times are CPU time of the benchmark thread (the file store's
fdatasync waits are not counted).  Benchmarks are kept out of the test run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable

NANOS = 1_000_000_000
SENDING_TIME = b"20240301-12:00:00.000"
ORDER_BODY = (b"11=ORD000123456\x0121=1\x0155=TEST\x0154=1\x0160=20240301-12:00:00.000\x0138=100\x01"
              b"40=2\x0144=101.25\x0159=0\x011=ACCOUNT1\x01")
REPORT_BODY = (b"37=123456\x0111=ORD000123456\x0117=789012\x01150=0\x0139=0\x0155=TEST\x0154=1\x01"
               b"38=100\x0144=101.25\x01151=100\x0114=0\x016=0\x0160=20240301-12:00:00.000\x01")


def best_per_message(function: Callable[[int], None], count: int, repeat: int) -> float:
    """Best CPU nanoseconds per message of ``function(count)`` over ``repeat`` runs.

    CPU time of this thread rather than wall time, so that other processes
    sharing the cores do not inflate the figures.
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.thread_time_ns()
        function(count)
        best = min(best, (time.thread_time_ns() - start) / count)
    return best


def run_benchmarks(count: int, repeat: int) -> list[tuple[str, float]]:
    import simplefix

    from numbex.protocol.fix import FixDecoder, FixEncoder, FixSession, MemoryStore, MessageValidator
    from numbex.protocol.fix import SessionDirectory, SessionSettings

    encoder = FixEncoder("CLIENT1", "NUMBEX")
    orders = [encoder.encode(b"D", seq, SENDING_TIME, ORDER_BODY) for seq in range(2, count + 2)]
    stream = b"".join(orders)

    def numbex_decode(n: int) -> None:
        decoder = FixDecoder()
        decoder.receive_data(stream)
        next_message = decoder.next_message
        for _ in range(n):
            next_message()

    def simplefix_decode(n: int) -> None:
        # One message per append: simplefix re-slices its whole buffer per field,
        # so a long buffer would make it quadratic; this is its best case.
        parser = simplefix.FixParser()
        for index in range(n):
            parser.append_buffer(orders[index])
            parser.get_message()

    decoder = FixDecoder()
    decoder.receive_data(orders[0])
    message = decoder.next_message()
    validator = MessageValidator()

    def validate(n: int) -> None:
        check = validator.validate
        for _ in range(n):
            check(message)

    now = 1_709_294_400 * NANOS  # 2024-03-01 12:00:00 UTC, matching SENDING_TIME

    def logged_on_acceptor(store=None) -> FixSession:
        directory = SessionDirectory({"CLIENT1": ""}, lambda comp_id: store or MemoryStore())
        session = FixSession(SessionSettings("NUMBEX"), now, authority=directory, validator=validator)
        session.receive_data(encoder.encode(b"A", 1, SENDING_TIME, b"98=0\x01108=30\x01"), now)
        while session.next_event() is not None:
            pass
        session.data_to_send()
        return session

    def session_receive(n: int) -> None:
        session = logged_on_acceptor()
        session.receive_data(stream, now)
        next_event = session.next_event
        for _ in range(n):
            next_event()

    reporter = FixEncoder("NUMBEX", "CLIENT1")

    def numbex_encode(n: int) -> None:
        encode = reporter.encode
        for seq in range(n):
            encode(b"8", seq, SENDING_TIME, REPORT_BODY)

    report_fields = [(int(tag), value) for tag, value in
                     (field.split(b"=", 1) for field in REPORT_BODY.rstrip(b"\x01").split(b"\x01"))]

    def simplefix_encode(n: int) -> None:
        for seq in range(n):
            out = simplefix.FixMessage()
            out.append_pair(8, b"FIX.4.4")
            out.append_pair(35, b"8")
            out.append_pair(34, seq)
            out.append_pair(49, b"NUMBEX")
            out.append_pair(52, SENDING_TIME)
            out.append_pair(56, b"CLIENT1")
            for tag, value in report_fields:
                out.append_pair(tag, value)
            out.encode()

    def session_send(n: int) -> None:
        session = logged_on_acceptor()
        send = session.send
        for _ in range(n):
            send(b"8", REPORT_BODY, now)

    def session_send_file_store(n: int) -> None:
        from numbex.server.fix_store import FileStore

        with tempfile.TemporaryDirectory() as directory:
            store = FileStore.open(directory, "CLIENT1", sync="batch")
            session = logged_on_acceptor(store)
            send = session.send
            for index in range(n):
                send(b"8", REPORT_BODY, now)
                if index % 256 == 255:
                    store.sync()        # the gateway syncs once per batch
            store.close()

    return [
        ("decode NewOrderSingle, numbex FixDecoder", best_per_message(numbex_decode, count, repeat)),
        ("decode NewOrderSingle, simplefix FixParser", best_per_message(simplefix_decode, count, repeat)),
        ("validate NewOrderSingle (dictionary)", best_per_message(validate, count, repeat)),
        ("acceptor receive path (decode+checks+validate+event)",
         best_per_message(session_receive, count, repeat)),
        ("encode ExecutionReport, numbex FixEncoder", best_per_message(numbex_encode, count, repeat)),
        ("encode ExecutionReport, simplefix FixMessage", best_per_message(simplefix_encode, count, repeat)),
        ("session send ExecutionReport (encode+MemoryStore)", best_per_message(session_send, count, repeat)),
        ("session send ExecutionReport (encode+FileStore, fdatasync/256)",
         best_per_message(session_send_file_store, count, repeat)),
    ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=20_000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is reported")


def run(args: argparse.Namespace) -> int:
    for name, nanos in run_benchmarks(args.messages, args.repeat):
        print(f"{name:<66} {nanos / 1000:8.2f} us/msg  {NANOS / nanos:>12,.0f} msg/s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
