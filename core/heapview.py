"""Typed GC objects: headers, sizes, fields and elements read from a located GC heap.

`HeapView` reads the heap in 1 MiB chunks (bulk reads; a chunk the debugger
cannot read falls back to exact reads) and decodes objects at Wasmtime's
layout for the version and collector (core/gctypes.py). `TypeMap` says what
wasm type of which module a header's engine-wide type index is; without one,
objects keep their raw header and payload and say why.
"""

from __future__ import annotations

import math
import struct
from typing import NamedTuple

from .abi import GC_KINDS, NO_TYPE
from .errors import ReadError
from .gcref import GcRef, SlotKind, decode_gcref
from .gctypes import (
    ArrayLayout,
    HeaderLayout,
    StructLayout,
    array_layout,
    describe_storage,
    heap_top,
    struct_layout,
)
from .target import Target
from .typemap import TypeMap
from .wasmparse import FieldType, RefType

KINDS = GC_KINDS
DEFAULT_ELEMENTS = 16


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

    # -- decoding ---------------------------------------------------------------------
    def type_record(self, h: Header) -> dict | None:
        t = self.type_of(h.shared_type)
        if t is None:
            return None
        return {"module_index": t[0], "name": self.types.name(t[0])}  # type: ignore[union-attr]

    def describe(
        self,
        r: int,
        depth: int = 1,
        elements: int = DEFAULT_ELEMENTS,
        _budget: list[int] | None = None,
    ) -> dict:
        """An object record: header facts, its type, fields/elements; refs decoded down to
        `depth` more levels (a shared budget bounds the total)."""
        budget = _budget if _budget is not None else [256]
        budget[0] -= 1
        obj: dict = {"ref": r, "address": self.base + r, "kind": "unknown"}
        try:
            h = self.header(r)
        except ReadError as e:
            obj["error"] = str(e)
            return obj
        obj.update(
            kind=h.kind or f"unknown {h.kind_word:#010x}",
            type_index=h.shared_type,
            size=h.size,
            collector=self.collector,
        )
        if h.forwarded is not None:
            obj["forwarded"] = h.forwarded
        if h.kind is None:  # not an object: its "type" and "size" words mean nothing
            obj.update(type=None, type_index=None, size=None)
            obj["error"] = f"{h.kind_word:#010x} is not a GC object header"
            return obj
        obj["type"] = self.type_record(h)
        if not self.size_ok(h):
            obj["error"] = f"size {h.size} does not fit the {self.collector} layout"
            return obj
        t = self.type_of(h.shared_type)
        if t is None:
            obj["type_note"] = self._why_untyped(h)
            body = self.hl.size if self.hl else 8
            try:
                obj["payload"] = self.read(r + body, max(0, min(32, (h.size or 0) - body))).hex()
            except ReadError:
                pass
            return obj
        idx, comp, lay = t
        want = {"struct": "structref", "array": "arrayref"}.get(comp.kind)
        if want != h.kind:
            obj["error"] = f"header kind {h.kind} but type {idx} is a {comp.kind} type"
            return obj
        try:
            if comp.kind == "struct":
                if h.size < lay.size:
                    obj["error"] = f"object size {h.size} is below its type's {lay.size} bytes"
                    return obj
                names = self.types.module.field_names.get(idx, {})  # type: ignore[union-attr]
                obj["fields"] = [
                    self._field(i, names.get(i), f, r + off, depth, elements, budget)
                    for i, (f, off) in enumerate(zip(comp.fields, lay.offsets, strict=True))
                ]
            else:
                n = self.u32(r + lay.length_offset)
                f = comp.fields[0]
                obj["length"] = n
                obj["element_type"] = self._type_text(f)
                if lay.elems_offset + n * lay.elem_size > h.size:
                    obj["error"] = f"array length {n} runs past the object's {h.size} bytes"
                    return obj
                shown = min(n, max(0, elements))
                obj["elements"] = [
                    self._value(
                        f, r + lay.elems_offset + i * lay.elem_size, depth, elements, budget
                    )
                    for i in range(shown)
                ]
        except ReadError as e:
            obj["error"] = f"object body unreadable ({e})"
        return obj

    def _why_untyped(self, h: Header) -> str:
        if h.shared_type is None:
            return "no type (externref or untyped object)"
        if self.types is None:
            return self.type_note or "no module: types unknown"
        return f"shared type {h.shared_type} is not one of the module's types"

    def _type_text(self, f: FieldType) -> str:
        mod = self.types.module if self.types else None
        t = describe_storage(mod, f.storage)
        return f"mut {t}" if f.mutable else t

    def _field(
        self,
        i: int,
        name: str | None,
        f: FieldType,
        at: int,
        depth: int,
        elements: int,
        budget: list[int],
    ) -> dict:
        rec = {"index": i, "name": name, "type": self._type_text(f), "offset": at}
        rec.update(self._value(f, at, depth, elements, budget))
        return rec

    def _value(self, f: FieldType, at: int, depth: int, elements: int, budget: list[int]) -> dict:
        s = f.storage
        if s == "i8":
            v = self.read(at, 1)[0]
            return {"value": v - 256 if v & 0x80 else v, "unsigned": v}
        if s == "i16":
            v = int.from_bytes(self.read(at, 2), "little" if self.little else "big")
            return {"value": v - 65536 if v & 0x8000 else v, "unsigned": v}
        e = "<" if self.little else ">"
        if s == "i32":
            v = struct.unpack(e + "i", self.read(at, 4))[0]
            return {"value": v, "unsigned": v & 0xFFFFFFFF}
        if s == "i64":
            v = struct.unpack(e + "q", self.read(at, 8))[0]
            return {"value": v, "unsigned": v & 0xFFFFFFFFFFFFFFFF}
        if s in ("f32", "f64"):
            data = self.read(at, 4 if s == "f32" else 8)
            v = struct.unpack(e + ("f" if s == "f32" else "d"), data)[0]
            bits = int.from_bytes(data, "little" if self.little else "big")
            # JSON has no NaN/infinity: those become text.
            return {"value": v if math.isfinite(v) else repr(v), "bits": bits}
        if s == "v128":
            return {"value": self.read(at, 16).hex()}
        assert isinstance(s, RefType)
        raw = self.u32(at)
        types = self.types.module.types if self.types else []
        if heap_top(types, s.heap) == "func":
            return {"value": "null" if raw == 0 else f"funcref {raw}", "raw": raw}
        ref = decode_gcref(raw)
        out: dict = {"value": _ref_text(ref), "raw": raw, "ref_kind": ref.kind}
        if ref.kind == "heap" and ref.value is not None and depth > 0 and budget[0] > 0:
            out["object"] = self.describe(ref.value, depth - 1, elements, budget)
        return out


def _ref_text(ref: GcRef) -> str:
    """A field's ref value: `null`, `i31 N` or `heap 0x..`."""
    if ref.kind is SlotKind.NULL:
        return "null"
    if ref.kind is SlotKind.I31:
        return f"i31 {ref.value}"
    return f"heap {ref.raw:#x}"
