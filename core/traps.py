"""`.wasmtime.traps` and `.wasmtime.addrmap`: what trapped, and where in the wasm bytecode.

Formats (docs/format.md §5; Wasmtime's `trap_encoding.rs`, `address_map.rs`), little-endian u32s:
    traps:   N, offset[N] (sorted .text offsets of trapping instructions), u8 code[N]
    addrmap: N, offset[N] (sorted .text offsets), u32 wasm_offset[N]; a pc maps to the
             last entry at or before it; 0xFFFFFFFF = no position.

Trap codes are the index of the variant in Wasmtime's `Trap` enum, which changed
between releases; codes 0xFE/0xFF are GcHeapCorrupt/InternalAssert since 46. The
variants per release: core/abi.py `TRAP_VARIANTS`; where they come from: docs/format.md §5.
"""

import bisect
import struct
from collections.abc import Sequence

from .abi import (
    SPECIAL_TRAPS_SINCE,
    TRAP_GC_HEAP_CORRUPT,
    TRAP_INTERNAL_ASSERT,
    trap_names,
)
from .errors import CorruptSection


def trap_name(code: int, major: int | None) -> str:
    if major is None or major >= SPECIAL_TRAPS_SINCE:
        if code == TRAP_GC_HEAP_CORRUPT:
            return "GcHeapCorrupt"
        if code == TRAP_INTERNAL_ASSERT:
            return "InternalAssert"
    names = trap_names(major)
    return names[code] if code < len(names) else f"unknown trap code {code}"


BLOCK_SIZE = 128  # entries per block in the 47+ encodings (TRAP_/ADDRMAP_BLOCK_SIZE)


def _u32s(data: bytes, at: int, n: int, what: str) -> tuple[int, ...]:
    if at + 4 * n > len(data):
        raise CorruptSection(f"{what}: {n} words at {at} run past the section ({len(data)} bytes)")
    return struct.unpack_from(f"<{n}I", data, at)


def _leb(data: bytes, pos: int, what: str, signed: bool) -> tuple[int, int]:
    """A LEB128 number at `pos`: (value, position after it)."""
    result = shift = 0
    while shift < 64:
        if pos >= len(data):
            raise CorruptSection(f"{what}: truncated LEB128 at byte {pos}")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if signed and b & 0x40:
                result -= 1 << shift
            return result, pos
    raise CorruptSection(f"{what}: LEB128 longer than 64 bits at byte {pos}")


def _uleb(data: bytes, pos: int, what: str) -> tuple[int, int]:
    return _leb(data, pos, what, False)


def _sleb(data: bytes, pos: int, what: str) -> tuple[int, int]:
    return _leb(data, pos, what, True)


def _is_flat(data: bytes, value_size: int, major: int | None) -> bool:
    """Flat (<= 46: N, u32 offsets, values) or blocked (47+) encoding?"""
    if major is not None:
        return major <= 46
    if len(data) < 4:
        return True
    (n,) = struct.unpack_from("<I", data, 0)
    return len(data) == 4 + n * (4 + value_size)


def _blocks(data: bytes, what: str) -> tuple[int, tuple[int, ...], tuple[int, ...], int]:
    """(entries, [(first_offset, body_pos)], bodies offset) of a 47+ blocked section."""
    entries, nblocks = _u32s(data, 0, 2, what)
    if nblocks != (entries + BLOCK_SIZE - 1) // BLOCK_SIZE:
        raise CorruptSection(f"{what}: {nblocks} blocks for {entries} entries")
    flat = _u32s(data, 8, 2 * nblocks, what)
    return entries, flat[0::2], flat[1::2], 8 + 8 * nblocks


def _block_for(firsts: Sequence[int], text_offset: int) -> int:
    return bisect.bisect_right(firsts, text_offset) - 1


def lookup_trap(data: bytes, text_offset: int, major: int | None) -> dict | None:
    """The trap at exactly `text_offset`, or None if that pc is not a trap site."""
    what = ".wasmtime.traps"
    code = None
    if _is_flat(data, 1, major):
        (n,) = _u32s(data, 0, 1, what)
        offsets = _u32s(data, 4, n, what)
        if 4 + 5 * n > len(data):
            raise CorruptSection(f"{what}: N={n} needs {4 + 5 * n} bytes, has {len(data)}")
        i = bisect.bisect_left(offsets, text_offset)
        if i < n and offsets[i] == text_offset:
            code = data[4 + 4 * n + i]
    else:
        entries, firsts, poss, bodies = _blocks(data, what)
        b = _block_for(firsts, text_offset)
        if b < 0:
            return None
        pos = bodies + poss[b]
        if pos >= len(data):
            raise CorruptSection(f"{what}: block {b} body at {pos} is past the end")
        default = data[pos]
        pos += 1
        pc = firsts[b]
        for _ in range(min(BLOCK_SIZE, entries - b * BLOCK_SIZE)):
            token, pos = _uleb(data, pos, what)
            pc += token >> 1
            this = default
            if token & 1:
                if pos >= len(data):
                    raise CorruptSection(f"{what}: truncated block {b}")
                this = data[pos]
                pos += 1
            if pc == text_offset:
                code = this
                break
            if pc > text_offset:
                break
    if code is None:
        return None
    return {"code": code, "name": trap_name(code, major)}


def lookup_wasm_offset(data: bytes, text_offset: int, major: int | None = None) -> int | None:
    """Offset in the original wasm binary of the instruction covering `text_offset`."""
    what = ".wasmtime.addrmap"
    if _is_flat(data, 4, major):
        (n,) = _u32s(data, 0, 1, what)
        offsets = _u32s(data, 4, n, what)
        i = bisect.bisect_right(offsets, text_offset) - 1
        if i < 0:
            return None
        (pos,) = _u32s(data, 4 + 4 * n + 4 * i, 1, what)
        return None if pos == 0xFFFFFFFF else pos
    entries, firsts, poss, bodies = _blocks(data, what)
    b = _block_for(firsts, text_offset)
    if b < 0:
        return None
    pos = bodies + poss[b]
    pc = firsts[b]
    prev_pos = None
    found = None
    for _ in range(min(BLOCK_SIZE, entries - b * BLOCK_SIZE)):
        token, pos = _uleb(data, pos, what)
        pc += token >> 1
        if pc > text_offset:
            break
        if token & 1:
            found = None
            continue
        if prev_pos is None:
            prev_pos, pos = _uleb(data, pos, what)
        else:
            delta, pos = _sleb(data, pos, what)
            prev_pos += delta
        found = prev_pos
    return found


class WasmOffsets:
    """`lookup_wasm_offset` for many pcs of one image: the flat encoding is unpacked once
    (a backtrace looks up every frame), the blocked one is already indexed by block."""

    def __init__(self, data: bytes, major: int | None):
        self.data = data
        self.major = major
        self.flat: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        if _is_flat(data, 4, major):
            what = ".wasmtime.addrmap"
            (n,) = _u32s(data, 0, 1, what)
            self.flat = (_u32s(data, 4, n, what), _u32s(data, 4 + 4 * n, n, what))

    def lookup(self, text_offset: int) -> int | None:
        if self.flat is None:
            return lookup_wasm_offset(self.data, text_offset, self.major)
        offsets, positions = self.flat
        i = bisect.bisect_right(offsets, text_offset) - 1
        if i < 0 or positions[i] == 0xFFFFFFFF:
            return None
        return positions[i]
