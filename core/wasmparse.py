"""A minimal WebAssembly binary parser: what a heap inspector needs from a module.

Reads the type section (core/wasmtypes.py), counts imports and defined
functions, memories (and which are shared) and tags, the globals' and
tables' types, and the name section's module, function, type (subsection 4)
and field (subsection 10) names. Everything else is skipped by its section
size. The counts are what Wasmtime's `VMOffsets` needs to place an
instance's globals and tables in its VMContext (core/instroots.py).

The input is untrusted: every count and length is checked against the bytes
really present (core/wasmbinary.py), nesting and totals are bounded, and any
malformation raises WasmParseError with one line saying where.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .wasmbinary import Reader, WasmParseError
from .wasmtypes import (
    ABSTRACT_HEAP,
    MAX_FIELDS,
    MAX_TYPES,
    NUMERIC,
    PACKED,
    CompositeType,
    FieldType,
    RefType,
    StorageType,
    SubType,
    ValType,
    type_section,
    val_type,
)

__all__ = [
    "ABSTRACT_HEAP",
    "NUMERIC",
    "PACKED",
    "CompositeType",
    "FieldType",
    "RefType",
    "StorageType",
    "SubType",
    "TableType",
    "ValType",
    "WasmModule",
    "WasmParseError",
    "parse_module",
]


class TableType(NamedTuple):
    element: RefType
    minimum: int
    maximum: int | None


class WasmModule(NamedTuple):
    types: list[SubType]
    rec_groups: list[tuple[int, int]]  # (first type index, count), in order
    imported_funcs: int
    defined_funcs: int
    func_types: list[int]  # type index of every function (imports first)
    imported_globals: int
    globals: list[tuple[ValType, bool]]  # (type, mutable) of every global (imports first)
    imported_tables: int
    tables: list[TableType]  # every table (imports first)
    imported_memories: int
    memories_shared: list[bool]  # every memory (imports first): shared or not
    imported_tags: int
    module_name: str | None
    func_names: dict[int, str]
    type_names: dict[int, str]
    field_names: dict[int, dict[int, str]]

    @property
    def total_funcs(self) -> int:
        return self.imported_funcs + self.defined_funcs


def _limits(r: Reader) -> tuple[int, int, int | None]:
    """(flags, minimum, maximum or None); flags 2 = shared, 4 = 64-bit, 8 = page size."""
    flags = r.byte()
    if flags & ~0x0F:
        raise r.fail(f"bad limits flags {flags:#x}")
    lo = r.uleb(64)
    hi = r.uleb(64) if flags & 1 else None
    if flags & 8:
        r.uleb()
    return flags, lo, hi


def _table_type(r: Reader) -> TableType:
    t = val_type(r)
    if not isinstance(t, RefType):
        raise r.fail(f"table element type {t} is not a reference type")
    _, lo, hi = _limits(r)
    return TableType(t, lo, hi)


def _import_section(r: Reader, m: dict[str, Any]) -> None:
    for _ in range(r.count(MAX_TYPES, "import")):
        r.name()
        r.name()
        kind = r.byte()
        if kind == 0x00:
            m["func_types"].append(r.uleb())
            m["imported_funcs"] += 1
        elif kind == 0x01:
            m["tables"].append(_table_type(r))
            m["imported_tables"] += 1
        elif kind == 0x02:
            m["memories_shared"].append(bool(_limits(r)[0] & 2))
            m["imported_memories"] += 1
        elif kind == 0x03:
            t = val_type(r)
            m["globals"].append((t, r.byte() == 1))
            m["imported_globals"] += 1
        elif kind == 0x04:
            r.byte()
            r.uleb()
            m["imported_tags"] += 1
        else:
            raise r.fail(f"unknown import kind {kind:#04x}")


UNKNOWN_TABLE = TableType(RefType(True, "unknown"), 0, None)


def _table_section(r: Reader, m: dict[str, Any]) -> None:
    """Every table's type; past an undecodable one the count stays right (it places the
    globals in the VMContext) and the rest are UNKNOWN_TABLE."""
    from .wasmexpr import skip_const_expr

    n = r.count(MAX_TYPES, "table")
    for i in range(n):
        try:
            if r.peek() == 0x40:  # a table with an initializer expression
                r.pos += 1
                if r.byte() != 0:
                    raise r.fail("bad table encoding")
                m["tables"].append(_table_type(r))
                skip_const_expr(r)
            else:
                m["tables"].append(_table_type(r))
        except WasmParseError:
            m["tables"].extend([UNKNOWN_TABLE] * (n - i))
            return


def _memory_section(r: Reader, m: dict[str, Any]) -> None:
    for _ in range(r.count(MAX_TYPES, "memory")):
        m["memories_shared"].append(bool(_limits(r)[0] & 2))


def _name_map(r: Reader, limit: int) -> dict[int, str]:
    out = {}
    for _ in range(r.count(limit, "name map entry")):
        idx = r.uleb()
        out[idx] = r.name()
    return out


def _name_section(r: Reader, m: dict[str, Any]) -> None:
    """Best effort: a malformed subsection ends the name section, not the parse."""
    try:
        while r.pos < r.end:
            sid = r.byte()
            size = r.uleb()
            sub = r.sub(size)
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
    m: dict[str, Any] = {
        "imported_funcs": 0,
        "func_types": [],
        "imported_globals": 0,
        "globals": [],
        "imported_tables": 0,
        "tables": [],
        "imported_memories": 0,
        "memories_shared": [],
        "imported_tags": 0,
        "module_name": None,
        "func_names": {},
        "type_names": {},
        "field_names": {},
    }
    defined = 0
    r = Reader(data, 8)
    while r.pos < r.end:
        sid = r.byte()
        sec = r.sub(r.uleb())
        if sid == 1:
            type_section(sec, types, groups)
        elif sid == 2:
            _import_section(sec, m)
        elif sid == 3:
            n = sec.count(MAX_TYPES * 10, "function")
            m["func_types"].extend(sec.uleb() for _ in range(n))
            defined = n
        elif sid == 4:
            _table_section(sec, m)
        elif sid == 5:
            _memory_section(sec, m)
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
