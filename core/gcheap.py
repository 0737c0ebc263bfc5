"""The store's GC heap: find it in a stopped process and decode the objects live refs point at.

A live heap `VMGcRef` in a stack slot is a byte index into the GC heap of the
store the frame runs in (docs/format.md §3, §6). The code image does not say where
that heap is; the runtime's data structures do:

    VMContext (magic b"core"; a component's b"comp")
      +8 (core) / +16 (component)  -> VMStoreContext
        + HEAP_FIELD               -> gc_heap { base: u64, current_length: u64 }

How the heap is located (for each wasm activation that has heap refs):
  1. Candidate VMContext pointers are the 8-aligned words of the activation's
     own stack memory: from the thread's SP (innermost activation) or 4 KiB
     below the innermost wasm frame's FP, up to 1 KiB above the outermost
     frame's FP (the entry trampoline and the host frames that called it).
     Wasm functions keep their vmctx argument in a callee-saved register or a
     spill slot across calls, so the saved-register areas of these frames hold
     it. If none is found there, the thread's stack from SP up (256 KiB at
     most) is scanned the same way.
  2. A candidate must point into readable, writable, non-executable memory
     (when the debugger knows the memory map), start with the magic, and lead
     to a store context whose gc_heap {base, length} is sane (base 8-aligned,
     0 < length < 1 TiB).
  3. Strong validation: every heap ref of the activation must be below the
     heap length and the header at `base + ref` must carry a known kind
     (externref, anyref, eqref, arrayref, structref, exnref) under the
     version's kind mask. The first candidate that explains every ref wins;
     a store context found once is tried first for the other activations.
  4. The collector is not recorded anywhere a debugger can read cheaply, so
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

What is shown:
  - each heap slot gets an `object` dict: kind, type_index (Wasmtime's
    engine-wide VMSharedTypeIndex, None for "no type" 0xFFFFFFFF), size,
    length (arrays), header (raw hex of the collector's header), payload (hex
    of the first bytes after it, the array length excluded), collector,
    address, `ref_count` (DRC), and `forwarded` (copying: the header says the
    object was already copied, the value is the forwarding ref);
  - each activation gets a `heap` dict (base, length, vmctx, store_context,
    where the vmctx was found, collector) or {"located": False, "note": ...};
  - frames with heap refs get a `heap_note`: where the heap is, or
    "GC heap not located: <why>" (no candidate vmctx, the store has no heap
    yet, no candidate whose heap explains every ref, version not covered).
The heap can move when it grows or after a copying collection: nothing is
cached between commands.
"""

import struct
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .errors import ReadError, StackMapsError
from .target import MemoryCache, Region, Target

# -- the one versioned table ------------------------------------------------------------


class Layout(NamedTuple):
    heap_in: str  # "store": gc_heap in the VMStoreContext; "vmctx": in the VMContext (32)
    heap_offset: int  # offset of gc_heap.base (current_length follows at +8)
    kind_mask: int
    collectors: tuple[str, ...]  # the default first
    drc_header: int  # DRC header size (its object_size is the last u32 of it, 35+)


# Key: first Wasmtime major version the row applies to (until the next key).
LAYOUTS: dict[int, Layout] = {
    32: Layout("vmctx", 40, 0xF8000000, ("drc", "null"), 16),
    33: Layout("store", 24, 0xF8000000, ("drc", "null"), 16),
    35: Layout("store", 24, 0xF8000000, ("drc", "null"), 24),
    36: Layout("store", 24, 0xFC000000, ("drc", "null"), 24),
    43: Layout("store", 32, 0xFC000000, ("drc", "null"), 24),
    45: Layout("store", 32, 0xFC000000, ("drc", "copying", "null"), 24),
    46: Layout("store", 32, 0xFC000000, ("copying", "drc", "null"), 24),
}
# Fixed across the table: where the store context pointer sits in a VMContext.
VMCTX_STORE_OFFSET = {b"core": 8, b"comp": 16}

KINDS = {
    0x40000000: "externref",
    0x80000000: "anyref",
    0xA0000000: "eqref",
    0xA8000000: "arrayref",
    0xB0000000: "structref",
    0x04000000: "exnref",
}
NO_TYPE = 0xFFFFFFFF
COPYING_HEADER = 16
COPYING_MIN_SIZE = 20
NULL_HEADER = 8
MAX_HEAP = 1 << 40
PAYLOAD_BYTES = 32
OBJECT_READ = 64  # largest header (24) + array length (4) + payload (32), rounded up

