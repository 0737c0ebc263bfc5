"""Suspended fiber stacks on synthetic memory around a real image (no debugger).

A real image (deep_trap.wat, compiled by the CLI 49 for x86_64) sits at BASE.
A fiber stack is laid out as Wasmtime leaves a suspended one: the saved SP at
top-16 and 0 at top-8; frame records of `build` frames whose return addresses
are the image's real stack-map pcs; an exit trampoline record; and the saved
exit record (EntryStoreContext: exit pc, trampoline FP, entry FP, entry SP,
trap handler, store context pointer) higher up. The store context, a vmctx
spilled below the frames and a GC heap with two structs complete the world,
so every rule (the proof of the store, ambiguity, a damaged top, a region
that is not a fiber, what is read) is checked against exact expectations.
"""

import struct

import pytest
from wasmtime_stackmaps import WasmtimeImage, fibers, fibertops, heapctx
from wasmtime_stackmaps.discover import ImageRegistry
from wasmtime_stackmaps.fibers import TOP_READ, find_suspended
from wasmtime_stackmaps.fibertops import MAX_FIBER_STACK, SCAN_CHUNK
from wasmtime_stackmaps.report import suspended_records
from wasmtime_stackmaps.source import BytesSource
from wasmtime_stackmaps.stackread import Seek
from wasmtime_stackmaps.suspended import suspended_stacks
from wasmtime_stackmaps.target import MemoryCache, MemoryTarget, Region, ThreadState

from tests.tooling import REPO, compile_wat

BASE = 0x1000_0000
FIBER = 0x7000_0000  # the fiber stack [FIBER, FIBER + FSIZE)
FSIZE = 0x10000
OTHER = 0x7100_0000  # another anonymous read-write region, not a fiber
VMCTX = 0x5500_0000
STORE = 0x5500_1000
STORE2 = 0x5500_2000
HEAP = 0x6000_0000
HEAP2 = 0x6100_0000
HOST_PC = 0x40_1234


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("fib") / "deep.cwasm"
    compile_wat(REPO / "tests" / "programs" / "deep_trap.wat", out, "x86_64-unknown-linux-gnu")
    data = out.read_bytes()
    img = WasmtimeImage.from_bytes(data)
    build = next(f for f in img.functions if f.name.endswith("::build"))
    tramp = next(f for f in img.functions if "array_to_wasm_trampoline" in f.name)
    entry = max(img.stackmaps.entries_between(build.start, build.end), key=lambda e: len(e.offsets))
    assert img.engine.major == 49
    return data, img, build, tramp, entry


