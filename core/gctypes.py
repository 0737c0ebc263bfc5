"""Wasm GC types as Wasmtime lays them out: the struct/array layout table and type identity.

Struct layout (Wasmtime `crates/environ/src/gc.rs`, `common_struct_layout`,
the same at every release 32..50): fields in declaration order, each at the
next offset aligned to its own size (i8 1, i16 2, i32/f32/ref 4, i64/f64 8,
v128 16), starting right after the collector's header; the size is rounded
up to the largest alignment (at least the header's). Arrays: a u32 length
right after the header, elements from the next offset aligned to the
element size. Headers per collector (`crates/environ/src/gc/{drc,null,
copying}.rs`) are in GC_HEADERS, keyed by the first major version a row
applies to; the copying collector aligns everything to 16 and has a
minimum object size of 20 (its forwarding ref).

Type identity: an object's header holds a VMSharedTypeIndex (engine-wide).
Each instance's VMContext points at a `type_ids` array mapping the module's
*interned* type indices to shared ones. Wasmtime interns the type section
rec group by rec group (`ModuleTypesBuilder`, `compile/module_types.rs`):
a rec group identical to an earlier one is not interned again, and after
each new rec group every function type whose params/results are not all
nullable top references gets a "trampoline" function type appended (unless
an equal one exists). `interned_map` replays that to map wasm type indices
to interned ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, TypeVar

from .wasmparse import CompositeType, FieldType, RefType, StorageType, SubType, WasmModule


class HeaderLayout(NamedTuple):
    size: int
    align: int
    min_size: int


GC_HEADERS: dict[int, dict[str, HeaderLayout]] = {
    32: {"drc": HeaderLayout(16, 8, 16), "null": HeaderLayout(8, 8, 8)},
    35: {"drc": HeaderLayout(24, 8, 24), "null": HeaderLayout(8, 8, 8)},
    45: {
        "drc": HeaderLayout(24, 8, 24),
        "null": HeaderLayout(8, 8, 8),
        "copying": HeaderLayout(16, 16, 20),
    },
}

# Where the VMContext holds its `type_ids` pointer and the collector's heap data pointer
# (`vmctx_type_ids_array`, `vmctx_gc_heap_data` in vmoffsets.rs / vmctxtypes.rs), 64-bit.
VMCTX_TYPE_IDS: dict[int, int] = {32: 64, 33: 48, 35: 40}
VMCTX_GC_HEAP_DATA: dict[int, int] = {32: 56, 33: 40, 35: 32}


T = TypeVar("T")


def _row(table: dict[int, T], major: int | None) -> T | None:
    if major is None:
        return None
    keys = [k for k in sorted(table) if k <= major]
    return table[keys[-1]] if keys else None


def header_layout(collector: str | None, major: int | None) -> HeaderLayout | None:
    row = _row(GC_HEADERS, major)
    return row.get(collector) if row and collector else None


def type_ids_offset(major: int | None) -> int | None:
    return _row(VMCTX_TYPE_IDS, major)


def gc_heap_data_offset(major: int | None) -> int | None:
    return _row(VMCTX_GC_HEAP_DATA, major)


def storage_size(t: StorageType) -> int:
    if t == "i8":
        return 1
    if t == "i16":
        return 2
    if t in ("i64", "f64"):
        return 8
    if t == "v128":
        return 16
    return 4  # i32, f32, every reference


def _align_up(v: int, a: int) -> int:
    return (v + a - 1) // a * a


class StructLayout(NamedTuple):
    size: int
    offsets: tuple[int, ...]


def struct_layout(fields: tuple[FieldType, ...], hl: HeaderLayout) -> StructLayout:
    size, align = hl.size, hl.align
    offsets = []
    for f in fields:
        n = storage_size(f.storage)
        size = _align_up(size, n)
        align = max(align, n)
        offsets.append(size)
        size += n
    size = _align_up(size, align)
    size = _align_up(max(size, hl.min_size), hl.align)
    return StructLayout(size, tuple(offsets))


class ArrayLayout(NamedTuple):
    length_offset: int
    elems_offset: int
    elem_size: int


def array_layout(elem: FieldType, hl: HeaderLayout) -> ArrayLayout:
    n = storage_size(elem.storage)
    return ArrayLayout(hl.size, _align_up(hl.size + 4, n), n)


# -- references: which heap types are GC refs, their tops ----------------------------------

_TOPS = {
    "any": "any",
    "eq": "any",
    "i31": "any",
    "struct": "any",
    "array": "any",
    "none": "any",
    "func": "func",
    "nofunc": "func",
    "extern": "extern",
    "noextern": "extern",
    "exn": "exn",
    "noexn": "exn",
    "cont": "cont",
    "nocont": "cont",
}


def heap_top(types: list[SubType], heap: str | int) -> str:
    if isinstance(heap, str):
        return _TOPS.get(heap, "any")
    if 0 <= heap < len(types):
        kind = types[heap].composite.kind
        return {"func": "func", "cont": "cont"}.get(kind, "any")
    return "any"


def ref_repr(t: RefType) -> str:
    """How Wasmtime stores a reference of this type in a GC object: "gc" (a VMGcRef,
    also i31), "func" (a u32 func-ref table id), or "other"."""
    return "gc" if t.heap not in ("cont", "nocont") and t.heap != "func" else "other"


# -- interning: wasm type index -> module interned type index ------------------------------


def _trampoline(types: list[SubType], vt: StorageType) -> StorageType:
    if isinstance(vt, RefType):
        return RefType(True, heap_top(types, vt.heap))
    return vt


def interned_map(module: WasmModule) -> tuple[list[int], int]:
    """(interned index of every wasm type index, number of interned types), replaying
    Wasmtime's ModuleTypesBuilder over the type section."""
    types = module.types
    canon: list[tuple] = [()] * len(types)  # wasm index -> (canonical group id, offset)
    seen_groups: dict[tuple, tuple[int, int]] = {}  # group key -> (group id, first interned)
    to_interned = [0] * len(types)
    trampolines: dict[tuple, int] = {}
    count = 0
    for gid, (start, n) in enumerate(module.rec_groups):

        def ref(i: int, start: int = start, n: int = n) -> tuple:
            if start <= i < start + n:
                return ("r", i - start)
            return ("c", canon[i]) if 0 <= i < start else ("x", i)

        key = tuple(_sub_key(types[i], ref) for i in range(start, start + n))
        if key in seen_groups:
            first_gid, first = seen_groups[key]
            for k in range(n):
                canon[start + k] = (first_gid, k)
                to_interned[start + k] = first + k
            continue
        seen_groups[key] = (gid, count)
        for k in range(n):
            canon[start + k] = (gid, k)
            to_interned[start + k] = count + k
        count += n
        for k in range(n):
            comp = types[start + k].composite
            if comp.kind != "func":
                continue
            tp = tuple(_trampoline(types, p) for p in comp.params)
            tr = tuple(_trampoline(types, r) for r in comp.results)
            tkey = (tp, tr)
            if tkey in trampolines:
                continue
            if tp == comp.params and tr == comp.results:
                trampolines[tkey] = start + k
            else:
                trampolines[tkey] = count
                count += 1
    return to_interned, count


