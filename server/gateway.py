"""The gateway role: ``numbex gateway --config FILE``, and :func:`build_gateway` for supervisors.

:func:`build_gateway` wires one FIX gateway from the config and an engine link
(``RingLink`` to the engine process, or ``LocalLink`` for tests and tools):
the listening socket (``gateway.fix.host``/``port``), the session stores under
``<exchange.data_dir>/fix``, the order-id epoch, the gateway core and the I/O
loop chosen by ``gateway.mode`` (``poll``: :class:`PollGateway` under the
``gateway.idle`` strategy; ``uvloop``: :class:`UvloopGateway`).

Epoch: order ids are ``order_id_base(gateway_index, epoch) + n``; the epoch is
kept in ``<data_dir>/gateway-<index>.epoch`` and incremented (durably) at each
start, so ids never repeat across restarts.

At start the open orders of a previous run are rebuilt from the ExecutionReports in
the session stores (:mod:`numbex.server.fix_restore`).  Every cancel-on-disconnect
session has no connection yet, so orders the engine still holds for it are
cancelled (mass cancel with the session filter) as soon as the engine is up; their
Canceled reports are stored and reach the client after its next Logon.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from numbex.server.engine_link import MAX_EPOCH

LISTEN_BACKLOG = 1024


def next_epoch(data_dir: str | Path, gateway_index: int) -> int:
    """Read, increment and durably store the gateway's epoch; returns the new one (1, 2, ...).

    Raises
    ------
    RuntimeError
        The epoch file is unreadable, or every epoch has been used.
    """
    directory = Path(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"gateway-{gateway_index}.epoch"
    previous = 0
    if path.exists():
        text = path.read_text().strip()
        if not text.isdigit():
            raise RuntimeError(f"{path}: expected an epoch number, found {text[:40]!r}")
        previous = int(text)
    epoch = previous + 1
    if epoch > MAX_EPOCH:
        raise RuntimeError(f"{path}: all {MAX_EPOCH} epochs are used; order ids would repeat")
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as output:
        output.write(f"{epoch}\n")
        output.flush()
        os.fsync(output.fileno())
    os.replace(temporary, path)
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return epoch


def listen(host: str, port: int) -> socket.socket:
    """A non-blocking TCP listening socket (SO_REUSEADDR)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
    except OSError:
        listener.close()
        raise
    return listener


@dataclass
class GatewayRunner:
    """A built gateway: run it, stop it (from any thread or a signal handler), close it."""

    core: object
    loop: object
    listener: socket.socket
    stop_flag: object
    idle: object | None
    mode: str
    epoch: int

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def run(self, max_seconds: float | None = None) -> None:
        """Serve until :meth:`stop` (or ``max_seconds``); connections are closed on the way out."""
        if self.mode == "uvloop":
            self.loop.run(max_seconds)
            return
        from numbex.agent import AgentRunner

        AgentRunner([self.loop], self.idle, stop=self.stop_flag).run(max_seconds=max_seconds)

    def stop(self) -> None:
        self.stop_flag.set()
        if self.mode == "uvloop":
            self.loop.wake()

    def close(self) -> None:
        """Close the listener and the session stores (after :meth:`run` has returned)."""
        self.listener.close()
        self.core.close()


