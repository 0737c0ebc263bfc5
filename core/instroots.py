"""GC roots an instance holds in its VMContext: globals and tables of GC reference type.

Wasmtime's `VMOffsets` (`crates/environ/src/vmoffsets.rs`, from 48 on
`vmctxtypes.rs`/`vmtypes.rs`) places, after the VMContext's fixed fields
(they end right after the `type_ids` pointer), arrays sized by the module:
imported memories, defined memory pointers, owned (defined, not shared)
memories, imported functions, imported tables, imported globals, imported
tags, defined tables (`VMTableDefinition {base, current_elements}`), then,
aligned to 16, the defined globals (`VMGlobalDefinition`, 16 bytes each).
The order is the same from 32 to 50; the sizes of the import records
changed (VMLAYOUTS, 64-bit hosts). A global of GC reference type keeps a
32-bit `VMGcRef` (0: null) in the first bytes of its 16-byte storage; a
table of GC references holds one 32-bit `VMGcRef` per element (funcref and
continuation tables hold other things: they are not GC roots). An imported
global or table record starts with a pointer to the exporter's definition.

The layout is checked before use: every defined table's `current_elements`
lies within its declared limits and its base is readable, and the type-ids
array fits the module (core/typemap.py); otherwise the instance's globals
and tables are not read, and the notes say so.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import NamedTuple

from .errors import ReadError
from .gctypes import heap_top, type_ids_offset
from .heapgraph import Root
from .modfind import LoadedModule
from .typemap import read_type_map
from .wasmparse import RefType, WasmModule

Read = Callable[[int, int], bytes]

MAX_TABLE_READ = 1 << 20  # elements read per table (4 MiB)
MAX_ELEMENTS_TOTAL = 1 << 22  # elements read over all tables of a store
GC_TOPS = ("any", "extern", "exn")  # reference hierarchies whose values are VMGcRefs


class VmctxLayout(NamedTuple):
    """Sizes of the VMContext's per-module records on a 64-bit host."""

    memory_import: int
    function_import: int
    table_import: int
    global_import: int
    tag_import: int


MEMORY_POINTER = 8
MEMORY_DEFINITION = 16
TABLE_DEFINITION = 16
GLOBAL_DEFINITION = 16

# Keyed by the first major version a row applies to (vmoffsets.rs `size_of_vm*_import`,
# from 48 the `vm_*_import()` sizes of the repr(C) structs in vmtypes.rs).
VMLAYOUTS: dict[int, VmctxLayout] = {
    32: VmctxLayout(24, 24, 16, 8, 8),
    34: VmctxLayout(24, 24, 24, 24, 24),  # VMTableImport gains `index`, VMGlobalImport `kind`
    45: VmctxLayout(24, 32, 24, 24, 24),  # VMFunctionImport gains `type_index`
}


class Offsets(NamedTuple):
    imported_tables: int
    imported_globals: int
    tables: int
    globals: int
    memories: int  # the defined memory pointers
    owned_memories: int
    table_import: int  # record sizes
    global_import: int


def vmctx_offsets(module: WasmModule, major: int | None) -> Offsets | None:
    """Where the module's records sit in its instances' VMContexts (None: version unknown)."""
    ids = type_ids_offset(major)
    rows = [k for k in sorted(VMLAYOUTS) if major is not None and k <= major]
    if ids is None or not rows:
        return None
    lay = VMLAYOUTS[rows[-1]]
    defined_mem = module.memories_shared[module.imported_memories :]
    off = ids + 8 + module.imported_memories * lay.memory_import
    memories = off
    off += len(defined_mem) * MEMORY_POINTER
    owned = off
    off += sum(not s for s in defined_mem) * MEMORY_DEFINITION
    off += module.imported_funcs * lay.function_import
    imp_tables = off
    off += module.imported_tables * lay.table_import
    imp_globals = off
    off += module.imported_globals * lay.global_import + module.imported_tags * lay.tag_import
    tables = off
    off += (len(module.tables) - module.imported_tables) * TABLE_DEFINITION
    globals = (off + 15) // 16 * 16
    return Offsets(
        imp_tables,
        imp_globals,
        tables,
        globals,
        memories,
        owned,
        lay.table_import,
        lay.global_import,
    )


def is_gc_root_type(module: WasmModule, t: object) -> bool:
    return (
        isinstance(t, RefType) and t.heap != "unknown" and heap_top(module.types, t.heap) in GC_TOPS
    )


class InstanceRoots(NamedTuple):
    roots: list[Root]
    globals_read: int  # GC-typed globals read
    tables_read: int  # GC-typed tables read
    elements: int  # table elements read
    notes: list[str]


