"""Durable FIX session store: reopen, torn tails, locking, resend after restart."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fix_helpers import CLIENT, PASSWORD, T0, ConnectionPair, execution_report_body  # noqa: E402
from numbex.protocol.fix import ApplicationMessage, FixSession, MemoryStore, SessionDirectory, SessionSettings  # noqa: E402
from numbex.server.fix_store import PREALLOCATE_BYTES, FileStore, StoreError, store_path  # noqa: E402


@pytest.mark.parametrize("policy", ["always", "batch", "none"])
def test_reopen_restores_sequence_numbers_and_messages(tmp_path, policy):
    with FileStore.open(tmp_path, CLIENT, sync=policy) as store:
        store.set_next_target_seq_num(2)
        store.set_next_sender_seq_num(2)
        store.store_sent(2, b"8", b"20240301-12:00:00.000", b"37=1\x01")
        store.set_next_sender_seq_num(4)
        store.store_sent(4, b"9", b"20240301-12:00:01.000", b"37=2\x01\x01binary\xff")
        store.set_next_target_seq_num(7)
        store.sync()
    with FileStore.open(tmp_path, CLIENT) as store:
        assert (store.next_sender_seq_num, store.next_target_seq_num) == (5, 7)
        messages = list(store.sent_messages(1, 100))
        assert [(m.seq_num, m.msg_type, m.sending_time, m.body) for m in messages] == [
            (2, b"8", b"20240301-12:00:00.000", b"37=1\x01"),
            (4, b"9", b"20240301-12:00:01.000", b"37=2\x01\x01binary\xff")]
        assert [m.seq_num for m in store.sent_messages(3, 4)] == [4]
        assert list(store.sent_messages(5, 9)) == []


def test_torn_tail_is_cut_at_last_whole_record(tmp_path):
    with FileStore.open(tmp_path, CLIENT) as store:
        store.store_sent(1, b"8", b"T", b"a=1\x01")
        store.store_sent(2, b"8", b"T", b"a=2\x01")
    path = store_path(tmp_path, CLIENT)
    whole = path.stat().st_size
    with open(path, "ab") as handle:
        handle.write(b"\x07\x00\x00")                       # a crash mid-header
    with FileStore.open(tmp_path, CLIENT) as store:
        assert store.next_sender_seq_num == 3
        assert path.stat().st_size == whole
        store.store_sent(3, b"8", b"T", b"a=3\x01")
    with FileStore.open(tmp_path, CLIENT) as store:
        assert [m.seq_num for m in store.sent_messages(1, 10)] == [1, 2, 3]


def test_corrupt_record_truncates_from_it(tmp_path):
    with FileStore.open(tmp_path, CLIENT) as store:
        store.store_sent(1, b"8", b"T", b"a=1\x01")
        store.store_sent(2, b"8", b"T", b"a=2\x01")
    path = store_path(tmp_path, CLIENT)
    data = bytearray(path.read_bytes())
    data[-2] ^= 0xFF                                        # flip a byte of the last body
    path.write_bytes(bytes(data))
    with FileStore.open(tmp_path, CLIENT) as store:
        assert [m.seq_num for m in store.sent_messages(1, 10)] == [1]
        assert store.next_sender_seq_num == 2


def test_reset_truncates(tmp_path):
    with FileStore.open(tmp_path, CLIENT) as store:
        store.store_sent(1, b"8", b"T", b"a=1\x01")
        store.set_next_target_seq_num(9)
        store.reset()
        assert (store.next_sender_seq_num, store.next_target_seq_num) == (1, 1)
        store.store_sent(1, b"8", b"T", b"b=1\x01")
    with FileStore.open(tmp_path, CLIENT) as store:
        assert [m.body for m in store.sent_messages(1, 10)] == [b"b=1\x01"]
        assert store.next_target_seq_num == 1


def test_second_open_of_same_session_is_refused(tmp_path):
    with FileStore.open(tmp_path, CLIENT):
        with pytest.raises(StoreError):
            FileStore.open(tmp_path, CLIENT)
    FileStore.open(tmp_path, CLIENT).close()


def test_unsafe_comp_id_gets_a_safe_file_name(tmp_path):
    path = store_path(tmp_path, "../A B/C")
    assert path.parent == tmp_path and "/" not in path.name[:-10]
    FileStore.open(tmp_path, "../A B/C").close()
    assert path.exists()


def test_batch_policy_writes_nothing_durable_until_sync(tmp_path):
    store = FileStore.open(tmp_path, CLIENT, sync="batch")
    store.store_sent(1, b"8", b"T", b"a=1\x01")
    assert os.path.getsize(store.path) == 0
    store.sync()
    assert os.path.getsize(store.path) > 0
    store.close()


def test_session_resends_after_restart(tmp_path):
    """numbex restarts between sending and the client's ResendRequest."""
    def directory():
        return SessionDirectory({CLIENT: PASSWORD}, lambda comp_id: FileStore.open(tmp_path, comp_id))

    first = directory()
    client_store = MemoryStore()
    pair = ConnectionPair(client_store=client_store)
    pair.directory = first
    pair.acceptor = FixSession(SessionSettings("NUMBEX"), T0, authority=first)
    pair.logon()
    pair.acceptor.send(b"8", execution_report_body("A", "E1"), pair.now)      # lost on the wire
    pair.acceptor.send(b"8", execution_report_body("A", "E2"), pair.now)      # lost on the wire
    pair.acceptor.connection_lost(pair.now)
    pair.initiator.connection_lost(pair.now)
    first.store(CLIENT).close()                                                # numbex stops

    second = directory()
    pair = ConnectionPair(client_store=client_store, now_ns=pair.now)
    pair.directory = second
    pair.acceptor = FixSession(SessionSettings("NUMBEX"), pair.now, authority=second)
    pair.logon()
    replayed = [(event.seq_num, event.message.get(17), event.possible_duplicate)
                for event in pair.initiator_events if isinstance(event, ApplicationMessage)]
    assert replayed == [(2, b"E1", True), (3, b"E2", True)]
    assert pair.acceptor.next_target_seq_num == client_store.next_sender_seq_num
    second.store(CLIENT).close()


