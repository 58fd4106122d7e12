"""Numba kernels of the write-ahead log: CRC32C, command-record encoding, segment scanning.

No I/O here: the kernels take arrays and return counts and statuses; ``numbex.engine.wal``
does the file work around them.

A command record (``records.WAL_COMMAND_RECORD``, 128 bytes) is handled as 16
little-endian u64 words:

=====  =====================================================================
word   content
=====  =====================================================================
0      ``length`` (96) in the low half, ``type`` (``WAL_COMMAND``) in the high half
1      ``seq`` (a copy of the command's ``seq``)
2      ``ts_ns`` (a copy of the command's ``ts_ns``)
3-14   the COMMAND record
15     ``crc`` in the low half (CRC32C of words 0-14), ``pad`` (0) in the high half
=====  =====================================================================

CRC32C is the Castagnoli CRC (reflected polynomial 0x82F63B78, initial value and final
xor 0xFFFFFFFF), the one iSCSI, ext4 and the ``crc32c`` package compute.  Two kernels
compute it, both agreeing with the ``crc32c`` package bit for bit:

* ``hardware``: the SSE4.2 ``crc32`` instruction, reached through the LLVM intrinsic
  ``llvm.x86.sse42.crc32.64.64`` (about 5 ns per 120-byte record here);
* ``table``: slicing-by-8 over whole words, four records interleaved so that their
  independent dependency chains overlap (about 26 ns per record; 44 ns without the
  interleaving).  It runs on any CPU and under ``NUMBA_DISABLE_JIT=1``.

For comparison, calling the ``crc32c`` package once per record from Python costs about
210-290 ns per record, most of it call overhead.  ``select_crc_kernels`` picks the
hardware kernel when the JIT targets a CPU with SSE4.2 and the table kernel otherwise;
the hardware kernel is never compiled for a target without SSE4.2 (LLVM would abort).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numba import njit, types
from numba.core import config as numba_config
from numba.core.extending import intrinsic

from numbex.engine import jitcache  # noqa: F401  (must precede kernel definitions)
from numbex.engine.records import COMMAND, WAL_COMMAND, WAL_COMMAND_RECORD

RECORD_WORDS = WAL_COMMAND_RECORD.itemsize // 8
CRC_WORDS = RECORD_WORDS - 1  # header and payload: the words the CRC covers
COMMAND_WORDS = COMMAND.itemsize // 8
COMMAND_PAYLOAD_BYTES = COMMAND.itemsize
COMMAND_HEADER_WORD = np.uint64(COMMAND_PAYLOAD_BYTES | (WAL_COMMAND << 32))

# Statuses of parse_command_headers.
SCAN_CLEAN_END = 0  # the buffer ends exactly after the last record
SCAN_PARTIAL = 1  # fewer words left than a whole record
SCAN_BAD_HEADER = 2  # a length/type pair that is not a command record
SCAN_BAD_SEQ = 3  # a record whose seq is not the previous one plus one

CASTAGNOLI_REFLECTED = 0x82F63B78


def _build_tables() -> np.ndarray:
    table = np.zeros((8, 256), np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ CASTAGNOLI_REFLECTED if crc & 1 else crc >> 1
        table[0, byte] = crc
    for slice_index in range(1, 8):
        previous = table[slice_index - 1]
        table[slice_index] = (previous >> 8) ^ table[0, previous & 0xFF]
    table.setflags(write=False)
    return table


# Read-only constant: Numba freezes a global array into the compiled code.
SLICING_TABLES = _build_tables()


@njit(cache=True, inline="always")
def _table_step(crc, word):
    value = word ^ np.uint64(crc)
    return (SLICING_TABLES[7, value & np.uint64(0xFF)]
            ^ SLICING_TABLES[6, (value >> np.uint64(8)) & np.uint64(0xFF)]
            ^ SLICING_TABLES[5, (value >> np.uint64(16)) & np.uint64(0xFF)]
            ^ SLICING_TABLES[4, (value >> np.uint64(24)) & np.uint64(0xFF)]
            ^ SLICING_TABLES[3, (value >> np.uint64(32)) & np.uint64(0xFF)]
            ^ SLICING_TABLES[2, (value >> np.uint64(40)) & np.uint64(0xFF)]
            ^ SLICING_TABLES[1, (value >> np.uint64(48)) & np.uint64(0xFF)]
            ^ SLICING_TABLES[0, value >> np.uint64(56)])


@njit(cache=True)
def crc_rows_table(rows, word_count, out):
    """CRC32C of ``rows[r, :word_count]`` (u64 words) into ``out[r]``, slicing-by-8."""
    count = rows.shape[0]
    seed = np.uint32(0xFFFFFFFF)
    row = 0
    while row + 4 <= count:
        crc_a = seed
        crc_b = seed
        crc_c = seed
        crc_d = seed
        for word in range(word_count):
            crc_a = _table_step(crc_a, rows[row, word])
            crc_b = _table_step(crc_b, rows[row + 1, word])
            crc_c = _table_step(crc_c, rows[row + 2, word])
            crc_d = _table_step(crc_d, rows[row + 3, word])
        out[row] = crc_a ^ seed
        out[row + 1] = crc_b ^ seed
        out[row + 2] = crc_c ^ seed
        out[row + 3] = crc_d ^ seed
        row += 4
    while row < count:
        crc = seed
        for word in range(word_count):
            crc = _table_step(crc, rows[row, word])
        out[row] = crc ^ seed
        row += 1


@intrinsic
def _sse42_crc32_u64(typing_context, crc, word):
    """The SSE4.2 ``crc32 r64, r/m64`` instruction (CRC32C, no pre/post inversion)."""
    signature = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, arguments):
        from llvmlite import ir

        word_type = ir.IntType(64)
        function_type = ir.FunctionType(word_type, [word_type, word_type])
        function = builder.module.declare_intrinsic("llvm.x86.sse42.crc32.64.64", fnty=function_type)
        return builder.call(function, arguments)

    return signature, codegen


@njit(cache=True)
def crc_rows_hardware(rows, word_count, out):
    """CRC32C of ``rows[r, :word_count]`` (u64 words) into ``out[r]``, SSE4.2 instruction."""
    seed = np.uint64(0xFFFFFFFF)
    for row in range(rows.shape[0]):
        crc = seed
        for word in range(word_count):
            crc = _sse42_crc32_u64(crc, rows[row, word])
        out[row] = crc ^ seed


@njit(cache=True)
def fill_command_records(commands, rows, first_seq):
    """Write header and payload words of one command record per command.

    ``commands`` is a C-contiguous COMMAND array (read as 10 u64 words per record);
    ``rows`` the output (>= n, 14).  Returns -1, or the index of the first command whose
    seq is not ``first_seq + index`` (nothing after it is meaningful then).  The trailer
    word is left to the CRC kernel.  Taking the record array itself (and viewing it here)
    costs less per call than a ``view`` in Python before the call.
    """
    words = commands.view(np.uint64)
    base = np.uint64(first_seq)
    for row in range(commands.shape[0]):
        start = row * COMMAND_WORDS
        if words[start] != base + np.uint64(row):
            return row
        rows[row, 0] = COMMAND_HEADER_WORD
        rows[row, 1] = words[start]
        rows[row, 2] = words[start + 1]
        for word in range(COMMAND_WORDS):
            rows[row, 3 + word] = words[start + word]
    return -1


@njit(cache=True)
def encode_commands_table(commands, rows, first_seq):
    """``fill_command_records`` then the CRC trailer of every record (slicing-by-8)."""
    mismatch = fill_command_records(commands, rows, first_seq)
    if mismatch < 0:
        count = commands.shape[0]
        crc_rows_table(rows[:count], CRC_WORDS, rows[:count, CRC_WORDS])
    return mismatch


@njit(cache=True)
def encode_commands_hardware(commands, rows, first_seq):
    """``fill_command_records`` then the CRC trailer of every record (SSE4.2)."""
    mismatch = fill_command_records(commands, rows, first_seq)
    if mismatch < 0:
        count = commands.shape[0]
        crc_rows_hardware(rows[:count], CRC_WORDS, rows[:count, CRC_WORDS])
    return mismatch


@njit(cache=True)
def parse_command_headers(words, expected_seq):
    """Walk whole command records from word 0; stop at the first one that is not well formed.

    Checks each record's length/type word and that its seq continues ``expected_seq``
    (the CRC is checked separately, in bulk).  Returns ``(count, status)``: the number of
    well-formed records before the stop and a ``SCAN_*`` status saying why it stopped.
    """
    total = words.shape[0]
    base = np.uint64(expected_seq)
    count = 0
    position = 0
    while True:
        if position == total:
            return count, SCAN_CLEAN_END
        if total - position < RECORD_WORDS:
            return count, SCAN_PARTIAL
        if words[position] != COMMAND_HEADER_WORD:
            return count, SCAN_BAD_HEADER
        if words[position + 1] != base + np.uint64(count):
            return count, SCAN_BAD_SEQ
        count += 1
        position += RECORD_WORDS


@njit(cache=True)
def find_candidate_records(words, start_word, out):
    """Word offsets from ``start_word`` on where a whole command record could begin.

    A candidate has the command length/type word and room for a whole record; at most
    ``len(out)`` are stored.  Returns ``(count, next_word)``: how many were stored and
    where to resume the search.
    """
    stored = 0
    position = start_word
    limit = words.shape[0] - RECORD_WORDS
    while position <= limit and stored < out.shape[0]:
        if words[position] == COMMAND_HEADER_WORD:
            out[stored] = position
            stored += 1
        position += 1
    return stored, position


@dataclass(frozen=True)
class CrcKernels:
    """The CRC32C kernel chosen for this process, by name."""

    name: str
    crc_rows: Callable[[np.ndarray, int, np.ndarray], None]
    encode_commands: Callable[[np.ndarray, np.ndarray, np.uint64], int]


def hardware_crc_available() -> bool:
    """True when the JIT targets an x86-64 CPU with SSE4.2 (``crc32`` instruction)."""
    if numba_config.DISABLE_JIT:
        return False
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if numba_config.CPU_FEATURES is not None:
        return "+sse4.2" in numba_config.CPU_FEATURES.split(",")
    if numba_config.CPU_NAME not in (None, "host"):
        return False  # a named target CPU with no explicit feature list: do not assume
    from llvmlite import binding

    return bool(binding.get_host_cpu_features().get("sse4.2", False))


def select_crc_kernels(choice: str = "auto") -> CrcKernels:
    """Return the CRC32C kernel: ``"auto"``, ``"hardware"`` or ``"table"``.

    ``"hardware"`` raises ``RuntimeError`` when the CPU targeted by the JIT lacks SSE4.2.
    """
    if choice not in ("auto", "hardware", "table"):
        raise ValueError(f"CRC32C kernel must be 'auto', 'hardware' or 'table', got {choice!r}")
    available = hardware_crc_available()
    if choice == "hardware" and not available:
        raise RuntimeError("CRC32C kernel 'hardware' needs an x86-64 JIT target with SSE4.2")
    if choice == "table" or not available:
        return CrcKernels("table", crc_rows_table, encode_commands_table)
    return CrcKernels("hardware", crc_rows_hardware, encode_commands_hardware)