def _sub_key(t: SubType, ref: Callable[[int], tuple]) -> tuple:
    def vt(v: StorageType) -> object:
        if isinstance(v, RefType) and isinstance(v.heap, int):
            return ("ref", v.nullable, ref(v.heap))
        return v

    c = t.composite
    return (
        t.final,
        tuple(ref(s) for s in t.supertypes),
        c.kind,
        tuple((vt(f.storage), f.mutable) for f in c.fields),
        tuple(vt(p) for p in c.params),
        tuple(vt(r) for r in c.results),
        ref(c.cont_type) if c.cont_type is not None else None,
    )


# -- subtyping -----------------------------------------------------------------------------


def canonical_ids(module: WasmModule) -> list[int]:
    """Equal numbers for wasm type indices Wasmtime treats as the same type."""
    return interned_map(module)[0]


def is_concrete_subtype(module: WasmModule, canon: list[int], sub: int, sup: int) -> bool:
    """Does type `sub` match type `sup` (declared supertype chain, canonical equality)?"""
    seen = 0
    cur: int | None = sub
    while cur is not None and 0 <= cur < len(module.types) and seen < 10_000:
        if canon[cur] == canon[sup]:
            return True
        supers = module.types[cur].supertypes
        cur = supers[0] if supers else None
        seen += 1
    return False


def kind_matches_abstract(heap: str, obj_kind: str, type_kind: str | None) -> bool:
    """Can an object of header kind `obj_kind` (composite kind `type_kind`) be a value of
    abstract heap type `heap`? (Wasmtime keeps an externalized anyref as the same ref.)"""
    if heap in ("any", "eq"):
        return obj_kind in ("structref", "arrayref", "eqref", "anyref")
    if heap == "struct":
        return obj_kind == "structref"
    if heap == "array":
        return obj_kind == "arrayref"
    if heap == "extern":
        return obj_kind in ("externref", "structref", "arrayref", "eqref", "anyref")
    if heap == "exn":
        return obj_kind == "exnref"
    return False  # i31, none, noextern, noexn: no heap object is one


def describe_storage(module: WasmModule | None, t: StorageType) -> str:
    if isinstance(t, RefType):
        h = t.heap
        if isinstance(h, int):
            name = module.type_names.get(h) if module else None
            h = f"${name}" if name else f"${h}"
        return f"(ref {'null ' if t.nullable else ''}{h})"
    return t


def composite_of(module: WasmModule, idx: int) -> CompositeType | None:
    return module.types[idx].composite if 0 <= idx < len(module.types) else None
