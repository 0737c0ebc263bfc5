"""Typed GC objects: headers, sizes, fields and elements read from a located GC heap.

`HeapView` reads the heap in 1 MiB chunks (bulk reads; a chunk the debugger
cannot read falls back to exact reads) and decodes objects at Wasmtime's
layout for the version and collector (core/gctypes.py); core/heapobj.py
turns an object into its record. `TypeMap` says what
wasm type of which module a header's engine-wide type index is; without one,
objects keep their raw header and payload and say why.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

from . import heapobj
from .abi import GC_KINDS, NO_TYPE
from .errors import ReadError
from .gctypes import (
    ArrayLayout,
    HeaderLayout,
    StructLayout,
    array_layout,
    heap_top,
    struct_layout,
)
from .heapobj import DEFAULT_ELEMENTS
from .target import Target
from .typemap import TypeMap
from .wasmparse import RefType

KINDS = GC_KINDS
__all__ = ["DEFAULT_ELEMENTS", "KINDS", "Header", "HeapView"]


class Header(NamedTuple):
    ref: int
    kind: str | None  # None: not a known kind
    kind_word: int
    shared_type: int | None
    size: int | None
    forwarded: int | None  # copying: the forwarding ref of an already-copied object


class HeapView:
    CHUNK = 1 << 20

    def __init__(
        self,
        target: Target,
        base: int,
        length: int,
        collector: str | None,
        hl: HeaderLayout | None,
        kind_mask: int,
        types: TypeMap | None = None,
        type_note: str | None = None,
    ):
        self.target = target
        self.base = base
        self.length = length
        self.collector = collector
        self.hl = hl
        self.kind_mask = kind_mask
        self.types = types
        self.type_note = type_note
        self.little = getattr(target, "little_endian", True)
        e = "<" if self.little else ">"
        self._u32 = struct.Struct(e + "I").unpack_from
        self._u32x2 = struct.Struct(e + "II").unpack_from
        self._plans: dict[int | None, tuple] = {}
        self._chunks: dict[int, bytes | None] = {}
        self._layouts: dict[int, tuple | None] = {}  # shared type -> (wasm idx, composite, layout)
        self.bytes_read = 0

    # -- memory -----------------------------------------------------------------------
    def _chunk(self, ci: int) -> bytes | None:
        if ci not in self._chunks:
            start = ci * self.CHUNK
            n = min(self.CHUNK, self.length - start)
            try:
                data = self.target.read_memory(self.base + start, n)
                self.bytes_read += n
            except ReadError:
                data = None
            self._chunks[ci] = data if data is not None and len(data) == n else None
        return self._chunks[ci]

    def read(self, r: int, n: int) -> bytes:
        """n bytes at heap index r (ReadError if outside the heap or unreadable)."""
        if r < 0 or n < 0 or r + n > self.length:
            raise ReadError(f"heap index {r:#x}+{n} is outside the heap", self.base + r)
        ci, off = divmod(r, self.CHUNK)
        chunk = self._chunk(ci)
        if chunk is not None and off + n <= len(chunk):
            return chunk[off : off + n]
        out = []
        pos = r
        while pos < r + n:
            ci, off = divmod(pos, self.CHUNK)
            chunk = self._chunk(ci)
            take = min(self.CHUNK - off, r + n - pos)
            if chunk is None:
                out.append(self.target.read_memory(self.base + pos, take))
            else:
                out.append(chunk[off : off + take])
            pos += take
        return b"".join(out)

    def u32(self, r: int) -> int:
        ci, off = divmod(r, self.CHUNK)
        chunk = self._chunks.get(ci) if ci in self._chunks else self._chunk(ci)
        if chunk is not None and off + 4 <= len(chunk) and r + 4 <= self.length:
            return self._u32(chunk, off)[0]
        return self._u32(self.read(r, 4))[0]

    # -- headers ----------------------------------------------------------------------
    def header(self, r: int) -> Header:
        """The header at heap index r (ReadError if unreadable)."""
        if r % 8 or r + 8 > self.length or r == 0:
            raise ReadError(f"heap index {r:#x} is not an object address in the heap", r)
        # One slice of the chunk for the whole header (this is the walk's hot path).
        n = min(24, self.length - r)
        ci, o = divmod(r, self.CHUNK)
        b = self._chunks.get(ci)
        if b is None and ci not in self._chunks:
            b = self._chunk(ci)
        if b is None or o + n > len(b):
            b, o = self.read(r, n), 0
        word, ty = self._u32x2(b, o)
        kind = KINDS.get(word & self.kind_mask)
        size = None
        fwd = None
        hl, c = self.hl, self.collector
        if hl is not None and hl.size <= n:
            if c == "copying":
                size = self._u32(b, o + 8)[0]
                if word & 1 and n >= 20:
                    fwd = self._u32(b, o + 16)[0]
            elif c == "drc" and hl.size == 24:
                size = self._u32(b, o + 20)[0]
            else:
                size = word & ~self.kind_mask & 0xFFFFFFFF
        return Header(r, kind, word, None if ty == NO_TYPE else ty, size, fwd)

    def size_offset(self) -> int | None:
        """Where the header holds the object's size (None: in the kind word's low bits)."""
        if self.hl is None:
            return None
        if self.collector == "copying":
            return 8
        if self.collector == "drc" and self.hl.size == 24:
            return 20
        return None

    def size_ok(self, h: Header) -> bool:
        hl = self.hl
        if hl is None or h.size is None:
            return False
        # Only the copying collector rounds sizes (to 16); DRC/null keep the layout's size.
        size_align = 16 if self.collector == "copying" else 1
        return hl.size <= h.size and h.size % size_align == 0 and h.ref + h.size <= self.length

    # -- types ------------------------------------------------------------------------
    def type_of(self, shared: int | None) -> tuple | None:
        """(wasm type index, composite, layout) for a shared type index, or None."""
        if shared is None or self.types is None or self.hl is None:
            return None
        hit: tuple | None = self._layouts.get(shared)
        if hit is None and shared not in self._layouts:
            idx = self.types.shared_to_wasm.get(shared)
            if idx is not None:
                comp = self.types.module.types[idx].composite
                lay: StructLayout | ArrayLayout | None
                if comp.kind == "struct":
                    lay = struct_layout(comp.fields, self.hl)
                elif comp.kind == "array":
                    lay = array_layout(comp.fields[0], self.hl)
                else:
                    lay = None
                hit = (idx, comp, lay)
            self._layouts[shared] = hit
        return hit

    def ref_plan(self, shared: int | None) -> tuple:
        """Where a type's GC refs are: ("struct", relative offsets), ("array", length offset,
        elements offset) for arrays of refs, or () (cached per type: the walk's hot path)."""
        plan = self._plans.get(shared)
        if plan is None:
            plan = ()
            t = self.type_of(shared)
            if t is not None:
                _, comp, lay = t
                types = self.types.module.types  # type: ignore[union-attr]
                refs = [
                    isinstance(f.storage, RefType) and heap_top(types, f.storage.heap) != "func"
                    for f in comp.fields
                ]
                if comp.kind == "struct" and any(refs):
                    offs = tuple(o for o, is_ref in zip(lay.offsets, refs, strict=True) if is_ref)
                    plan = ("struct", offs)
                elif comp.kind == "array" and refs[0]:
                    plan = ("array", lay.length_offset, lay.elems_offset)
            self._plans[shared] = plan
        return plan

    def ref_field_offsets(self, h: Header) -> tuple[list[int], str | None]:
        """Heap indices of the GC-ref slots of the object (for graph walks), and a problem."""
        t = self.type_of(h.shared_type)
        if t is None:
            return [], None
        idx, comp, lay = t
        types = self.types.module.types  # type: ignore[union-attr]
        if comp.kind == "struct":
            return [
                h.ref + off
                for f, off in zip(comp.fields, lay.offsets, strict=True)
                if isinstance(f.storage, RefType) and heap_top(types, f.storage.heap) != "func"
            ], None
        if comp.kind == "array":
            f = comp.fields[0]
            if not isinstance(f.storage, RefType) or heap_top(types, f.storage.heap) == "func":
                return [], None
            n = self.u32(h.ref + lay.length_offset)
            end = h.ref + lay.elems_offset + 4 * n
            if h.size is not None and end > h.ref + h.size:
                return [], f"array length {n} runs past the object's {h.size} bytes"
            return list(range(h.ref + lay.elems_offset, end, 4)), None
        return [], None

    # -- decoding (core/heapobj.py) -------------------------------------------------------
    def type_record(self, h: Header) -> dict[str, Any] | None:
        return heapobj.type_record(self, h)

    def describe(self, r: int, depth: int = 1, elements: int = DEFAULT_ELEMENTS) -> dict[str, Any]:
        """An object record (core/heapobj.describe)."""
        return heapobj.describe(self, r, depth, elements)
