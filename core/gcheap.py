"""The store's GC heap: find it in a stopped process and decode the objects live refs point at.

A live heap `VMGcRef` in a stack slot is a byte index into the GC heap of the
store the frame runs in (docs/format.md §3, §6). The code image does not say where
that heap is; the runtime's data structures do:

    VMContext (magic b"core"; a component's b"comp")
      +8 (core) / +16 (component)  -> VMStoreContext
        + HEAP_FIELD               -> gc_heap { base: u64, current_length: u64 }

Which store an activation runs in is established by core/stores.py from the
runtime's own records (the store context's last exit/entry records, or those
saved for a nested call), never assumed: stores of the same module lay objects
out alike, so a ref that validates in some heap proves nothing. core/heapfind.py
reads that store's heap (this module's table and reader) and checks it:

  - the heap must be sane (base 8-aligned, 0 < length < 1 TiB; base 1 and
    length 0 = the store has not allocated its heap yet);
  - every heap ref of the activation must be below the heap length and the
    header at `base + ref` must carry a known kind (externref, anyref, eqref,
    arrayref, structref, exnref) under the version's kind mask. A store proven
    by its records whose heap does not explain the refs is reported as such.
  - The collector is not recorded anywhere a debugger can read cheaply, so
    it is inferred: the version's collectors are tried, the `wasmtime`
    crate's default first (copying from 46 on, DRC before; null last), and
    the first one that gives every object a sane size (>= its header,
    aligned, inside the heap; one size for all structs of one type) is used.
    Embedders differ (docs/format.md §7, §10).

Offsets come from ONE table, `LAYOUTS`, keyed by the first Wasmtime major
version a row applies to (the image's `.wasmtime.engine` version). The rows,
the Wasmtime source each was read from, and what real embedders showed:
docs/format.md §6, §7, §10. Versions before 32 are not covered; versions after
the last row use it, and the validation above refuses a wrong guess.

What is found (core/report.py alone turns it into report records):
  - each heap slot's object, a `GcObject`: kind, type index (Wasmtime's
    engine-wide VMSharedTypeIndex, None for "no type" 0xFFFFFFFF), size,
    length (arrays), the collector's header bytes, the first payload bytes
    after it (the array length excluded), collector, address, the reference
    count (DRC), and whether the header says the object was already copied
    (copying) and where to;
  - each activation's `HeapFinding`: the heap (base, length, store context,
    what established the store, vmctx and where it was found, collector) or
    why it was not located (with the candidate store contexts, when several
    explain the refs equally and nothing decides);
  - frames with heap refs get a note: where the heap is, or
    "GC heap not located: <why>" / "heap ambiguous: <candidates>".
The heap can move when it grows or after a copying collection: nothing is
cached between commands.
"""

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .abi import ADDRESS_LIMIT, KIND_STRUCTREF, MAX_TYPE_INDEX, NO_TYPE
from .abi import GC_KINDS as KINDS
from .errors import ReadError
from .target import MemoryCache, Target

# -- the one versioned table ------------------------------------------------------------


class Layout(NamedTuple):
    heap_in: str  # "store": gc_heap in the VMStoreContext; "vmctx": in the VMContext (32)
    heap_offset: int  # offset of gc_heap.base (current_length follows at +8)
    kind_mask: int
    collectors: tuple[str, ...]  # the default first
    drc_header: int  # DRC header size
    drc_size_in_header: bool  # the DRC header ends with the object's size (u32), 35+


# Key: first Wasmtime major version the row applies to (until the next key).
LAYOUTS: dict[int, Layout] = {
    32: Layout("vmctx", 40, 0xF8000000, ("drc", "null"), 16, False),
    33: Layout("store", 24, 0xF8000000, ("drc", "null"), 16, False),
    35: Layout("store", 24, 0xF8000000, ("drc", "null"), 24, True),
    36: Layout("store", 24, 0xFC000000, ("drc", "null"), 24, True),
    43: Layout("store", 32, 0xFC000000, ("drc", "null"), 24, True),
    45: Layout("store", 32, 0xFC000000, ("drc", "copying", "null"), 24, True),
    46: Layout("store", 32, 0xFC000000, ("copying", "drc", "null"), 24, True),
}
# Fixed across the table: where the store context pointer sits in a VMContext.
VMCTX_STORE_OFFSET = {b"core": 8, b"comp": 16}  # the same as runtime.VMCTX_STORE_OFFSET

COPYING_HEADER = 16
COPYING_MIN_SIZE = 20
NULL_HEADER = 8
MAX_HEAP = 1 << 40
PAYLOAD_BYTES = 32
OBJECT_READ = 64  # largest header (24) + array length (4) + payload (32), rounded up


