"""Placing a role on the machine: CPU affinity and NUMA node (libnuma through ctypes).

Everything here is best effort and never fatal: on a machine without libnuma, or
with one node, NUMA calls are a clean no-op; a CPU set the machine does not have is
reported and ignored.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from pathlib import Path

log = logging.getLogger("numbex.machine")


class Numa:
    """The few libnuma calls numbex uses; ``available`` is False when there is no libnuma."""

    def __init__(self) -> None:
        self.library = None
        name = ctypes.util.find_library("numa")
        if name:
            try:
                library = ctypes.CDLL(name)
                if library.numa_available() >= 0:
                    self.library = library
            except OSError:
                self.library = None

    @property
    def available(self) -> bool:
        return self.library is not None

    def max_node(self) -> int:
        return int(self.library.numa_max_node()) if self.library else 0

    def run_on_node(self, node: int) -> bool:
        """Run this process on ``node`` and prefer its memory; False if not possible."""
        if not self.library:
            return False
        if not 0 <= node <= self.max_node():
            log.warning("NUMA node %d does not exist (max %d); not binding", node, self.max_node())
            return False
        if self.library.numa_run_on_node(node) != 0:
            log.warning("numa_run_on_node(%d) failed", node)
            return False
        self.library.numa_set_preferred(node)
        return True


def interface_numa_node(interface: str) -> int:
    """NUMA node of a network interface's device, -1 when unknown (virtual devices, lo)."""
    try:
        return int(Path(f"/sys/class/net/{interface}/device/numa_node").read_text().strip())
    except (OSError, ValueError):
        return -1


def place_process(role: str, cpus, numa_node: int = -1) -> dict:
    """Pin the calling process to ``cpus`` (if any) and ``numa_node`` (if >= 0)."""
    placed = {"cpus": None, "numa_node": None}
    if cpus:
        available = os.sched_getaffinity(0) | set(range(os.cpu_count() or 1))
        wanted = {int(c) for c in cpus}
        missing = wanted - available
        if missing:
            log.warning("%s: CPUs %s do not exist here; not pinning", role, sorted(missing))
        else:
            try:
                os.sched_setaffinity(0, wanted)
                placed["cpus"] = sorted(wanted)
            except OSError as error:
                log.warning("%s: cannot pin to CPUs %s: %s", role, sorted(wanted), error)
    if numa_node >= 0:
        numa = Numa()
        if numa.available and numa.run_on_node(numa_node):
            placed["numa_node"] = numa_node
    return placed
