"""Cross-process futex wait and wake on a 32-bit word in a shared mapping.

A parked ring consumer sleeps in ``FUTEX_WAIT`` on the ring's wake-up word; the
producer bumps the word and calls ``FUTEX_WAKE``.  The word lives inside the ring's
own ``/dev/shm`` mapping, so any process that attaches the ring by name can wait
or wake with nothing else to share: no file descriptor to pass over a Unix socket
(which an ``eventfd`` would need), no extra kernel object to create or clean up,
and no system call at all on the producer side while the consumer is not parked.
The shared (non-``PRIVATE``) operations are used because the waiter and the waker
are different processes mapping the same file.

The calls go through libc's ``syscall`` via ``ctypes`` from Python, never from
``@njit`` code (a ``ctypes`` call would stop the kernel from being cached).
``ctypes`` releases the GIL for the duration of the call.

Where there is no futex (a non-Linux system, or an architecture whose system-call
number is not known below), :data:`FUTEX_SUPPORTED` is false and callers fall back
to a bounded sleep: slower to react, but never a lost wake-up, since every wait is
bounded by its timeout.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys

FUTEX_WAIT = 0
FUTEX_WAKE = 1

# SYS_futex by machine (Linux); absent machines fall back to sleeping.
SYSCALL_NUMBERS = {
    "x86_64": 202,
    "amd64": 202,
    "aarch64": 98,
    "arm64": 98,
    "riscv64": 98,
    "ppc64le": 221,
    "ppc64": 221,
    "s390x": 238,
    "i386": 240,
    "i686": 240,
    "armv7l": 240,
}

WAIT_WOKEN = 0
"""The wait ended because the word was woken (or the kernel reported a wake)."""
WAIT_CHANGED = 1
"""The word no longer held the expected value: a wake happened before the wait."""
WAIT_TIMEOUT = 2
"""The timeout elapsed with no wake."""
WAIT_INTERRUPTED = 3
"""A signal interrupted the wait (the caller re-checks its stop flag)."""


class _Timespec(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_long), ("nanoseconds", ctypes.c_long)]


def _syscall_function():
    """libc ``syscall`` with the futex argument prototype, or None without futexes."""
    if not sys.platform.startswith("linux"):
        return None
    if SYSCALL_NUMBERS.get(platform.machine().lower()) is None:
        return None
    prototype = ctypes.CFUNCTYPE(
        ctypes.c_long,
        ctypes.c_long,  # system-call number
        ctypes.c_void_p,  # uaddr
        ctypes.c_int,  # futex_op
        ctypes.c_uint32,  # val
        ctypes.c_void_p,  # timeout (relative, for FUTEX_WAIT)
        ctypes.c_void_p,  # uaddr2
        ctypes.c_uint32,  # val3
        use_errno=True,
    )
    return prototype(("syscall", ctypes.CDLL(None, use_errno=True)))


_SYSCALL = _syscall_function()
_SYS_FUTEX = SYSCALL_NUMBERS.get(platform.machine().lower(), -1)
FUTEX_SUPPORTED = _SYSCALL is not None


def futex_wait(address: int, expected: int, timeout_ns: int) -> int:
    """Sleep while the 32-bit word at ``address`` equals ``expected``, at most ``timeout_ns``.

    Parameters
    ----------
    address : int
        Address of a 4-byte aligned word in a shared mapping.
    expected : int
        The value read before deciding to sleep (low 32 bits are compared).
    timeout_ns : int
        Upper bound of the sleep, nanoseconds (>= 0).

    Returns
    -------
    int
        ``WAIT_WOKEN``, ``WAIT_CHANGED``, ``WAIT_TIMEOUT`` or ``WAIT_INTERRUPTED``.

    Raises
    ------
    OSError
        For any other failure (a bad address, futexes unavailable).
    """
    if _SYSCALL is None:
        raise OSError(errno.ENOSYS, "futex is not available on this system")
    if timeout_ns < 0:
        raise ValueError(f"timeout_ns must be >= 0, got {timeout_ns}")
    timeout = _Timespec(timeout_ns // 1_000_000_000, timeout_ns % 1_000_000_000)
    result = _SYSCALL(
        _SYS_FUTEX, address, FUTEX_WAIT, expected & 0xFFFFFFFF, ctypes.addressof(timeout), None, 0
    )
    if result == 0:
        return WAIT_WOKEN
    error = ctypes.get_errno()
    if error == errno.EAGAIN:
        return WAIT_CHANGED
    if error == errno.ETIMEDOUT:
        return WAIT_TIMEOUT
    if error == errno.EINTR:
        return WAIT_INTERRUPTED
    raise OSError(error, f"futex wait failed: {os.strerror(error)}")


def futex_wake(address: int, count: int = 1) -> int:
    """Wake up to ``count`` waiters sleeping on the word at ``address``.

    Returns
    -------
    int
        The number of waiters woken (0 if none was sleeping).

    Raises
    ------
    OSError
        If the system call fails or futexes are unavailable.
    """
    if _SYSCALL is None:
        raise OSError(errno.ENOSYS, "futex is not available on this system")
    result = _SYSCALL(_SYS_FUTEX, address, FUTEX_WAKE, count, None, None, 0)
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, f"futex wake failed: {os.strerror(error)}")
    return int(result)