def layout_for(major: int | None) -> tuple[Layout | None, int | None]:
    """(row, its key) for a Wasmtime major version, or (None, None) when not covered."""
    if major is None:
        return None, None
    keys = [k for k in sorted(LAYOUTS) if k <= major]
    if not keys:
        return None, None
    return LAYOUTS[keys[-1]], keys[-1]


# -- results ------------------------------------------------------------------------------


class Heap(NamedTuple):
    base: int
    length: int
    vmctx: int | None
    store_context: int
    found_at: int | None  # stack address holding the vmctx pointer (None: not from a vmctx)
    found_in: str | None  # "wasm frames" | "thread stack" | None
    major: int
    layout: Layout
    tie: str = ""  # what established the store


class HeapFinding(NamedTuple):
    """What was found about one activation's GC heap (core/report.py makes its record)."""

    located: bool | None  # None: no live heap refs, only the store it runs in
    note: str | None = None  # why it was not located
    heap: Heap | None = None  # located: the heap its refs were checked against
    collector: str | None = None
    layout_from: int | None = None  # the LAYOUTS row used
    vmctx: int | None = None
    store_context: int | None = None  # the store established for it (also when not located)
    tie: str | None = None  # how that store was established
    tie_by_records: bool | None = None  # by the runtime's own records (not by its heap)
    ambiguous: tuple[int, ...] | None = None  # store contexts that each fit equally


@dataclass
class GcObject:
    """The GC object a live heap ref points at, as far as it could be decoded
    (core/report.py makes its `object` record)."""

    address: int
    collector: str | None
    kind: str = "unknown"  # a GC_KINDS name, or "unknown 0x........" (the header word)
    type_index: int | None = None  # None: "no type"
    size: int | None = None  # None: not decoded (no collector, or an insane size)
    length: int | None = None  # arrays
    header: bytes | None = None  # the collector's header as read
    payload: bytes | None = None  # up to PAYLOAD_BYTES after the header; None: not decoded
    error: str | None = None  # why it could not be decoded
    copied: bool = False  # copying: the header says the object was already copied ...
    forwarded: int | None = None  # ... to this ref (None: unreadable)
    ref_count: int | None = None  # DRC
    # The heap inspector's typed description ("type", "fields"/"element_type" or
    # "type_note"), added by core/heapctx.py when the module is known.
    typed: dict[str, Any] | None = None


class HeapReport:
    """What `annotate` found, keyed by thread, frame level and slot (core/report.py adds it
    to the report records)."""

    def __init__(self) -> None:
        # (thread, level, offset) -> the object its heap ref points at
        self.objects: dict[tuple[int, int, int], GcObject] = {}
        self.frame_notes: dict[tuple[int, int], str] = {}  # (thread, level) -> note
        # (thread, activation) -> what was found about its heap
        self.activations: dict[tuple[int, int], HeapFinding] = {}
        self.heaps: dict[tuple[int, int], Heap] = {}  # (thread, activation) -> located heap
        self.finder: _Finder | None = None

    def heap_for(self, thread: int, activation: int) -> Heap | None:
        """The activation's own heap (None when it was not located: never another's)."""
        return self.heaps.get((thread, activation))

    def is_object(self, heap: Heap, r: int) -> str | None:
        """The kind of the GC object at heap index r, or None if r does not point at one."""
        if r == 0 or r % 8 or r + 8 > heap.length or self.finder is None:
            return None
        try:
            head = self.finder.object_bytes(heap.base, r, heap.length)
        except ReadError:
            return None
        kind = KINDS.get(self.finder.u32(head, 0) & heap.layout.kind_mask)
        ty = self.finder.u32(head, 4)
        return kind if kind and (ty == NO_TYPE or ty < MAX_TYPE_INDEX) else None


# -- reading and checking a heap ------------------------------------------------------------


class _Finder:
    def __init__(self, target: Target, mem: MemoryCache, regions: object = None):
        self.mem = mem  # (regions: accepted for callers of the older signature, unused)
        self._objects: dict[int, bytes] = {}
        self._u32: Callable[[bytes, int], tuple[int]] = struct.Struct(
            mem.order.prefix + "I"
        ).unpack_from
        self._u64: Callable[[bytes, int], tuple[int]] = struct.Struct(
            mem.order.prefix + "Q"
        ).unpack_from

    def object_bytes(self, base: int, r: int, length: int) -> bytes:
        """Up to OBJECT_READ bytes of the object at heap index r (ReadError if unreadable)."""
        addr = base + r
        data = self._objects.get(addr)
        if data is None:
            data = self._objects[addr] = self.mem.read(addr, max(0, min(OBJECT_READ, length - r)))
        return data

    def u32(self, b: bytes, off: int) -> int:
        return self._u32(b, off)[0]

    def u64(self, b: bytes, off: int) -> int:
        return self._u64(b, off)[0]

    def heap_bounds(self, store: int, vmctx: int | None, layout: Layout) -> tuple[int, int]:
        """(base, length) of the store's gc_heap (in the vmctx in 32); ReadError."""
        if layout.heap_in == "vmctx":
            if vmctx is None:
                raise ReadError("no vmctx of this store to read its heap from (Wasmtime 32)", 0)
            hb = self.mem.read(vmctx + layout.heap_offset, 16)
        else:
            hb = self.mem.read(store + layout.heap_offset, 16)
        return self.u64(hb, 0), self.u64(hb, 8)


