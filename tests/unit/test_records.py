"""Every cross-process record's size and field offsets are pinned: a change is a wire change."""

import numpy as np
import pytest

from numbex.engine import records as r


def offsets(dtype: np.dtype) -> dict[str, int]:
    return {name: dtype.fields[name][1] for name in dtype.names}


def test_command_layout():
    assert r.COMMAND.itemsize == 96
    assert offsets(r.COMMAND) == {
        "seq": 0, "ts_ns": 8, "order_id": 16, "client_ref": 24, "price": 32, "qty": 40,
        "stop_price": 48, "aux": 56, "account": 64, "session": 68, "symbol": 72, "op": 74,
        "side": 75, "ord_type": 76, "tif": 77, "flags": 78, "pad": 79, "origin": 80,
        "reserved": 88,
    }


def test_event_layout():
    assert r.EVENT.itemsize == 128
    assert offsets(r.EVENT) == {
        "seq": 0, "ts_ns": 8, "exec_id": 16, "order_id": 24, "other_id": 32, "client_ref": 40,
        "price": 48, "qty": 56, "leaves": 64, "cum": 72, "other_leaves": 80, "other_cum": 88,
        "aux": 96, "account": 104, "other_account": 108, "session": 112, "symbol": 116,
        "kind": 118, "side": 119, "reason": 120, "ord_type": 121, "tif": 122, "flags": 123,
        "other_session": 124,
    }


def test_wal_layouts():
    assert r.WAL_HEADER.itemsize == 24
    assert offsets(r.WAL_HEADER) == {"length": 0, "type": 4, "seq": 8, "ts_ns": 16}
    assert r.WAL_TRAILER.itemsize == 8
    assert r.WAL_COMMAND_RECORD.itemsize == 128


def test_bench_order_layout():
    assert r.BENCH_ORDER.itemsize == 40
    assert offsets(r.BENCH_ORDER) == {
        "order_id": 0, "price": 8, "qty": 16, "client": 24, "symbol": 28, "op": 32, "side": 33,
        "tif": 34,
    }


def test_dtypes_are_aligned_and_little_endian():
    for dtype in (r.COMMAND, r.EVENT, r.WAL_HEADER, r.WAL_TRAILER, r.WAL_COMMAND_RECORD):
        assert dtype.isalignedstruct
        assert dtype.itemsize % 8 == 0
        for name in dtype.names:
            base = dtype.fields[name][0]
            assert base.byteorder in ("<", "|", "="), name


def test_enum_mirrors_match_constants():
    assert r.Op.NEW == r.OP_NEW and r.Side.SELL == r.SIDE_SELL and r.Tif.DAY == r.TIF_DAY
    assert r.Reason.BOOK_FULL == r.REASON_BOOK_FULL
    assert r.Cause.POST_ONLY == r.CAUSE_POST_ONLY
    assert r.reason_text(r.EV_CANCELLED, r.CAUSE_STP) == "STP"
    assert r.reason_text(r.EV_REJECTED, r.REASON_OUTSIDE_BAND) == "OUTSIDE_BAND"
    assert r.reason_text(r.EV_REJECTED, 250) == "250"


@pytest.mark.parametrize("names", [("REASON_", "Reason"), ("CAUSE_", "Cause")])
def test_codes_are_unique(names):
    prefix, _ = names
    values = [v for k, v in vars(r).items() if k.startswith(prefix)]
    assert len(values) == len(set(values))