class World:
    """Memory blocks of one process with one suspended fiber (see the module docstring)."""

    def __init__(self, compiled, depth=3, vmctx=True, stores=(STORE,), entry_fp_delta=0):
        data, img, build, tramp, entry = compiled
        self.text = BASE + img.text_range[0]
        self.fiber = bytearray(FSIZE)
        top = FIBER + FSIZE
        saved_sp = top - 0x1000
        self.put(top - 16, saved_sp)
        self.put(top - 8, 0)
        x = self.text + entry.pc  # the exit pc: a call site in `build`
        t = saved_sp + 0x100  # the exit trampoline's frame record
        fp = t + 0x40 + entry.frame_size  # innermost wasm frame: its SP is above the record
        self.put(t, fp)
        self.put(t + 8, x)
        if vmctx:
            self.put(t - 16, VMCTX)  # spilled by a wasm frame below
        self.fps = []
        self.refs = []
        for k in range(depth):
            sp = fp - entry.frame_size
            for i, off in enumerate(entry.offsets):
                raw = ((1000 + k) << 1) | 1 if i == 0 else 0x20 + 0x20 * k
                self.put32(sp + off, raw)
                if i:
                    self.refs.append(raw)
            caller = fp + 16 + entry.frame_size
            self.put(fp, caller if k + 1 < depth else fp + 0x40)
            self.put(fp + 8, self.text + entry.pc if k + 1 < depth else self.text + tramp.start + 8)
            self.fps.append(fp)
            fp = caller
        self.entry_fp = self.fps[-1] + 0x40  # the array-to-wasm trampoline's FP
        self.put(self.entry_fp, 0x5555_0000_0000)  # host code without frame pointers
        self.put(self.entry_fp + 8, HOST_PC)
        rec = self.entry_fp + 0x100
        words = [1, (1 << 64) - 1, 1, rec + 0x200, x, t, self.entry_fp + entry_fp_delta, t + 16]
        words += [self.text + 4, *stores]
        for i, w in enumerate(words):
            self.put(rec + 8 * i, w)
        self.record = rec + 8 * 4
        self.blocks = {BASE: data, FIBER: self.fiber, OTHER: bytearray(0x4000)}
        vm = bytearray(4096)
        vm[:4] = b"core"
        struct.pack_into("<Q", vm, 8, STORE)
        self.blocks[VMCTX] = vm
        for s, h in ((STORE, HEAP), (STORE2, HEAP2)):
            blk = bytearray(4096)
            struct.pack_into("<QQ", blk, 32, h, 0x1000)  # gc_heap at +32 (43 on)
            self.blocks[s] = blk
            heap = bytearray(0x1000)
            for n, r in enumerate(self.refs):  # copying collector: 16-byte header, size at +8
                struct.pack_into("<IIII", heap, r, 0xB0000000, 3, 32, 0)
                struct.pack_into("<i", heap, r + 16, (7 if h == HEAP else 8) * 100 + n)
            self.blocks[h] = heap
        self.regions = [Region(BASE, BASE + len(data), "r-x", None)] + [
            Region(a, a + len(b), "rw-", None) for a, b in self.blocks.items() if a != BASE
        ]
        # A guard page under the fiber stack; right under OTHER a read-write mapping it
        # continues (no fiber stack does).
        self.regions += [
            Region(FIBER - 0x1000, FIBER, "---", None),
            Region(OTHER - 0x1000, OTHER, "rw-", None),
        ]

    def put(self, addr, v):
        struct.pack_into("<Q", self.fiber, addr - FIBER, v)

    def put32(self, addr, v):
        struct.pack_into("<I", self.fiber, addr - FIBER, v)

    def target(self, threads=()):
        t = MemoryTarget({a: bytes(b) for a, b in self.blocks.items()}, list(threads))
        reg = ImageRegistry()
        reg.add(WasmtimeImage(BytesSource(bytes(self.blocks[BASE])), base=BASE))
        return t, reg

    def records(self, threads=()):
        t, reg = self.target(threads)
        stacks = suspended_stacks(t, reg, MemoryCache(t), self.regions, list(threads), 1000)
        return suspended_records(stacks), t


def build_frames(rec):
    return [f for f in rec["frames"] if f["function"].endswith("::build")]


def test_suspended_fiber_found_and_tied(compiled):
    w = World(compiled)
    (rec,), _ = w.records()
    assert rec["stack"] == [FIBER, FIBER + FSIZE] and rec["saved_sp"] == FIBER + FSIZE - 0x1000
    assert rec["store_context"] == STORE and rec["note"] is None
    builds = build_frames(rec)
    assert [f["fp"] for f in builds] == w.fps and rec["frames"][-1]["fp"] == w.entry_fp
    assert [[s["value"] for s in f["slots"] if s["kind"] == "i31"] for f in builds] == [
        [1000],
        [1001],
        [1002],
    ]
    (act,) = rec["activations"]
    assert act["vmctx"] == VMCTX and act["record"] == w.record
    assert act["heap"]["located"] and act["heap"]["base"] == HEAP
    values = [
        struct.unpack_from("<i", bytes.fromhex(s["object"]["payload"]))[0]
        for f in builds
        for s in f["slots"]
        if s["kind"] == "heap"
    ]
    assert values == [700, 701, 702]  # from STORE's heap, not STORE2's


def test_proof_picks_the_store_the_vmctx_names(compiled):
    """Two store pointers near the record, both heaps valid: the vmctx decides."""
    (rec,), _ = World(compiled, stores=(STORE2, STORE)).records()
    assert rec["store_context"] == STORE
    assert rec["activations"][0]["heap"]["base"] == HEAP