class _Check(NamedTuple):
    ok: bool
    valid: int  # refs explained
    why: str | None


def _check_heap(f: _Finder, base: int, length: int, refs: list[int], layout: Layout) -> _Check:
    if base == 1 and length == 0:
        return _Check(False, 0, "the store has not allocated its GC heap yet (base 1, length 0)")
    if base % 8 or not 0 < length < MAX_HEAP or base + length >= ADDRESS_LIMIT:
        return _Check(False, 0, f"implausible gc_heap {{base {base:#x}, length {length:#x}}}")
    valid = 0
    why = None
    for r in refs:
        if r + 8 > length:
            why = why or f"ref {r:#x} is past the heap length {length:#x}"
            continue
        try:
            kind = f.u32(f.object_bytes(base, r, length), 0)
        except ReadError:
            why = why or f"header of ref {r:#x} at {base + r:#x} is unreadable"
            continue
        if kind & layout.kind_mask not in KINDS:
            why = why or f"ref {r:#x}: {kind:#010x} is not a GC object header"
            continue
        valid += 1
    return _Check(valid == len(refs), valid, why)


# -- decoding objects ---------------------------------------------------------------------


def _sizes(
    f: _Finder, collector: str, r: int, head: bytes, length: int, layout: Layout
) -> tuple[int | None, int, str | None]:
    """(object size or None, header size, why the size is not sane)."""
    kind = f.u32(head, 0)
    low = kind & ~layout.kind_mask & 0xFFFFFFFF
    # Object sizes: the copying collector rounds them to 16; DRC and null record the
    # layout's size as is (an array of 3 i8 under DRC: 24 + 4 + 3 = 31 bytes).
    if collector == "copying":
        hs, size, align = COPYING_HEADER, f.u32(head, 8), 16
        minimum, size_align = COPYING_MIN_SIZE, 16
    elif collector == "drc":
        hs, align = layout.drc_header, 8
        size = f.u32(head, hs - 4) if layout.drc_size_in_header else low
        minimum, size_align = hs, 1
    else:
        hs, size, align, minimum, size_align = NULL_HEADER, low, 8, NULL_HEADER, 1
    if size < minimum or size % size_align or r % align or r + size > length:
        return None, hs, f"size {size:#x} at ref {r:#x} does not fit the {collector} layout"
    return size, hs, None


def _choose_collector(f: _Finder, heap: Heap, heads: dict[int, bytes]) -> str | None:
    """The first of the version's collectors (default first) that gives every object a
    sane size, and one size to all structs of one type (a struct's size is its type's)."""
    lay = heap.layout
    for c in lay.collectors:
        by_type: dict[int, set[int]] = {}
        ok = True
        for r, h in heads.items():
            size = _sizes(f, c, r, h, heap.length, lay)[0]
            if size is None:
                ok = False
                break
            if f.u32(h, 0) & lay.kind_mask == KIND_STRUCTREF:
                by_type.setdefault(f.u32(h, 4), set()).add(size)
        if ok and all(len(sizes) == 1 for sizes in by_type.values()):
            return c
    return None


def decode_object(f: _Finder, heap: Heap, r: int, collector: str | None) -> GcObject:
    lay = heap.layout
    obj = GcObject(heap.base + r, collector)
    try:
        head = f.object_bytes(heap.base, r, heap.length)
    except ReadError as e:
        obj.error = f"object header unreadable ({e})"
        return obj
    kind = f.u32(head, 0)
    obj.kind = KINDS.get(kind & lay.kind_mask, f"unknown {kind:#010x}")
    ty = f.u32(head, 4)
    obj.type_index = None if ty == NO_TYPE else ty
    if collector is None or len(head) < 24:
        obj.header = head[:8]
        return obj
    size, hs, why = _sizes(f, collector, r, head, heap.length, lay)
    obj.header = head[:hs]
    if why or size is None:
        obj.error = why
        return obj
    obj.size = size
    if collector == "copying" and kind & 1:
        obj.copied = True
        obj.forwarded = f.u32(head, COPYING_HEADER) if len(head) >= 20 else None
    if collector == "drc" and lay.drc_size_in_header:
        obj.ref_count = f.u64(head, 8)
    body = hs
    if obj.kind == "arrayref" and size >= hs + 4:
        obj.length = f.u32(head, hs)
        body = hs + 4
    obj.payload = head[body : min(size, body + PAYLOAD_BYTES)]
    return obj