class _Mem:
    def __init__(self, read: Read, little: bool):
        self.read = read
        self.e = "<" if little else ">"

    def u64(self, addr: int) -> int:
        return int(struct.unpack(self.e + "Q", self.read(addr, 8))[0])

    def u32s(self, addr: int, n: int) -> tuple[int, ...]:
        data = self.read(addr, 4 * n)
        return struct.unpack(self.e + f"{len(data) // 4}I", data[: len(data) // 4 * 4])


def check_layout(read: Read, vmctx: int, module: WasmModule, off: Offsets, little: bool) -> str:
    """Why the module's layout does not fit this VMContext ('' when it does)."""
    mem = _Mem(read, little)
    try:
        defined = module.memories_shared[module.imported_memories :]
        j = 0
        for i, shared in enumerate(defined):
            if shared:
                continue
            # An owned memory's pointer points at its definition inside the same VMContext.
            want = vmctx + off.owned_memories + j * MEMORY_DEFINITION
            if mem.u64(vmctx + off.memories + i * MEMORY_POINTER) != want:
                return f"defined memory {i}'s pointer is not its definition in the VMContext"
            j += 1
        for i, tt in enumerate(module.tables[module.imported_tables :]):
            at = vmctx + off.tables + i * TABLE_DEFINITION
            base, n = mem.u64(at), mem.u64(at + 8)
            if n < tt.minimum or (tt.maximum is not None and n > tt.maximum):
                return (
                    f"defined table {module.imported_tables + i} has {n} elements, outside "
                    f"its limits {tt.minimum}..{tt.maximum if tt.maximum is not None else ''}"
                )
            if n:
                read(base, 4)
    except ReadError as e:
        return f"the VMContext's records are unreadable ({e})"
    return ""


def _definition(
    mem: _Mem,
    vmctx: int,
    i: int,
    imported: int,
    imports_at: int,
    import_size: int,
    defined_at: int,
    definition_size: int,
) -> int:
    """The address of global/table `i`'s definition: in the VMContext when the instance
    defines it, else where its import record (first field: `from`) points."""
    if i < imported:
        return mem.u64(vmctx + imports_at + i * import_size)
    return vmctx + defined_at + (i - imported) * definition_size


def read_instance_roots(
    read: Read,
    vmctx: int,
    module: WasmModule,
    off: Offsets,
    little: bool,
    label: str,
    seen: set[int],
    budget: list[int],
) -> InstanceRoots:
    """The GC refs of the instance's globals and tables (defined ones, and imported ones
    through their records' pointers); `seen` holds definitions already read (an imported
    global is also its exporter's defined one); `budget` bounds the table elements."""
    mem = _Mem(read, little)
    roots: list[Root] = []
    notes: list[str] = []
    g_read = t_read = elements = 0
    for i, (t, _mut) in enumerate(module.globals):
        if not is_gc_root_type(module, t):
            continue
        assert isinstance(t, RefType)
        try:
            at = _definition(
                mem,
                vmctx,
                i,
                module.imported_globals,
                off.imported_globals,
                off.global_import,
                off.globals,
                GLOBAL_DEFINITION,
            )
            if at in seen:
                continue
            seen.add(at)
            (raw,) = mem.u32s(at, 1)
        except ReadError as e:
            notes.append(f"{label}global {i}: unreadable ({e})")
            continue
        g_read += 1
        if raw and not raw & 1:
            roots.append(Root(f"{label}global {i}", raw, t, at))
    for i, tt in enumerate(module.tables):
        if not is_gc_root_type(module, tt.element):
            continue
        try:
            at = _definition(
                mem,
                vmctx,
                i,
                module.imported_tables,
                off.imported_tables,
                off.table_import,
                off.tables,
                TABLE_DEFINITION,
            )
            if at in seen:
                continue
            seen.add(at)
            base, n = mem.u64(at), mem.u64(at + 8)
            take = min(n, MAX_TABLE_READ, max(0, budget[0]))
            if take < n:
                notes.append(f"{label}table {i}: {take} of its {n} elements read")
            values = mem.u32s(base, take) if take else ()
        except ReadError as e:
            notes.append(f"{label}table {i}: unreadable ({e})")
            continue
        budget[0] -= len(values)
        t_read += 1
        elements += len(values)
        roots += [
            Root(f"{label}table {i}[{k}]", raw, tt.element, base + 4 * k)
            for k, raw in enumerate(values)
            if raw and not raw & 1
        ]
    return InstanceRoots(roots, g_read, t_read, elements, notes)


def _fit(
    read: Read, vmctx: int, modules: list[LoadedModule], major: int | None, little: bool
) -> tuple[LoadedModule, Offsets] | str:
    """The first module whose type-ids and records fit the VMContext, or why none does."""
    why = []
    for lm in modules:
        off = vmctx_offsets(lm.module, major)
        if off is None:
            return f"Wasmtime {major} is not covered by the VMContext layout table"
        tm, bad = read_type_map(read, vmctx, major, lm.module, lm.path, little)
        bad = bad if tm is None else check_layout(read, vmctx, lm.module, off, little)
        if not bad:
            return lm, off
        why.append(f"{lm.path}: {bad.split(' (', 1)[0]}")  # the reason, without detail
    return "no module fits it (" + "; ".join(why[:2]) + ")"


def store_roots(
    read: Read,
    vmctxs: Iterable[int],
    modules: list[LoadedModule],
    major: int | None,
    little: bool,
) -> tuple[list[Root], list[str], list[str]]:
    """(roots, root sets read, notes) from the globals and tables of every instance found."""
    vmctxs = list(vmctxs)
    if not modules:
        return [], [], ["globals, tables not read: no module to place them in the VMContext"]
    if not vmctxs:
        return [], [], ["globals, tables not read: no instance (VMContext) of the store found"]
    roots: list[Root] = []
    read_sets: list[str] = []
    notes: list[str] = []
    seen: set[int] = set()
    budget = [MAX_ELEMENTS_TOTAL]
    fits = []
    for vmctx in vmctxs:
        fit = _fit(read, vmctx, modules, major, little)
        if isinstance(fit, str):
            notes.append(f"globals, tables of vmctx {vmctx:#x} not read: {fit}")
        else:
            fits.append((vmctx, *fit))
    for vmctx, lm, off in fits:
        label = f"vmctx {vmctx:#x} " if len(fits) > 1 else ""  # which instance, when several
        got = read_instance_roots(read, vmctx, lm.module, off, little, label, seen, budget)
        roots += got.roots
        notes += got.notes
        read_sets.append(
            f"globals, tables of vmctx {vmctx:#x} ({lm.path}): {got.globals_read} GC "
            f"global(s), {got.tables_read} GC table(s) with {got.elements} element(s)"
        )
    return roots, read_sets, notes