def build_gateway(config, link, *, data_dir: str | Path | None = None, listener: socket.socket | None = None,
                  mode: str | None = None, idle: str | None = None, store_sync: str | None = None,
                  store_factory=None, stop=None, clock=time.time_ns, cancel_stale_orders: bool = True,
                  restore_orders: bool = True, **core_options) -> GatewayRunner:
    """Wire a FIX gateway around ``link``.

    Parameters
    ----------
    config : numbex.config.Config
    link : EngineLink
        Its ``gateway_index`` addresses this gateway's sessions and order ids.
    data_dir : path, optional
        Defaults to ``config.exchange.data_dir``; holds the epoch file and ``fix/`` stores.
    listener : socket, optional
        A listening socket to use instead of binding ``gateway.fix.host``/``port``.
    mode, idle : str, optional
        Override ``gateway.mode`` (``poll``/``uvloop``) and ``gateway.idle``.
    store_sync : str, optional
        Override ``gateway.fix.store_sync`` (``FileStore`` policy; ``batch``: durable before sending).
    store_factory : callable, optional
        ``comp_id -> MessageStore`` instead of file stores.
    stop : object with ``set()``/``is_set()``, optional
        Stop flag (a new ``StopFlag`` by default).
    cancel_stale_orders : bool
        Cancel, at start, what the engine holds for cancel-on-disconnect sessions.
    restore_orders : bool
        Rebuild the open orders of a previous run from the session stores
        (:mod:`numbex.server.fix_restore`), so their later events and the stale-order
        cancels are reported.
    **core_options
        Passed to :class:`FixGatewayCore` / :class:`OrderEntry`.
    """
    from numbex.agent import StopFlag, make_idle_strategy
    from numbex.server.fix_gateway import FixGatewayCore
    from numbex.server.poll_gateway import PollGateway
    from numbex.server.uvloop_gateway import UvloopGateway

    data_dir = Path(data_dir if data_dir is not None else config.exchange.data_dir)
    gateway_index = link.gateway_index
    mode = mode or config.gateway.mode
    idle_name = idle or config.gateway.idle
    store_sync = store_sync or config.gateway.fix.store_sync
    if mode not in ("poll", "uvloop"):
        raise ValueError(f"gateway mode {mode!r}: expected poll or uvloop")
    epoch = next_epoch(data_dir, gateway_index)
    own_listener = listener is None
    if own_listener:
        listener = listen(config.gateway.fix.host, config.gateway.fix.port)
    try:
        core = FixGatewayCore(config, link, clock(), store_directory=data_dir / "fix", store_sync=store_sync,
                              store_factory=store_factory, gateway_index=gateway_index, epoch=epoch, **core_options)
        if restore_orders:
            from numbex.server.fix_restore import restore_orders as restore

            restore(core.entry, core.directory.store)
        if cancel_stale_orders:
            core.entry.cancel_stale_orders()
        stop = stop if stop is not None else StopFlag()
        buffer_limit = config.gateway.outbound_buffer_bytes
        grace_ms = config.gateway.fix.shutdown_logout_ms
        if mode == "uvloop":
            loop = UvloopGateway(core, listener, outbound_buffer_bytes=buffer_limit, stop=stop, clock=clock,
                                 shutdown_logout_ms=grace_ms)
            idle_strategy = None
        else:
            loop = PollGateway(core, listener, outbound_buffer_bytes=buffer_limit, clock=clock,
                               shutdown_logout_ms=grace_ms)
            options = {}
            if idle_name == "block":
                options["park_ns"] = 50_000_000
            elif idle_name == "backoff":
                options["spin_ns"] = config.gateway.idle_spin_us * 1000
                options["yield_ns"] = config.gateway.idle_yield_us * 1000
            idle_strategy = make_idle_strategy(idle_name, loop, **options)
    except BaseException:
        if own_listener:
            listener.close()
        raise
    return GatewayRunner(core, loop, listener, stop, idle_strategy, mode, epoch)


# ------------------------------------------------------------------ CLI


def add_arguments(parser) -> None:
    parser.add_argument("--config", help="config file (TOML); the embedded defaults when omitted")
    parser.add_argument("--local", action="store_true",
                        help="run an in-process matching engine (no WAL) instead of attaching to the engine process")
    parser.add_argument("--mode", choices=("poll", "uvloop"), help="override gateway.mode")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")


def run(args) -> int:
    from numbex.agent import StopFlag, stop_on_signals
    from numbex.roles import begin_role

    config = begin_role("gateway", args.config)
    if config is None:
        return 2
    if args.local:
        from numbex.engine.spec import EngineSpec
        from numbex.server.engine_link import LocalLink

        link = LocalLink(EngineSpec.from_config(config))
    else:
        from numbex.server.ring_link import RingLink

        link = RingLink.attach(config, gateway_index=0)
    stop = StopFlag()
    try:
        # an in-process engine starts empty: there is nothing of an earlier run to restore
        runner = build_gateway(config, link, mode=args.mode, stop=stop, restore_orders=not args.local)
    except (OSError, RuntimeError) as error:
        link.close()
        print(f"numbex gateway: {error}", file=sys.stderr)
        return 1
    print(f"numbex gateway: FIX on {config.gateway.fix.host}:{runner.port} ({runner.mode}, epoch {runner.epoch})",
          file=sys.stderr, flush=True)
    try:
        with stop_on_signals(stop):
            runner.run(max_seconds=args.seconds)
    finally:
        runner.close()
        link.close()
    return 0
