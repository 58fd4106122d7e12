"""The engine role: rings in, sequencer, WAL, matcher, gated publication, snapshots.

Loop (one thread, :class:`EngineAgent.do_work`):

1. take up to ``engine.batch`` commands from each inbound ring, in a fixed order
   (peek: the slots stay owned until the batch is journaled);
2. sequence: global seq numbers and one timestamp per batch, and ``origin`` = ring
   and position, so recovery resumes each ring exactly after its last journaled
   command;
3. append the batch to the WAL; in ``sync`` durability fdatasync it (group commit);
4. match it; release the ring slots;
5. publish the events (outbound ring per gateway) only for commands whose WAL
   records are durable: at once in ``sync``, after the interval fdatasync in
   ``async``.

A failed WAL write stops acknowledgements: the engine turns ``not-durable``, rejects
every command with REASON_NOT_DURABLE without journaling it, and each second, once the
WAL's file system has room for a whole group, reopens the WAL; it then rebuilds its
state from snapshot and WAL and resumes.  Snapshots are written by a background thread
from a copy of the state (:meth:`EngineAgent.snapshot`); a failed snapshot is logged and
skipped (the WAL still holds everything).

Recovery (start, or after a failure; :func:`numbex.engine.recovery.recover_engine`):
newest valid snapshot, then the WAL tail replayed; events of commands after the status
block's ``published_seq`` are published again (gateways drop what they already had by
exec id).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np

from numbex.engine import records as r
from numbex.engine import ring_kernels as k
from numbex.engine import status as st
from numbex.engine.snapshotter import Snapshotter

log = logging.getLogger("numbex.engine")

ORIGIN_SHIFT = 56
ORIGIN_MASK = (1 << ORIGIN_SHIFT) - 1
NOT_DURABLE_RETRY_NS = 1_000_000_000
BACKLOG_LIMIT_EVENTS = 1 << 24


def reject_unjournaled(commands: np.ndarray, reason: int) -> np.ndarray:
    """Reject events (seq 0: never sequenced) for commands that could not be journaled."""
    events = np.zeros(len(commands), dtype=r.EVENT)
    kind = np.full(len(commands), r.EV_REJECTED, dtype=np.uint8)
    kind[commands["op"] == r.OP_CANCEL] = r.EV_CANCEL_REJECTED
    kind[commands["op"] == r.OP_REPLACE] = r.EV_REPLACE_REJECTED
    events["kind"] = kind
    events["reason"] = reason
    for name in ("order_id", "client_ref", "price", "qty", "account", "session", "symbol",
                 "side", "ord_type", "tif"):
        events[name] = commands[name]
    events["aux"] = commands["stop_price"]
    events["ts_ns"] = commands["ts_ns"]
    return events


class EngineAgent:
    """The engine's loop as an agent (``do_work() -> int``); see the module docstring."""

    role_name = "engine"

    def __init__(self, config, *, allow_corruption: bool = False, clock_ns=time.time_ns) -> None:
        from numbex.engine.channels import GATEWAYS, inbound_ring, outbound_ring, status_block
        from numbex.engine.channels import doorbell
        from numbex.engine.spec import EngineSpec

        self.config = config
        self.spec = EngineSpec.from_config(config)
        self.allow_corruption = allow_corruption
        self.clock_ns = clock_ns
        data = Path(config.exchange.data_dir)
        self.wal_dir = data / "wal"
        self.snapshot_dir = data / "snapshots"
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        instance = config.exchange.instance
        slots = config.gateway.ring_slots
        self.gateways = GATEWAYS
        self.inbound = [inbound_ring(instance, g, slots) for g in GATEWAYS]
        self.outbound = [outbound_ring(instance, g, slots) for g in GATEWAYS]
        self.bells = [doorbell(instance, g) for g in GATEWAYS]
        self.status = status_block(instance)
        self.batch = np.zeros(config.engine.batch * len(GATEWAYS), dtype=r.COMMAND)
        self.backlog: list[list[np.ndarray]] = [[] for _ in GATEWAYS]
        self.pending: list[np.ndarray] = []  # async: events waiting for durability
        self.engine = None
        self.wal = None
        self.next_seq = 1
        self.durable_ok = True
        self.retry_at_ns = 0
        self.records_since_snapshot = 0
        self.last_snapshot_ns = time.monotonic_ns()
        self.snapshot_requested = False
        self.snapshotter = Snapshotter(self.snapshot_dir, self.wal_dir, config.engine.keep_snapshots,
                                       self.status)
        self.journaled_next = [0] * len(GATEWAYS)
        self.routed_seq = 0  # events of commands <= this seq were handed to _route

    # ------------------------------------------------------------------ recovery
    def on_start(self) -> None:
        self.status.set(st.W_STATE, st.STATE_RECOVERING)
        self.status.set(st.W_PID, os.getpid())
        self.status.set(st.W_STARTS, self.status.get(st.W_STARTS) + 1)
        self.status.set(st.W_HEARTBEAT, time.monotonic_ns())
        self._recover(republish=True)
        self.warm_up()
        self.status.set(st.W_STATE, st.STATE_UP)
        log.info("engine up: next seq %d, %d resting orders", self.next_seq,
                 self.engine.resting_count)

    def warm_up(self) -> None:
        """Every kernel of the loop compiled or loaded before the engine says it is up.

        (With a cold Numba cache the first batch would otherwise compile the ring and
        WAL kernels for seconds while gateways wait.)
        """
        from numbex.engine.ring import Ring

        self.engine.warm_up()
        self.wal.warm_up()
        Ring.warm_up(r.COMMAND)
        Ring.warm_up(r.EVENT)
        self.snapshotter.prepare(self.engine.state)  # buffers touched now rather than mid-trading

    def _recover(self, republish: bool) -> None:
        from numbex.engine.recovery import recover_engine

        self.snapshotter.join()  # no snapshot or pruning while the WAL is reopened
        attached = not self.status.created
        published = self.status.get(st.W_PUBLISHED) if attached else 0
        journaled = [self.status.get(st.W_JOURNALED + i) if attached else 0
                     for i in range(len(self.gateways))]
        # Rings an engine took commands from: their gateways may wait for events.  (A block
        # a gateway created, with nothing journaled, knows nothing: no history to resend.)
        rings_known = attached and (published > 0 or any(journaled))
        resend = republish and rings_known

        def on_commands(commands: np.ndarray) -> None:
            origins = commands["origin"]
            for index, gateway in enumerate(self.gateways):
                mine = origins[(origins >> np.uint64(ORIGIN_SHIFT)) == gateway]
                mine = mine[mine != 0]
                if len(mine):
                    journaled[index] = max(journaled[index],
                                           int(mine.max() & np.uint64(ORIGIN_MASK)) + 1)
            if resend:  # the WAL was synced when it was opened: these records are durable
                durable = max(self.status.get(st.W_DURABLE), int(commands["seq"][-1]))
                self.status.set(st.W_DURABLE, durable)

        def on_events(events: np.ndarray) -> None:  # a view: _route keeps copies
            self._route(events[events["seq"] > published])

        if self.wal is not None:
            self.wal.close()
        routed_before = self.routed_seq
        self.routed_seq = published
        try:
            recovered = recover_engine(
                self.spec, self.wal_dir, self.snapshot_dir, self._open_wal,
                replay_after=published if resend else None,
                allow_snapshot_ahead=self.allow_corruption or self.config.engine.durability == "async",
                on_commands=on_commands, on_events=on_events if resend else None)
        except BaseException:
            self.routed_seq = routed_before
            raise
        self.wal = recovered.wal
        self.next_seq = recovered.last_seq + 1
        self.engine = recovered.engine
        self.journaled_next = journaled
        if rings_known:
            for index, ring in enumerate(self.inbound):
                self._skip_journaled(ring, journaled[index])
        self.status.set(st.W_LAST, self.next_seq - 1)
        self.status.set(st.W_DURABLE, self.next_seq - 1)
        self.routed_seq = self.next_seq - 1
        self._flush_backlog()
        self.status.set(st.W_SNAPSHOT, recovered.snapshot_seq)
        self.status.created = False
        self.records_since_snapshot = recovered.replayed
        self.durable_ok = True
        log.info("recovered: snapshot seq %d + %d WAL records in %.3f s", recovered.snapshot_seq,
                 recovered.replayed, recovered.seconds["total"])

    def _open_wal(self, first_seq: int):
        from numbex.engine.wal import WalWriter

        engine = self.config.engine
        return WalWriter(self.wal_dir, engine.wal_segment_bytes, engine.durability,
                         engine.async_sync_interval_ms, allow_corruption=self.allow_corruption,
                         first_seq=first_seq)

    @staticmethod
    def _skip_journaled(ring, journaled_next: int) -> None:
        """Release ring slots already journaled by a previous engine (never past the tail)."""
        head = int(ring.header[k.HEAD_WORD])
        tail = int(ring.header[k.TAIL_WORD])
        if head < journaled_next <= tail:
            k.ring_release(ring.header, journaled_next - head)

    # ------------------------------------------------------------------ the loop
    def do_work(self) -> int:
        now = time.monotonic_ns()
        self.status.set(st.W_HEARTBEAT, now)
        work = self._flush_backlog()
        taken, views = self._gather()
        if taken:
            work += self._handle(taken, views)
        if self.config.engine.durability == "async" and self.durable_ok:
            work += self._publish_durable()
        if not self.durable_ok and now >= self.retry_at_ns:
            self._retry_durability(now)
        if self.snapshot_requested or (
            self.records_since_snapshot >= self.config.engine.snapshot_every_records
            or (self.records_since_snapshot
                and now - self.last_snapshot_ns >= self.config.engine.snapshot_every_seconds * 10**9)
        ):
            self.snapshot()
        return work

    def _gather(self):
        taken = 0
        views = []
        per_ring = self.config.engine.batch
        for index, ring in enumerate(self.inbound):
            view = ring.peek(per_ring)
            count = len(view)
            views.append(count)
            if count:
                head = int(ring.header[k.HEAD_WORD])
                block = self.batch[taken:taken + count]
                block[:] = view
                block["origin"] = (np.uint64(self.gateways[index]) << np.uint64(ORIGIN_SHIFT)) | (
                    np.arange(head, head + count, dtype=np.uint64))
                taken += count
        return taken, views

    def _release(self, views) -> None:
        for ring, count in zip(self.inbound, views):
            if count:
                ring.release(count)

    def _handle(self, taken: int, views) -> int:
        from numbex.engine.wal import WalWriteError

        batch = self.batch[:taken]
        if not self.durable_ok:
            batch["ts_ns"] = self.clock_ns()
            self._route(reject_unjournaled(batch, r.REASON_NOT_DURABLE))
            self._release(views)
            return taken
        batch["seq"] = np.arange(self.next_seq, self.next_seq + taken, dtype=np.uint64)
        batch["ts_ns"] = self.clock_ns()
        batch["reserved"] = 0
        sync = self.config.engine.durability == "sync"
        try:
            self.wal.append(batch)
            if sync:
                self.wal.commit()
        except WalWriteError as error:
            log.error("WAL write failed, acknowledgements stopped: %s", error)
            self._enter_not_durable()
            batch["seq"] = 0
            self._route(reject_unjournaled(batch, r.REASON_NOT_DURABLE))
            self._release(views)
            return taken
        self.next_seq += taken
        events = self.engine.process(batch)
        self._release(views)
        for index, count in enumerate(views):
            if count:
                origins = batch["origin"][(batch["origin"] >> np.uint64(ORIGIN_SHIFT)) == self.gateways[index]]
                self.journaled_next[index] = int(origins[-1] & np.uint64(ORIGIN_MASK)) + 1
                self.status.set(st.W_JOURNALED + index, self.journaled_next[index])
        last = self.next_seq - 1
        self.status.set(st.W_LAST, last)
        self.records_since_snapshot += taken
        if sync:
            self.status.set(st.W_DURABLE, last)
            self.routed_seq = last
            self._route(events)
        else:
            self.pending.append(events)
        return taken

    def _publish_durable(self) -> int:
        from numbex.engine.wal import WalWriteError

        try:
            durable = self.wal.maybe_sync(time.monotonic_ns())
        except WalWriteError as error:
            log.error("WAL sync failed, acknowledgements stopped: %s", error)
            self._enter_not_durable()
            return 0
        self.status.set(st.W_DURABLE, durable)
        published = 0
        while self.pending:
            events = self.pending[0]
            ready = events["seq"] <= durable
            if ready.all():
                self._route(events)
                published += len(events)
                self.pending.pop(0)
            else:
                self._route(events[ready])
                published += int(ready.sum())
                self.pending[0] = events[~ready]
                break
        self.routed_seq = max(self.routed_seq, durable) if not self.pending else int(
            self.pending[0]["seq"].min()) - 1
        self._flush_backlog()
        return published

    def _enter_not_durable(self) -> None:
        self.durable_ok = False
        self.pending.clear()  # never acknowledged; the state is rebuilt from the WAL
        self.retry_at_ns = time.monotonic_ns() + NOT_DURABLE_RETRY_NS
        self.status.set(st.W_STATE, st.STATE_NOT_DURABLE)

    def _retry_durability(self, now_ns: int) -> None:
        from numbex.engine.wal import WalWriteError

        self.retry_at_ns = now_ns + NOT_DURABLE_RETRY_NS
        needed = len(self.batch) * r.WAL_COMMAND_RECORD.itemsize
        try:
            free = shutil.disk_usage(self.wal_dir).free
        except OSError as error:
            log.warning("WAL directory unusable: %s", error)
            return
        if free < needed:  # reopening would succeed, and the next group would fail again
            log.warning("WAL file system still full (%d bytes free, a group needs up to %d)",
                        free, needed)
            return
        try:
            self._recover(republish=False)
        except (OSError, WalWriteError) as error:
            log.warning("WAL still unusable: %s", error)
            self.durable_ok = False
            return
        self.status.set(st.W_STATE, st.STATE_UP)
        log.info("WAL writable again; acknowledgements resumed at seq %d", self.next_seq)

    # ------------------------------------------------------------------ output
    def _route(self, events: np.ndarray) -> None:
        if not len(events):
            return
        gateway_of = events["session"] >> np.uint32(16)
        other_of = events["other_session"] >> np.uint32(16)
        trade = events["kind"] == r.EV_TRADE
        for index, gateway in enumerate(self.gateways):
            mine = events[(gateway_of == gateway) | (trade & (other_of == gateway))]
            if len(mine):
                self.backlog[index].append(mine)
        self._flush_backlog()

    def _flush_backlog(self) -> int:
        sent = 0
        for index, queue in enumerate(self.backlog):
            ring = self.outbound[index]
            wrote_any = False
            while queue:
                chunk = queue[0]
                count = ring.offer(chunk)
                sent += count
                wrote_any = wrote_any or count > 0
                if count == len(chunk):
                    queue.pop(0)
                else:
                    queue[0] = chunk[count:]
                    break
            if wrote_any and ring.consumer_parked():
                self.bells[index].ring()
            if sum(len(c) for c in queue) > BACKLOG_LIMIT_EVENTS:
                dropped = queue.pop(0)
                log.error("gateway %d is not reading: dropped %d events", index, len(dropped))
        # Published = every event of commands up to here is in a ring (a crash before that
        # republishes them from the WAL at recovery).
        published = self.routed_seq
        for queue in self.backlog:
            if queue:
                published = min(published, int(queue[0]["seq"][0]) - 1)
        self.status.set(st.W_PUBLISHED, max(published, 0))
        return sent

    # ------------------------------------------------------------------ snapshots
    def snapshot(self, wait: bool = False) -> None:
        """Snapshot the state at the last sequenced command (:mod:`numbex.engine.snapshotter`).

        The loop only copies the state; a thread writes the file.  While one snapshot is
        being written a new trigger waits (it fires again on the next loop); ``wait``
        waits for the writer instead, and for this snapshot too.
        """
        if self.snapshotter.busy and not wait:
            return
        self.snapshot_requested = False
        seq = self.next_seq - 1
        self.records_since_snapshot = 0
        self.last_snapshot_ns = time.monotonic_ns()
        if seq <= 0 or not self.durable_ok:
            return
        meta = {"instruments": [i.symbol for i in self.config.instruments],
                "max_orders": self.spec.max_orders, "max_stops": self.spec.max_stops}
        self.snapshotter.take(seq, self.engine.state, meta, wait=wait)

    # ------------------------------------------------------------------ shutdown
    def drain(self, max_seconds: float = 5.0) -> None:
        """Process what is queued in the rings (bounded), then make everything durable."""
        deadline = time.monotonic() + max_seconds
        while time.monotonic() < deadline and self.do_work():
            pass
        if self.config.engine.durability == "async" and self.durable_ok:
            from numbex.engine.wal import WalWriteError

            try:
                self.wal.sync()
            except WalWriteError as error:
                log.error("final sync failed: %s", error)
            self._publish_durable()
        self._flush_backlog()

    def on_close(self) -> None:
        self.status.set(st.W_STATE, st.STATE_STOPPING)
        try:
            self.drain()
            if self.durable_ok:
                self.snapshot(wait=True)
            self.snapshotter.join()
        finally:
            if self.wal is not None:
                self.wal.close()
            self.status.set(st.W_STATE, st.STATE_DOWN)
            for ring in self.inbound + self.outbound:
                ring.close()
            for bell in self.bells:
                bell.close()

    def wake_source(self):
        return self.inbound[0]


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: the embedded defaults)")
    parser.add_argument("--allow-wal-corruption", action="store_true",
                        help="operator override: truncate the WAL at the first bad record "
                             "(the cut bytes are kept beside it) instead of refusing to start")
    parser.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    from numbex.agent import AgentRunner, StopFlag, role_idle_strategy, stop_on_signals
    from numbex.engine.wal_segments import WalCorruptionError
    from numbex.machine import place_process
    from numbex.roles import begin_role

    config = begin_role("engine", args.config)
    if config is None:
        return 2

    place_process("engine", config.engine.cpus, config.engine.numa_node)
    stop = StopFlag()
    with stop_on_signals(stop):
        try:
            agent = EngineAgent(config, allow_corruption=args.allow_wal_corruption)
            signal.signal(signal.SIGUSR1, lambda *_: setattr(agent, "snapshot_requested", True))
            agent.on_start()
        except WalCorruptionError as error:
            print(f"numbex engine: refusing to start: {error}\n"
                  "  (inspect with `numbex wal dump`; `--allow-wal-corruption` truncates at the "
                  "first bad record and keeps the cut bytes)", file=sys.stderr)
            return 3
        except OSError as error:
            print(f"numbex engine: cannot start: {error}", file=sys.stderr)
            return 1
        idle = role_idle_strategy(config.engine, wake=agent.wake_source())
        runner = AgentRunner([_Started(agent)], idle, stop)
        runner.run(max_seconds=args.max_seconds)
    return 0


class _Started:
    """The agent after on_start (done before the runner, so start errors exit clearly)."""

    def __init__(self, agent: EngineAgent) -> None:
        self.agent = agent
        self.role_name = agent.role_name

    def on_start(self) -> None:
        pass

    def do_work(self) -> int:
        return self.agent.do_work()

    def on_close(self) -> None:
        self.agent.on_close()