def test_ambiguous_without_proof(compiled):
    (rec,), _ = World(compiled, vmctx=False, stores=(STORE2, STORE)).records()
    heap = rec["activations"][0]["heap"]
    assert not heap["located"] and heap["note"].startswith("heap ambiguous: store contexts")
    assert all("object" not in s for f in rec["frames"] for s in f["slots"])
    notes = {f.get("heap_note") for f in build_frames(rec)}
    assert notes == {heap["note"]}  # on every frame with heap refs


def test_single_candidate_without_proof_says_so(compiled):
    (rec,), _ = World(compiled, vmctx=False).records()
    act = rec["activations"][0]
    assert act["heap"]["located"] and act["store_context"] == STORE
    assert "no vmctx in the frames confirms it" in act["store_note"]


def test_unreadable_store_context(compiled):
    w = World(compiled, vmctx=False, stores=(0x5600_0000,))
    w.regions.append(Region(0x5600_0000, 0x5600_1000, "rw-", None))  # mapped, not readable
    (rec,), _ = w.records()
    heap = rec["activations"][0]["heap"]
    assert heap == {
        "located": False,
        "note": f"GC heap not located: store context {0x5600_0000:#x} is unreadable",
    }


def test_garbage_top_gives_one_note(compiled):
    w = World(compiled)
    w.put(FIBER + FSIZE - 16, 0x4141414141414141)
    (rec,), _ = w.records()
    assert rec["saved_sp"] is None and "0x4141414141414141" in rec["note"]
    assert [f["fp"] for f in build_frames(rec)] == w.fps  # still found from the exit record


def test_wrong_entry_fp_is_rejected(compiled):
    assert World(compiled, entry_fp_delta=0x10).records()[0] == []


def test_thread_running_on_the_stack_is_not_suspended(compiled):
    w = World(compiled)
    th = ThreadState(1, 1, "t", HOST_PC, 0, FIBER + 0x100, None)
    assert w.records([th])[0] == []


class Spy(MemoryTarget):
    """A MemoryTarget that records every read."""

    def __init__(self, *a):
        super().__init__(*a)
        self.log = []

    def read_memory(self, address, size):
        self.log.append((address, size))
        return super().read_memory(address, size)


def spy_find(w, threads=()):
    t = Spy({a: bytes(b) for a, b in w.blocks.items()}, list(threads))
    reg = ImageRegistry()
    reg.add(WasmtimeImage(BytesSource(bytes(w.blocks[BASE])), base=BASE))
    return find_suspended(Seek(MemoryCache(t), t, reg, 1000), w.regions, list(threads)), t.log


def merge_above(w, n=0x8000, tops=()):
    """The kernel merged the fiber's mapping with an anonymous one of n bytes above it:
    one region; `tops` are page ends in the neighbour given a fiber top's words."""
    w.fiber += bytearray(n)
    for p, saved_sp in tops:
        w.put(p - 16, saved_sp)
        w.put(p - 8, 0)
    w.regions = [r for r in w.regions if r.start != FIBER]
    w.regions.append(Region(FIBER, FIBER + FSIZE + n, "rw-", None))


def test_reads_are_bounded(compiled):
    """A region that is not a fiber costs one bulk read of its top, then reads of at most
    MAX_FIBER_STACK from its start in SCAN_CHUNK pieces; the image and a region continuing
    a read-write mapping are not read at all."""
    w = World(compiled)
    w.fiber[:] = bytes(FSIZE)  # no fiber any more: all zero
    finds, log = spy_find(w)
    assert finds == []
    cands = [r for r in w.regions if r.perms == "rw-" and r.start != OTHER]
    for addr, size in log:
        r = next(r for r in w.regions if r.start <= addr < r.end)
        assert r in cands, hex(addr)
        top = addr + size == r.end and size <= TOP_READ
        inside = r.start <= addr and addr + size <= r.start + MAX_FIBER_STACK
        assert top or (inside and size <= SCAN_CHUNK and addr + size <= r.end - 4096), hex(addr)
    assert (FIBER, FSIZE - 4096) in log  # the fiber's mapping was searched inside, once
    assert sum(1 for a, _ in log if a == FIBER) == 1


