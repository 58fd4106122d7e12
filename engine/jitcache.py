"""Numba's on-disk cache, keyed by the engine's source.

Numba invalidates a cached kernel only when its own file changes, not when a
kernel it calls in another module does; a stale caller would run old inlined code.
Importing this module (every kernel module does, before defining kernels) points
``numba.config.CACHE_DIR`` at ``<base>/<digest of the kernel sources>``, so a change
to any kernel module (or to records.py) starts a fresh cache.  ``<base>`` is ``$NUMBA_CACHE_DIR`` or
``~/.cache/numbex/numba``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba


def source_digest() -> str:
    """Digest of the engine modules that define kernels (and of the records they use)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        text = path.read_bytes()
        if path.name == "records.py" or b"@njit" in text or b"@intrinsic" in text:
            digest.update(path.name.encode())
            digest.update(text)
    return digest.hexdigest()[:16]


def configure() -> str:
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "numbex", "numba"
    )
    directory = os.path.join(base, source_digest())
    if numba.config.CACHE_DIR != directory:
        numba.config.CACHE_DIR = directory
    return directory


CACHE_DIRECTORY = configure()
