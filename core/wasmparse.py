"""A minimal WebAssembly binary parser: what a heap inspector needs from a module.

Reads the type section (rec groups, subtypes, func/struct/array composite
types), counts imports and defined functions, the globals' types, and the
name section's module, function, type (subsection 4) and field (subsection
10) names. Everything else is skipped by its section size.

The input is untrusted (a file named by the user or found on a command
line): every count and length is checked against the bytes really present,
nesting and totals are bounded, and any malformation raises WasmParseError
with one line saying where.
"""

from __future__ import annotations

from typing import NamedTuple

MAX_TYPES = 1_000_000
MAX_FIELDS = 100_000
MAX_NAME = 4096


class WasmParseError(ValueError):
    pass


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


class WasmModule(NamedTuple):
    types: list[SubType]
    rec_groups: list[tuple[int, int]]  # (first type index, count), in order
    imported_funcs: int
    defined_funcs: int
    func_types: list[int]  # type index of every function (imports first)
    imported_globals: int
    globals: list[tuple[ValType, bool]]  # (type, mutable) of every global (imports first)
    module_name: str | None
    func_names: dict[int, str]
    type_names: dict[int, str]
    field_names: dict[int, dict[int, str]]

    @property
    def total_funcs(self) -> int:
        return self.imported_funcs + self.defined_funcs


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None):
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def fail(self, what: str) -> WasmParseError:
        return WasmParseError(f"{what} at byte offset {self.pos:#x}")

    def byte(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def peek(self) -> int:
        if self.pos >= self.end:
            raise self.fail("unexpected end of data")
        return self.data[self.pos]

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise self.fail(f"{n} bytes wanted, {self.end - self.pos} left")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def uleb(self, bits: int = 32) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= bits + 7:
                raise self.fail("LEB128 number too long")
        if result >= 1 << bits:
            raise self.fail("LEB128 number out of range")
        return result

    def sleb(self, bits: int = 33) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
            if shift >= bits + 7:
                raise self.fail("LEB128 number too long")
        if b & 0x40:
            result -= 1 << shift
        return result

    def count(self, limit: int, what: str) -> int:
        """A vector length: at most one element per byte left, and `limit`."""
        n = self.uleb()
        if n > self.end - self.pos or n > limit:
            raise self.fail(f"{what} count {n} exceeds the data")
        return n

    def name(self) -> str:
        n = self.uleb()
        if n > self.end - self.pos:
            raise self.fail(f"name length {n} exceeds the data")
        raw = self.bytes(n)[:MAX_NAME]
        return raw.decode("utf-8", "replace")


def _heap_type(r: _Reader) -> str | int:
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


def _val_type(r: _Reader) -> ValType:
    b = r.byte()
    if b in NUMERIC:
        return NUMERIC[b]
    if b == 0x64:
        return RefType(False, _heap_type(r))
    if b == 0x63:
        return RefType(True, _heap_type(r))
    if b in ABSTRACT_HEAP:
        return RefType(True, ABSTRACT_HEAP[b])
    r.pos -= 1
    raise r.fail(f"unknown value type {b:#04x}")


def _field_type(r: _Reader) -> FieldType:
    b = r.peek()
    if b in PACKED:
        r.pos += 1
        storage: StorageType = PACKED[b]
    else:
        storage = _val_type(r)
    m = r.byte()
    if m > 1:
        raise r.fail(f"bad mutability {m}")
    return FieldType(storage, m == 1)


def _composite(r: _Reader) -> CompositeType:
    form = r.byte()
    if form == 0x60:
        params = tuple(_val_type(r) for _ in range(r.count(MAX_FIELDS, "param")))
        results = tuple(_val_type(r) for _ in range(r.count(MAX_FIELDS, "result")))
        return CompositeType("func", params=params, results=results)
    if form == 0x5F:
        n = r.count(MAX_FIELDS, "field")
        return CompositeType("struct", fields=tuple(_field_type(r) for _ in range(n)))
    if form == 0x5E:
        return CompositeType("array", fields=(_field_type(r),))
    if form == 0x5D:
        return CompositeType("cont", cont_type=r.uleb())
    r.pos -= 1
    raise r.fail(f"unknown composite type form {form:#04x}")


def _sub_type(r: _Reader) -> SubType:
    b = r.peek()
    if b in (0x50, 0x4F):
        r.pos += 1
        supers = tuple(r.uleb() for _ in range(r.count(16, "supertype")))
        return SubType(b == 0x4F, supers, _composite(r))
    return SubType(True, (), _composite(r))


def _type_section(r: _Reader, types: list[SubType], groups: list[tuple[int, int]]) -> None:
    for _ in range(r.count(MAX_TYPES, "rec group")):
        if r.peek() == 0x4E:
            r.pos += 1
            n = r.count(MAX_TYPES, "rec group member")
            start = len(types)
            for _ in range(n):
                types.append(_sub_type(r))
            groups.append((start, n))
        else:
            groups.append((len(types), 1))
            types.append(_sub_type(r))
        if len(types) > MAX_TYPES:
            raise r.fail("too many types")


def _limits(r: _Reader) -> None:
    flags = r.byte()
    if flags & ~0x0F:
        raise r.fail(f"bad limits flags {flags:#x}")
    r.uleb(64)
    if flags & 1:
        r.uleb(64)
    if flags & 8:
        r.uleb()


def _import_section(r: _Reader, m: dict) -> None:
    for _ in range(r.count(MAX_TYPES, "import")):
        r.name()
        r.name()
        kind = r.byte()
        if kind == 0x00:
            m["func_types"].append(r.uleb())
            m["imported_funcs"] += 1
        elif kind == 0x01:
            _val_type(r)
            _limits(r)
        elif kind == 0x02:
            _limits(r)
        elif kind == 0x03:
            t = _val_type(r)
            m["globals"].append((t, r.byte() == 1))
            m["imported_globals"] += 1
        elif kind == 0x04:
            r.byte()
            r.uleb()
        else:
            raise r.fail(f"unknown import kind {kind:#04x}")


def _name_map(r: _Reader, limit: int) -> dict[int, str]:
    out = {}
    for _ in range(r.count(limit, "name map entry")):
        idx = r.uleb()
        out[idx] = r.name()
    return out


def _name_section(r: _Reader, m: dict) -> None:
    """Best effort: a malformed subsection ends the name section, not the parse."""
    try:
        while r.pos < r.end:
            sid = r.byte()
            size = r.uleb()
            if size > r.end - r.pos:
                return
            sub = _Reader(r.data, r.pos, r.pos + size)
            r.pos += size
            if sid == 0:
                m["module_name"] = sub.name()
            elif sid == 1:
                m["func_names"] = _name_map(sub, MAX_TYPES)
            elif sid == 4:
                m["type_names"] = _name_map(sub, MAX_TYPES)
            elif sid == 10:
                fields: dict[int, dict[int, str]] = {}
                for _ in range(sub.count(MAX_TYPES, "field name entry")):
                    t = sub.uleb()
                    fields[t] = _name_map(sub, MAX_FIELDS)
                m["field_names"] = fields
    except WasmParseError:
        return


def parse_module(data: bytes) -> WasmModule:
    """Parse a core wasm module binary (raises WasmParseError)."""
    if len(data) < 8 or data[:4] != b"\0asm":
        raise WasmParseError("not a WebAssembly binary (no \\0asm magic)")
    if data[4:8] != b"\x01\0\0\0":
        raise WasmParseError(
            f"unsupported WebAssembly binary version {data[4:8].hex()} (a component?)"
        )
    types: list[SubType] = []
    groups: list[tuple[int, int]] = []
    m: dict = {
        "imported_funcs": 0,
        "func_types": [],
        "imported_globals": 0,
        "globals": [],
        "module_name": None,
        "func_names": {},
        "type_names": {},
        "field_names": {},
    }
    defined = 0
    r = _Reader(data, 8)
    while r.pos < r.end:
        sid = r.byte()
        size = r.uleb()
        if size > r.end - r.pos:
            raise r.fail(f"section {sid} size {size} exceeds the data")
        sec = _Reader(data, r.pos, r.pos + size)
        r.pos += size
        if sid == 1:
            _type_section(sec, types, groups)
        elif sid == 2:
            _import_section(sec, m)
        elif sid == 3:
            n = sec.count(MAX_TYPES * 10, "function")
            m["func_types"].extend(sec.uleb() for _ in range(n))
            defined = n
        elif sid == 6:
            from .wasmexpr import global_types

            global_types(sec, m)
        elif sid == 0:
            name = sec.name()
            if name == "name":
                _name_section(sec, m)
    for i, t in enumerate(m["func_types"]):
        if t >= len(types):
            raise WasmParseError(f"function {i} has type {t}, past the {len(types)} types")
    return WasmModule(types, groups, defined_funcs=defined, **m)
