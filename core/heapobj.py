"""An object's record: header facts, its wasm type, typed fields and array elements.

Decodes what core/heapview.py reads at Wasmtime's layout: packed i8/i16 (signed
and unsigned), i32, i64, f32/f64 (NaN and infinities as text: JSON has none),
v128 as hex, and refs (null / i31 / heap index; funcrefs as their table id),
each ref's object decoded down to a depth, under one budget of objects.
"""

from __future__ import annotations

import math
import struct
from typing import TYPE_CHECKING, Any

from .errors import ReadError
from .gcref import GcRef, SlotKind, decode_gcref
from .gctypes import describe_storage, heap_top
from .wasmparse import FieldType, RefType

if TYPE_CHECKING:
    from .heapview import Header, HeapView

DEFAULT_ELEMENTS = 16


def type_record(view: HeapView, h: Header) -> dict[str, Any] | None:
    t = view.type_of(h.shared_type)
    if t is None or view.types is None:
        return None
    return {"module_index": t[0], "name": view.types.name(t[0])}


def describe(
    view: HeapView,
    r: int,
    depth: int = 1,
    elements: int = DEFAULT_ELEMENTS,
    _budget: list[int] | None = None,
) -> dict:
    """An object record: header facts, its type, fields/elements; refs decoded down to
    `depth` more levels (a shared budget bounds the total)."""
    budget = _budget if _budget is not None else [256]
    budget[0] -= 1
    obj: dict = {"ref": r, "address": view.base + r, "kind": "unknown"}
    try:
        h = view.header(r)
    except ReadError as e:
        obj["error"] = str(e)
        return obj
    obj.update(
        kind=h.kind or f"unknown {h.kind_word:#010x}",
        type_index=h.shared_type,
        size=h.size,
        collector=view.collector,
    )
    if h.forwarded is not None:
        obj["forwarded"] = h.forwarded
    if h.kind is None:  # not an object: its "type" and "size" words mean nothing
        obj.update(type=None, type_index=None, size=None)
        obj["error"] = f"{h.kind_word:#010x} is not a GC object header"
        return obj
    obj["type"] = type_record(view, h)
    if not view.size_ok(h):
        obj["error"] = f"size {h.size} does not fit the {view.collector} layout"
        return obj
    t = view.type_of(h.shared_type)
    if t is None:
        obj["type_note"] = _why_untyped(view, h)
        body = view.hl.size if view.hl else 8
        try:
            obj["payload"] = view.read(r + body, max(0, min(32, (h.size or 0) - body))).hex()
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
            names = view.types.module.field_names.get(idx, {})  # type: ignore[union-attr]
            obj["fields"] = [
                _field(view, i, names.get(i), f, r + off, depth, elements, budget)
                for i, (f, off) in enumerate(zip(comp.fields, lay.offsets, strict=True))
            ]
        else:
            n = view.u32(r + lay.length_offset)
            f = comp.fields[0]
            obj["length"] = n
            obj["element_type"] = _type_text(view, f)
            if lay.elems_offset + n * lay.elem_size > h.size:
                obj["error"] = f"array length {n} runs past the object's {h.size} bytes"
                return obj
            shown = min(n, max(0, elements))
            obj["elements"] = [
                _value(view, f, r + lay.elems_offset + i * lay.elem_size, depth, elements, budget)
                for i in range(shown)
            ]
    except ReadError as e:
        obj["error"] = f"object body unreadable ({e})"
    return obj


def _why_untyped(view: HeapView, h: Header) -> str:
    if h.shared_type is None:
        return "no type (externref or untyped object)"
    if view.types is None:
        return view.type_note or "no module: types unknown"
    return f"shared type {h.shared_type} is not one of the module's types"


def _type_text(view: HeapView, f: FieldType) -> str:
    mod = view.types.module if view.types else None
    t = describe_storage(mod, f.storage)
    return f"mut {t}" if f.mutable else t


def _field(
    view: HeapView,
    i: int,
    name: str | None,
    f: FieldType,
    at: int,
    depth: int,
    elements: int,
    budget: list[int],
) -> dict:
    rec = {"index": i, "name": name, "type": _type_text(view, f), "offset": at}
    rec.update(_value(view, f, at, depth, elements, budget))
    return rec


def _value(
    view: HeapView, f: FieldType, at: int, depth: int, elements: int, budget: list[int]
) -> dict:
    s = f.storage
    if s == "i8":
        v = view.read(at, 1)[0]
        return {"value": v - 256 if v & 0x80 else v, "unsigned": v}
    if s == "i16":
        v = int.from_bytes(view.read(at, 2), "little" if view.little else "big")
        return {"value": v - 65536 if v & 0x8000 else v, "unsigned": v}
    e = "<" if view.little else ">"
    if s == "i32":
        v = struct.unpack(e + "i", view.read(at, 4))[0]
        return {"value": v, "unsigned": v & 0xFFFFFFFF}
    if s == "i64":
        v = struct.unpack(e + "q", view.read(at, 8))[0]
        return {"value": v, "unsigned": v & 0xFFFFFFFFFFFFFFFF}
    if s in ("f32", "f64"):
        data = view.read(at, 4 if s == "f32" else 8)
        v = struct.unpack(e + ("f" if s == "f32" else "d"), data)[0]
        bits = int.from_bytes(data, "little" if view.little else "big")
        # JSON has no NaN/infinity: those become text.
        return {"value": v if math.isfinite(v) else repr(v), "bits": bits}
    if s == "v128":
        return {"value": view.read(at, 16).hex()}
    assert isinstance(s, RefType)
    raw = view.u32(at)
    types = view.types.module.types if view.types else []
    if heap_top(types, s.heap) == "func":
        return {"value": "null" if raw == 0 else f"funcref {raw}", "raw": raw}
    ref = decode_gcref(raw)
    out: dict = {"value": _ref_text(ref), "raw": raw, "ref_kind": ref.kind}
    if ref.kind == "heap" and ref.value is not None and depth > 0 and budget[0] > 0:
        out["object"] = describe(view, ref.value, depth - 1, elements, budget)
    return out


def _ref_text(ref: GcRef) -> str:
    """A field's ref value: `null`, `i31 N` or `heap 0x..`."""
    if ref.kind is SlotKind.NULL:
        return "null"
    if ref.kind is SlotKind.I31:
        return f"i31 {ref.value}"
    return f"heap {ref.raw:#x}"