FRAME_SLACK_BELOW = 4096
FRAME_SLACK_ABOVE = 1024
THREAD_SCAN = 256 * 1024
MAX_PROBES = 2048


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
    vmctx: int
    store_context: int
    found_at: int  # stack address holding the vmctx pointer
    found_in: str  # "wasm frames" | "thread stack"
    major: int
    layout: Layout


class HeapReport:
    """What `annotate` found, keyed by thread, frame level and slot (core/report.py adds it
    to the report records)."""

    def __init__(self):
        self.objects: dict[tuple[int, int, int], dict] = {}  # (thread, level, offset) -> object
        self.frame_notes: dict[tuple[int, int], str] = {}  # (thread, level) -> note
        self.activations: dict[tuple[int, int], dict] = {}  # (thread, activation) -> heap rec
        self.heaps: dict[tuple[int, int], Heap] = {}  # (thread, activation) -> located heap
        self.finder: _Finder | None = None

    def heap_for(self, thread: int, activation: int) -> Heap | None:
        """The activation's heap, else any heap located in the process (one store, one heap)."""
        h = self.heaps.get((thread, activation))
        if h is None and self.finder is not None and self.finder.known:
            h = self.finder.known[0]
        return h

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
        return kind if kind and (ty == NO_TYPE or ty < 1 << 24) else None


# -- locating the heap --------------------------------------------------------------------


