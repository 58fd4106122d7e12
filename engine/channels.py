"""The shared-memory channels of one numbex instance, by name.

``/dev/shm/<instance>-in-<g>``   COMMAND ring, gateway g -> engine
``/dev/shm/<instance>-out-<g>``  EVENT ring, engine -> gateway g
``/dev/shm/<instance>-bell-<g>`` FIFO doorbell: the engine writes a byte when gateway g
                                 parked waiting for events (so it can sleep in epoll)
``/dev/shm/<instance>-status``   engine status block (numbex.engine.status)

Every role opens what it needs with attach-or-create, so roles start in any order
(under ``numbex serve`` or as separate systemd units).  :func:`remove_all` deletes an
instance's channels (the supervisor does it at a fresh start).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from numbex.engine.records import COMMAND, EVENT
from numbex.engine.ring import Ring, RingError
from numbex.engine.status import EngineStatus, shm_path

GATEWAYS = (0,)  # gateway indexes of this build: one gateway process serves FIX (and OUCH)


def open_ring(path: Path, dtype, slots: int) -> Ring:
    """Attach to the ring at ``path``, creating it when absent."""
    for _attempt in range(50):
        if path.exists():
            try:
                return Ring.attach(path, dtype)
            except RingError:
                if not path.exists():
                    continue
                raise
        try:
            return Ring.create(path, dtype, slots)
        except RingError:
            if path.exists():
                continue
            raise
    raise RingError(f"could not attach or create ring {path}")


def inbound_ring(instance: str, gateway: int, slots: int) -> Ring:
    return open_ring(shm_path(instance, f"in-{gateway}"), COMMAND, slots)


def outbound_ring(instance: str, gateway: int, slots: int) -> Ring:
    return open_ring(shm_path(instance, f"out-{gateway}"), EVENT, slots)


def status_block(instance: str) -> EngineStatus:
    return EngineStatus.open(shm_path(instance, "status"))


class Doorbell:
    """A named FIFO: one side rings (a byte, never blocking), the other polls its fd."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            os.mkfifo(path, 0o600)
        except FileExistsError:
            if not stat.S_ISFIFO(os.stat(path).st_mode):
                raise RingError(f"{path} exists and is not a FIFO")
        # O_RDWR keeps the FIFO open for writing too, so reads never see EOF.
        self.fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def fileno(self) -> int:
        return self.fd

    def ring(self) -> None:
        try:
            os.write(self.fd, b"\x01")
        except BlockingIOError:
            pass  # already full of rings: the reader will wake anyway
        except OSError as error:  # pragma: no cover - closed under us
            if error.errno not in (errno.EBADF, errno.EPIPE):
                raise

    def drain(self) -> None:
        try:
            while os.read(self.fd, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def doorbell(instance: str, gateway: int) -> Doorbell:
    return Doorbell(shm_path(instance, f"bell-{gateway}"))


def remove_all(instance: str) -> list[Path]:
    """Delete every shared-memory file of ``instance``; returns what was removed."""
    removed = []
    for path in Path("/dev/shm").glob(f"{instance}-*"):
        name = path.name[len(instance) + 1:]
        if name == "status" or name.split("-")[0] in ("in", "out", "bell"):
            try:
                path.unlink()
                removed.append(path)
            except FileNotFoundError:
                pass
    return removed
