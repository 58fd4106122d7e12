"""A small tmpfs for tests of full-disk behaviour (root only; the test is skipped otherwise).

Import with ``sys.path.insert(0, str(Path(__file__).resolve().parents[1]))``.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(mount_point: Path, size: str = "2m"):
    """Mount a tmpfs of ``size`` at ``mount_point`` (created); unmounted on exit."""
    mount_point.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True, timeout=30)
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=30).returncode:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, timeout=30)
