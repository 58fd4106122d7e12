"""``numbex serve``: create the instance's channels and run every role as a child.

Children are ``numbex engine``, ``numbex gateway`` and ``numbex publisher`` processes
(each with its role in its process title), started in that order; roles not in
this build are skipped with a note.  The supervisor:

* refuses to start (exit 1, with the role's own message) when a role exits during
  its start-up window;
* restarts a role that dies later (the engine recovers from snapshot and WAL before
  it accepts traffic; meanwhile gateways reject orders with "engine down");
* on SIGTERM or SIGINT stops gateways first (they stop accepting and close
  sessions), then the publisher, then the engine (it drains its rings, makes the
  WAL durable, writes a snapshot) and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

log = logging.getLogger("numbex.serve")

START_WINDOW_SECONDS = 1.5
STOP_TIMEOUT_SECONDS = 15.0
RESTART_DELAY_SECONDS = 0.5


@dataclass
class Child:
    role: str
    argv: list[str]
    process: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = 0.0
    exits: list[int] = field(default_factory=list)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("%s did not stop in %.0f s; killing it", self.role, timeout)
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the supervisor dies, however it dies (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def role_available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


ROLES = ("engine", "gateway", "publisher")


def build_children(config_path: str | None, extra: list[str],
                   roles: tuple[str, ...] = ROLES) -> list[Child]:
    base = [sys.executable, "-m", "numbex.cli"]
    config_args = ["--config", config_path] if config_path else []
    children = []
    for role, module in (("engine", "numbex.engine.process"),
                         ("gateway", "numbex.server.gateway"),
                         ("publisher", "numbex.feed.publisher")):
        if role not in roles:
            continue
        if role_available(module):
            children.append(Child(role, base + [role] + config_args + extra))
        else:
            log.info("role %s is not in this build; not started", role)
    return children


class Supervisor:
    def __init__(self, config, config_path: str | None, fresh: bool = True,
                 roles: tuple[str, ...] = ROLES) -> None:
        self.config = config
        self.config_path = config_path
        self.children = build_children(config_path, [], roles)
        self.stopping = False
        self.fresh = fresh

    def prepare(self) -> None:
        from numbex.engine.channels import remove_all

        os.makedirs(self.config.exchange.data_dir, exist_ok=True)
        if self.fresh:
            removed = remove_all(self.config.exchange.instance)
            if removed:
                log.info("removed %d stale shared-memory files of instance %s", len(removed),
                         self.config.exchange.instance)

    def start(self) -> bool:
        """Start every role in order; False (all stopped) when one fails to start."""
        for child in self.children:
            child.start()
            log.info("started %s (pid %d)", child.role, child.process.pid)
            if child.role == "engine" and not self._wait_engine_up(child):
                self.stop()
                return False
        deadline = time.monotonic() + START_WINDOW_SECONDS
        while time.monotonic() < deadline:
            for child in self.children:
                if not child.alive():
                    log.error("%s exited during start-up (code %s)", child.role,
                              child.process.returncode)
                    self.stop()
                    return False
            time.sleep(0.05)
        return True

    def _wait_engine_up(self, child: Child, timeout: float = 120.0) -> bool:
        from numbex.engine.channels import status_block
        from numbex.engine.status import STATE_UP

        status = status_block(self.config.exchange.instance)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not child.alive():
                    log.error("engine exited during start-up (code %s)", child.process.returncode)
                    return False
                if status.state == STATE_UP and status.get(1) == child.process.pid:
                    return True
                time.sleep(0.02)
        finally:
            status.close()
        log.error("engine did not come up within %.0f s", timeout)
        return False

    def watch_once(self) -> None:
        for child in self.children:
            if self.stopping or child.alive():
                continue
            code = child.process.returncode
            child.exits.append(code)
            child.restarts += 1
            log.error("%s exited (code %s); restarting (restart %d)", child.role, code,
                      child.restarts)
            time.sleep(RESTART_DELAY_SECONDS)
            child.start()

    def stop(self) -> int:
        self.stopping = True
        worst = 0
        order = {"gateway": 0, "publisher": 1, "engine": 2}
        for child in sorted(self.children, key=lambda c: order.get(c.role, 9)):
            code = child.stop(STOP_TIMEOUT_SECONDS)
            if code not in (None, 0, -signal.SIGTERM):
                log.error("%s stopped with code %s", child.role, code)
                worst = 1
        return worst


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default: the embedded defaults)")
    parser.add_argument("--keep-channels", action="store_true",
                        help="attach to existing shared-memory rings instead of recreating them")
    parser.add_argument("--roles", default=",".join(ROLES),
                        help="comma-separated roles to run (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    from numbex.roles import begin_role

    config = begin_role("serve", args.config)
    if config is None:
        return 2
    roles = tuple(role.strip() for role in args.roles.split(",") if role.strip())
    unknown = sorted(set(roles) - set(ROLES))
    if unknown or not roles:
        print(f"numbex serve: --roles: unknown role(s) {', '.join(unknown) or '(none given)'}; "
              f"choose from {', '.join(ROLES)}", file=sys.stderr)
        return 2
    supervisor = Supervisor(config, args.config, fresh=not args.keep_channels, roles=roles)
    received = []

    def on_signal(number, _frame):
        received.append(number)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    supervisor.prepare()
    if not supervisor.start():
        print("numbex serve: a role failed to start; see its message above", file=sys.stderr)
        return 1
    fix = config.gateway.fix
    log.info("numbex is up: FIX on %s:%d, data in %s", fix.host, fix.port,
             config.exchange.data_dir)
    while not received:
        supervisor.watch_once()
        time.sleep(0.1)
    log.info("stopping (signal %d)", received[0])
    return supervisor.stop()