def test_merged_fiber_found(compiled):
    """The fiber's mapping merged with one above it: its top is a page end inside."""
    w = World(compiled)
    merge_above(w)
    (rec,), _ = w.records()
    assert rec["stack"] == [FIBER, FIBER + FSIZE] and rec["saved_sp"] == FIBER + FSIZE - 0x1000
    assert rec["store_context"] == STORE and rec["note"] is None
    assert [f["fp"] for f in build_frames(rec)] == w.fps
    assert rec["activations"][0]["heap"]["base"] == HEAP


def test_merged_top_like_words_elsewhere(compiled):
    """Page ends that look like a fiber's top (in the neighbour above, and in the fiber below
    its live part) do not add or move a stack: the one whose saved SP is the fiber's wins."""
    w = World(compiled)
    low = FIBER + 0x2000
    merge_above(w, tops=[(FIBER + FSIZE + 0x4000, FIBER + 0x100), (low, FIBER + 0x40)])
    (rec,), _ = w.records()
    assert rec["stack"] == [FIBER, FIBER + FSIZE] and rec["saved_sp"] == FIBER + FSIZE - 0x1000


def test_merged_scan_budget(compiled, monkeypatch):
    """Out of budget: the search inside merged mappings stops (nothing is found there)."""
    monkeypatch.setattr(fibertops, "SCAN_BUDGET", 0)
    w = World(compiled)
    merge_above(w)
    finds, log = spy_find(w)
    assert finds == [] and all(size <= TOP_READ for _, size in log)


def test_suspended_roots_in_heap_context(compiled):
    """`stackmap heap` counts the heap refs of a suspended stack tied to the store among its
    roots (core/heapctx.py), labelled with the stack; another store gets none of them."""
    w = World(compiled)
    t, reg = w.target()
    stacks = suspended_stacks(t, reg, MemoryCache(t), w.regions, [], 1000)
    images = {}
    roots = heapctx._suspended_roots(stacks, STORE, images)
    assert sorted(r.ref for r in roots) == sorted(w.refs) and len(images) == 1
    assert all(r.label.startswith(f"suspended stack {FIBER:#x} frame #") for r in roots)
    assert heapctx._suspended_roots(stacks, STORE2, {}) == []


def test_merged_scan_guard_first(compiled, monkeypatch):
    """With budget for one mapping, the one right above a one-page guard is searched first,
    before a lower mapping with no guard under it."""
    w = World(compiled)
    merge_above(w)
    low = FIBER - 0x100_0000
    w.blocks[low] = bytearray(0x40000)
    w.regions.append(Region(low, low + 0x40000, "rw-", None))
    monkeypatch.setattr(fibertops, "SCAN_BUDGET", FSIZE + 0x8000)  # its window and live part
    finds, log = spy_find(w)
    assert [f.region for f in finds] == [Region(FIBER, FIBER + FSIZE, "rw-", None)]
    assert not any(low <= a < low + 0x40000 and size > TOP_READ for a, size in log)


def test_top_like_words_everywhere_cost_is_bounded(compiled, monkeypatch):
    """A mapping with a fiber-top-like pair of words at every page end: the live parts
    searched count against the scan budget, so the words looked at stay within it."""
    size = 0x40_0000
    hostile = 0x7800_0000
    blk = bytearray(size)
    for p in range(0x1000, size + 1, 0x1000):
        struct.pack_into("<QQ", blk, p - 16, hostile, 0)  # saved SP: the mapping's start
    w = World(compiled)
    w.blocks[hostile] = blk
    w.regions.append(Region(hostile, hostile + size, "rw-", None))
    budget = 0x80_0000
    monkeypatch.setattr(fibertops, "SCAN_BUDGET", budget)
    monkeypatch.setattr(fibertops, "LIVE_BUDGET", 0x1_0000)
    seen = []
    real = fibers._activations

    def counting(seek, stack, *a):
        seen.append(len(stack.words))
        return real(seek, stack, *a)

    monkeypatch.setattr(fibers, "_activations", counting)
    finds, log = spy_find(w)
    assert [f.region.start for f in finds] == [FIBER]  # the real one, at its mapping's end
    scanned = sum(size for a, size in log if hostile <= a < hostile + size)
    # Beyond the top pages (one per candidate mapping), all within the two budgets.
    pages = len(w.regions) * TOP_READ
    assert 8 * sum(seen) + scanned <= budget + 0x1_0000 + pages, (sum(seen), scanned)
