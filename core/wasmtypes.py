"""WebAssembly value, storage and composite types, and their binary decoders.

What a heap inspector needs of the type section: rec groups, subtypes and
func/struct/array/cont composite types (core/wasmparse.py reads the module
around them; core/gctypes.py lays them out as Wasmtime does).
"""

from __future__ import annotations

from typing import NamedTuple

from .wasmbinary import Reader

MAX_TYPES = 1_000_000
MAX_FIELDS = 100_000

# Abstract heap types by their one-byte encoding (also the shorthand ref types).
ABSTRACT_HEAP = {
    0x70: "func",
    0x6F: "extern",
    0x6E: "any",
    0x6D: "eq",
    0x6C: "i31",
    0x6B: "struct",
    0x6A: "array",
    0x69: "exn",
    0x68: "cont",
    0x71: "none",
    0x72: "noextern",
    0x73: "nofunc",
    0x74: "noexn",
    0x75: "nocont",
}
NUMERIC = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128"}
PACKED = {0x78: "i8", 0x77: "i16"}


class RefType(NamedTuple):
    nullable: bool
    heap: str | int  # an abstract heap type name, or a concrete type index

    def __str__(self) -> str:
        h = f"${self.heap}" if isinstance(self.heap, int) else self.heap
        return f"(ref {'null ' if self.nullable else ''}{h})"


ValType = str | RefType  # "i32" | "i64" | "f32" | "f64" | "v128" | RefType
StorageType = str | RefType  # ValType or "i8" | "i16"


class FieldType(NamedTuple):
    storage: StorageType
    mutable: bool


class CompositeType(NamedTuple):
    kind: str  # "func" | "struct" | "array" | "cont"
    fields: tuple[FieldType, ...] = ()  # struct fields; an array's one element type
    params: tuple[ValType, ...] = ()
    results: tuple[ValType, ...] = ()
    cont_type: int | None = None


class SubType(NamedTuple):
    final: bool
    supertypes: tuple[int, ...]
    composite: CompositeType


def heap_type(r: Reader) -> str | int:
    b = r.peek()
    if b in ABSTRACT_HEAP:
        r.pos += 1
        return ABSTRACT_HEAP[b]
    if b == 0x65:
        raise r.fail("shared heap types are not supported")
    v = r.sleb()
    if v < 0:
        raise r.fail(f"unknown heap type {v}")
    return v


def val_type(r: Reader) -> ValType:
    b = r.byte()
    if b in NUMERIC:
        return NUMERIC[b]
    if b == 0x64:
        return RefType(False, heap_type(r))
    if b == 0x63:
        return RefType(True, heap_type(r))
    if b in ABSTRACT_HEAP:
        return RefType(True, ABSTRACT_HEAP[b])
    r.pos -= 1
    raise r.fail(f"unknown value type {b:#04x}")


def field_type(r: Reader) -> FieldType:
    b = r.peek()
    if b in PACKED:
        r.pos += 1
        storage: StorageType = PACKED[b]
    else:
        storage = val_type(r)
    m = r.byte()
    if m > 1:
        raise r.fail(f"bad mutability {m}")
    return FieldType(storage, m == 1)


def composite(r: Reader) -> CompositeType:
    form = r.byte()
    if form == 0x60:
        params = tuple(val_type(r) for _ in range(r.count(MAX_FIELDS, "param")))
        results = tuple(val_type(r) for _ in range(r.count(MAX_FIELDS, "result")))
        return CompositeType("func", params=params, results=results)
    if form == 0x5F:
        n = r.count(MAX_FIELDS, "field")
        return CompositeType("struct", fields=tuple(field_type(r) for _ in range(n)))
    if form == 0x5E:
        return CompositeType("array", fields=(field_type(r),))
    if form == 0x5D:
        return CompositeType("cont", cont_type=r.uleb())
    r.pos -= 1
    raise r.fail(f"unknown composite type form {form:#04x}")


def sub_type(r: Reader) -> SubType:
    b = r.peek()
    if b in (0x50, 0x4F):
        r.pos += 1
        supers = tuple(r.uleb() for _ in range(r.count(16, "supertype")))
        return SubType(b == 0x4F, supers, composite(r))
    return SubType(True, (), composite(r))


def type_section(r: Reader, types: list[SubType], groups: list[tuple[int, int]]) -> None:
    for _ in range(r.count(MAX_TYPES, "rec group")):
        if r.peek() == 0x4E:
            r.pos += 1
            n = r.count(MAX_TYPES, "rec group member")
            start = len(types)
            for _ in range(n):
                types.append(sub_type(r))
            groups.append((start, n))
        else:
            groups.append((len(types), 1))
            types.append(sub_type(r))
        if len(types) > MAX_TYPES:
            raise r.fail("too many types")