class _Finder:
    def __init__(self, target: Target, mem: MemoryCache, regions: list[Region] | None):
        self.target = target
        self.mem = mem
        self.regions = sorted(regions or [], key=lambda r: r.start) or None
        self.e = "<" if target.little_endian else ">"
        self.magics = {
            m if target.little_endian else m[::-1]: off for m, off in VMCTX_STORE_OFFSET.items()
        }
        self.known: list[Heap] = []  # heaps located so far (one per store), tried first
        self.probed: dict[tuple[int, int], tuple | None] = {}
        self._objects: dict[int, bytes] = {}
        self._u32 = struct.Struct(self.e + "I").unpack_from
        self._u64 = struct.Struct(self.e + "Q").unpack_from

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

    def _data_region(self, v: int) -> bool:
        if v < 0x10000 or v >= 1 << 57 or v % 8:
            return False
        if self.regions is None:
            return True
        for r in self.regions:
            if r.start <= v < r.end:
                return not r.perms or (r.perms[:2] == "rw" and "x" not in r.perms)
            if r.start > v:
                return False
        return False

    def read_words(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """(address, value) of the readable 8-aligned words in [lo, hi), lazily by page."""
        lo -= lo % 8
        pos = lo
        page = MemoryCache.PAGE
        while pos < hi:
            n = min(page - pos % page, hi - pos)
            try:
                data = self.mem.read(pos, n)
            except ReadError:
                pos += n
                continue
            cnt = len(data) // 8
            for i, v in enumerate(struct.unpack(self.e + f"{cnt}Q", data[: cnt * 8])):
                yield pos + 8 * i, v
            pos += n

    def probe(self, v: int, layout: Layout):
        """(vmctx, store, base, length) when `v` looks like a VMContext, else None."""
        key = (v, layout.heap_offset)
        if key in self.probed:
            return self.probed[key]
        res = None
        try:
            head = self.mem.read(v, 24)
            off = self.magics.get(head[:4])
            if off is not None:
                store = self.u64(head, off)
                if layout.heap_in == "vmctx":
                    hb = self.mem.read(v + layout.heap_offset, 16)
                    res = (v, store, self.u64(hb, 0), self.u64(hb, 8))
                elif store and store % 8 == 0 and self._data_region(store):
                    hb = self.mem.read(store + layout.heap_offset, 16)
                    res = (v, store, self.u64(hb, 0), self.u64(hb, 8))
        except ReadError:
            res = None
        self.probed[key] = res
        return res


class _Check(NamedTuple):
    ok: bool
    valid: int  # refs explained
    why: str | None


def _check_heap(f: _Finder, base: int, length: int, refs: list[int], layout: Layout) -> _Check:
    if base == 1 and length == 0:
        return _Check(False, 0, "the store has not allocated its GC heap yet (base 1, length 0)")
    if base % 8 or not 0 < length < MAX_HEAP or base + length >= 1 << 64:
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


def _activation_range(thread, act, first: bool) -> tuple[int, int]:
    fps = [fr.fp for fr in act.frames]
    lo = min(fps) - FRAME_SLACK_BELOW
    if (
        first
        and thread.sp is not None
        and thread.sp <= min(fps)
        and min(fps) - thread.sp <= 1 << 20
    ):
        lo = min(lo, thread.sp)
    return lo, max(fps) + FRAME_SLACK_ABOVE


def _locate(
    f: _Finder, thread, act, first: bool, refs: list[int], layout: Layout, major: int
) -> tuple[Heap | None, str]:
    # Stores already located for other activations first (one store, one heap).
    for h in f.known:
        if h.layout is layout:
            cur = f.probe(h.vmctx, layout)  # re-read: the heap may have moved
            if cur and _check_heap(f, cur[2], cur[3], refs, layout).ok:
                return h._replace(base=cur[2], length=cur[3]), ""
    lo, hi = _activation_range(thread, act, first)
    sources = [("wasm frames", lo, hi)]
    if thread.sp is not None:
        sources.append(("thread stack", thread.sp, thread.sp + THREAD_SCAN))
    found_magic = 0
    best = None  # (valid refs, why, vmctx, store, base, length)
    probes = 0
    seen = set()
    for where, a, b in sources:
        for addr, v in f.read_words(a, b):
            if v in seen or not f._data_region(v):
                continue
            seen.add(v)
            probes += 1
            if probes > MAX_PROBES:
                break
            p = f.probe(v, layout)
            if p is None:
                continue
            found_magic += 1
            vmctx, store, base, length = p
            chk = _check_heap(f, base, length, refs, layout)
            if chk.ok:
                heap = Heap(base, length, vmctx, store, addr, where, major, layout)
                f.known.append(heap)
                return heap, ""
            if best is None or chk.valid > best[0]:
                best = (chk.valid, chk.why, vmctx, store, base, length)
    if not found_magic:
        return None, (
            f"no VMContext (magic 'core'/'comp' leading to a store context) "
            f"found in the stack {lo:#x}..{hi:#x} or the thread's stack"
        )
    valid, why, vmctx, store, base, length = best
    return None, (
        f"{found_magic} VMContext candidate{'s' * (found_magic != 1)}, none whose "
        f"GC heap holds every live ref (best: vmctx {vmctx:#x}, store context "
        f"{store:#x}, heap {base:#x}+{length:#x}, {valid} of {len(refs)} refs "
        f"valid: {why})"
    )


# -- decoding objects ---------------------------------------------------------------------


def _sizes(
    f: _Finder, collector: str, r: int, head: bytes, length: int, layout: Layout
) -> tuple[int | None, int, str | None]:
    """(object size or None, header size, why the size is not sane)."""
    kind = f.u32(head, 0)
    low = kind & ~layout.kind_mask & 0xFFFFFFFF
    if collector == "copying":
        hs, size, align = COPYING_HEADER, f.u32(head, 8), 16
        minimum = COPYING_MIN_SIZE
    elif collector == "drc":
        hs, align = layout.drc_header, 8
        size = f.u32(head, hs - 4) if hs == 24 else low
        minimum = hs
    else:
        hs, size, align, minimum = NULL_HEADER, low, 8, NULL_HEADER
    if size < minimum or size % align or r % align or r + size > length:
        return None, hs, f"size {size:#x} at ref {r:#x} does not fit the {collector} layout"
    return size, hs, None


def _choose_collector(f: _Finder, heap: Heap, heads: dict[int, bytes]) -> str | None:
    """The first of the version's collectors (default first) that gives every object a
    sane size, and one size to all structs of one type (a struct's size is its type's)."""
    lay = heap.layout
    for c in lay.collectors:
        by_type: dict[int, set] = {}
        ok = True
        for r, h in heads.items():
            size = _sizes(f, c, r, h, heap.length, lay)[0]
            if size is None:
                ok = False
                break
            if f.u32(h, 0) & lay.kind_mask == 0xB0000000:
                by_type.setdefault(f.u32(h, 4), set()).add(size)
        if ok and all(len(sizes) == 1 for sizes in by_type.values()):
            return c
    return None


def decode_object(f: _Finder, heap: Heap, r: int, collector: str | None) -> dict:
    lay = heap.layout
    addr = heap.base + r
    obj: dict = {
        "kind": "unknown",
        "type_index": None,
        "size": None,
        "length": None,
        "header": None,
        "address": addr,
        "collector": collector,
    }
    try:
        head = f.object_bytes(heap.base, r, heap.length)
    except ReadError as e:
        obj["error"] = f"object header unreadable ({e})"
        return obj
    kind = f.u32(head, 0)
    obj["kind"] = KINDS.get(kind & lay.kind_mask, f"unknown {kind:#010x}")
    ty = f.u32(head, 4)
    obj["type_index"] = None if ty == NO_TYPE else ty
    if collector is None or len(head) < 24:
        obj["header"] = head[:8].hex()
        return obj
    size, hs, why = _sizes(f, collector, r, head, heap.length, lay)
    obj["header"] = head[:hs].hex()
    if why:
        obj["error"] = why
        return obj
    obj["size"] = size
    if collector == "copying" and kind & 1:
        obj["forwarded"] = f.u32(head, COPYING_HEADER) if len(head) >= 20 else None
    if collector == "drc" and hs == 24:
        obj["ref_count"] = f.u64(head, 8)
    body = hs
    if obj["kind"] == "arrayref" and size >= hs + 4:
        obj["length"] = f.u32(head, hs)
        body = hs + 4
    obj["payload"] = head[body : min(size, body + PAYLOAD_BYTES)].hex()
    return obj


# -- the entry point ----------------------------------------------------------------------


def _heap_refs(act) -> list[tuple[object, object]]:
    return [
        (fr, s) for fr in act.frames for s in fr.slots if s.ref is not None and s.ref.kind == "heap"
    ]


def _major(act) -> int | None:
    for fr in act.frames:
        try:
            m = fr.image.engine.major
        except StackMapsError:
            m = None
        if m is not None:
            return m
    return None


def annotate(
    target: Target, mem: MemoryCache, collected: Iterable, regions: list[Region] | None = None
) -> HeapReport:
    """Locate the GC heap of every activation with live heap refs and decode their objects.

    `collected` is [(ThreadState, [Activation, ...]), ...] as the commands gather it.
    Never raises StackMapsError: what goes wrong becomes a note.
    """
    rep = HeapReport()
    f = rep.finder = _Finder(target, mem, regions)
    todo = []  # (thread, activation index, activation, heap (frame, slot) pairs)
    for thread, acts in collected:
        for n, act in enumerate(acts):
            pairs = _heap_refs(act)
            if pairs:
                todo.append((thread, n, act, pairs))
    failed = []
    for item in todo:
        if not _annotate_one(rep, f, *item):
            failed.append(item)
    if failed and f.known:  # a store located later in the walk may serve the earlier ones
        for item in failed:
            _annotate_one(rep, f, *item)
    return rep


def _annotate_one(rep: HeapReport, f: _Finder, thread, n: int, act, pairs) -> bool:
    refs = sorted({s.ref.value for _, s in pairs})
    major = _major(act)
    layout, key = layout_for(major)
    heap = None
    if layout is None:
        why = (
            f"Wasmtime {major if major is not None else '(unknown version)'} is not "
            f"covered by the heap layout table (32 and later)"
        )
    else:
        try:
            heap, why = _locate(f, thread, act, n == 0, refs, layout, major)
        except StackMapsError as e:
            heap, why = None, str(e)
    if heap is None:
        note = "GC heap not located: " + why
        rep.activations[(thread.num, n)] = {"located": False, "note": note}
        for fr in {id(fr): fr for fr, _ in pairs}.values():
            rep.frame_notes[(thread.num, fr.level)] = note
        return False
    heads = {}
    for r in refs:
        try:
            head = f.object_bytes(heap.base, r, heap.length)
        except ReadError:
            continue
        if len(head) >= 24:
            heads[r] = head
    collector = _choose_collector(f, heap, heads) if heads else None
    rep.heaps[(thread.num, n)] = heap
    rep.activations[(thread.num, n)] = {
        "located": True,
        "base": heap.base,
        "length": heap.length,
        "vmctx": heap.vmctx,
        "store_context": heap.store_context,
        "found_at": heap.found_at,
        "found_in": heap.found_in,
        "collector": collector,
        "wasmtime_major": major,
        "layout_from": key,
    }
    note = (
        f"GC heap {heap.base:#x}..{heap.base + heap.length:#x} "
        f"({collector or 'unknown'} collector), store context "
        f"{heap.store_context:#x}, vmctx {heap.vmctx:#x} found at "
        f"{heap.found_at:#x} ({heap.found_in})"
    )
    if collector is None:
        note += "; object sizes fit no known collector layout: sizes not shown"
    for fr, s in pairs:
        rep.objects[(thread.num, fr.level, s.offset)] = decode_object(
            f, heap, s.ref.value, collector
        )
        rep.frame_notes[(thread.num, fr.level)] = note
    return True