def test_compaction_keeps_state_and_messages(tmp_path, monkeypatch):
    import numbex.server.fix_store as fix_store
    monkeypatch.setattr(fix_store, "COMPACT_AFTER_RECORDS", 50)
    with FileStore.open(tmp_path, CLIENT) as store:
        for seq_num in range(1, 200):
            store.set_next_target_seq_num(seq_num + 1)
            if seq_num % 10 == 0:
                store.store_sent(seq_num // 10, b"8", b"T", b"n=%d\x01" % seq_num)
            else:
                store.set_next_sender_seq_num(store.next_sender_seq_num)
    path = store_path(tmp_path, CLIENT)
    before = path.stat().st_size
    with FileStore.open(tmp_path, CLIENT) as store:
        assert path.stat().st_size < before / 4
        assert (store.next_sender_seq_num, store.next_target_seq_num) == (20, 200)
        assert [m.body for m in store.sent_messages(1, 100)] == [b"n=%d\x01" % (10 * n) for n in range(1, 20)]
        store.store_sent(20, b"8", b"T", b"after\x01")
    with FileStore.open(tmp_path, CLIENT) as store:
        assert [m.seq_num for m in store.sent_messages(18, 100)] == [18, 19, 20]


# -- preallocation ------------------------------------------------------------------

def crash_image(store: FileStore, target: Path) -> Path:
    """What a crash right now leaves on disk: the file as it is (reserve included)."""
    target.mkdir()
    copy = store_path(target, CLIENT)
    copy.write_bytes(store.path.read_bytes())
    return copy


def test_file_is_extended_ahead_and_trimmed_at_close(tmp_path):
    store = FileStore.open(tmp_path / "live", CLIENT, sync="batch")
    for seq in range(1, 4):
        store.store_sent(seq, b"8", b"T", b"a=%d\x01" % seq)
    store.sync()
    records = store._size
    assert os.path.getsize(store.path) >= PREALLOCATE_BYTES > records
    image = crash_image(store, tmp_path / "crash")
    store.close()
    assert os.path.getsize(store.path) == records
    # after a crash the zero reserve is not a torn tail: nothing is cut, writing continues
    with FileStore.open(tmp_path / "crash", CLIENT) as reopened:
        assert [m.seq_num for m in reopened.sent_messages(1, 10)] == [1, 2, 3]
        assert os.path.getsize(image) >= PREALLOCATE_BYTES
        reopened.store_sent(4, b"8", b"T", b"a=4\x01")
    with FileStore.open(tmp_path / "crash", CLIENT) as reopened:
        assert [m.body for m in reopened.sent_messages(1, 10)] == [b"a=%d\x01" % n for n in range(1, 5)]
        assert reopened.next_sender_seq_num == 5


def test_torn_record_inside_the_reserve_is_cut(tmp_path):
    store = FileStore.open(tmp_path / "live", CLIENT, sync="batch")
    store.store_sent(1, b"8", b"T", b"a=1\x01")
    store.sync()
    records = store._size
    image = crash_image(store, tmp_path / "crash")
    store.close()
    with open(image, "r+b") as handle:                      # half a record written, then zeros
        handle.seek(records)
        handle.write(b"\x11\x22\x33\x44\x20\x00")
    with FileStore.open(tmp_path / "crash", CLIENT) as reopened:
        assert os.path.getsize(image) == records
        assert reopened.next_sender_seq_num == 2
        reopened.store_sent(2, b"8", b"T", b"a=2\x01")
    with FileStore.open(tmp_path / "crash", CLIENT) as reopened:
        assert [m.seq_num for m in reopened.sent_messages(1, 10)] == [1, 2]


def test_without_fallocate_the_file_just_grows(tmp_path, monkeypatch):
    def unsupported(*_args):
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    with FileStore.open(tmp_path, CLIENT, sync="always") as store:
        store.store_sent(1, b"8", b"T", b"a=1\x01")
        store.store_sent(2, b"8", b"T", b"a=2\x01")
        assert os.path.getsize(store.path) == store._size
    with FileStore.open(tmp_path, CLIENT) as store:
        assert [m.seq_num for m in store.sent_messages(1, 10)] == [1, 2]
