"""RingLink holds the events it polled until the gateway commits them: a gateway run that dies
before committing leaves them in the ring for the next run."""

from __future__ import annotations

import os

import numpy as np
import pytest

from numbex.engine.channels import outbound_ring, remove_all
from numbex.engine.records import EVENT
from numbex.server.ring_link import RingLink

SLOTS = 16


@pytest.fixture
def instance():
    name = f"nbxlink{os.getpid()}"
    remove_all(name)
    yield name
    remove_all(name)


def events(first: int, count: int) -> np.ndarray:
    batch = np.zeros(count, dtype=EVENT)
    batch["seq"] = np.arange(first, first + count)
    batch["exec_id"] = batch["seq"] << 8
    return batch


def test_polled_events_stay_until_committed_and_a_new_run_reads_them_again(instance):
    engine_side = outbound_ring(instance, 0, SLOTS)
    first = RingLink(instance, 0, SLOTS)
    out = np.zeros(4, dtype=EVENT)
    try:
        assert engine_side.offer(events(1, 6)) == 6
        assert first.poll(out) == 4 and first.poll(out) == 2 and first.poll(out) == 0
        assert first.held == 6 and engine_side.size() == 6       # read, not released
        assert not first.prepare_park()                          # never sleeps on held events
        first.commit()
        assert first.held == 0 and engine_side.size() == 0
        assert engine_side.offer(events(7, 3)) == 3
        assert first.poll(out) == 3                              # the run dies here, uncommitted
    finally:
        first.close()
    second = RingLink(instance, 0, SLOTS)
    try:
        assert second.poll(out) == 3
        assert out["seq"][:3].tolist() == [7, 8, 9]
        second.commit()
        assert engine_side.size() == 0
    finally:
        second.close()
        engine_side.close()


def test_held_events_fill_the_ring_until_committed(instance):
    engine_side = outbound_ring(instance, 0, SLOTS)
    link = RingLink(instance, 0, SLOTS)
    out = np.zeros(SLOTS, dtype=EVENT)
    try:
        assert engine_side.offer(events(1, SLOTS)) == SLOTS
        assert link.poll(out) == SLOTS
        assert engine_side.offer(events(SLOTS + 1, 1)) == 0      # full: the engine keeps a backlog
        link.commit()
        assert engine_side.offer(events(SLOTS + 1, 1)) == 1
        assert link.poll(out) == 1 and out["seq"][0] == SLOTS + 1
    finally:
        link.close()
        engine_side.close()
