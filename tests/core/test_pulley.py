"""Pulley activations on synthetic memory around a real pulley64 image (no debugger).

A real image (pulley_gc.wat, compiled by the CLI 49 for pulley64) sits at BASE.
The interpreter's stack holds frame records (caller FP, then the return
address: a bytecode address in the image's .text) of `build` frames at their
real stack-map pcs; the store context records the exit trampoline's FP, the
exit pc and the entry trampoline's FP; the thread's native stack holds a
pointer to a vmctx of that store. The walk, the store proof, the objects, and
what makes a candidate fail are checked against exact expectations.
"""

import struct

import pytest
from wasmtime_stackmaps import gcheap
from wasmtime_stackmaps.discover import ImageRegistry
from wasmtime_stackmaps.image import WasmtimeImage
from wasmtime_stackmaps.pulley import add_pulley_activations, apply_heaps, pulley_activations
from wasmtime_stackmaps.source import BytesSource
from wasmtime_stackmaps.stackread import Seek
from wasmtime_stackmaps.target import MemoryCache, MemoryTarget, Region, ThreadState
from wasmtime_stackmaps.walk import Activation

from tests.tooling import REPO, compile_wat

BASE = 0x1000_0000
NATIVE = 0x7000_0000  # the thread's native stack
PSTACK = 0x5600_0000  # the interpreter's stack
VMCTX = 0x5500_0000
STORE = 0x5500_1000
HEAP = 0x6000_0000
ONES = (1 << 64) - 1


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("pulley") / "pulley_gc.cwasm"
    compile_wat(
        REPO / "tests" / "programs" / "pulley_gc.wat",
        out,
        "pulley64",
        flags=("-W", "gc=y"),
    )
    data = out.read_bytes()
    img = WasmtimeImage.from_bytes(data)
    assert img.pulley == 64 and img.engine.major == 49
    build = next(f for f in img.functions if f.name.endswith("::build"))
    tramp = next(f for f in img.functions if "array_to_wasm_trampoline" in f.name)
    entry = max(img.stackmaps.entries_between(build.start, build.end), key=lambda e: len(e.offsets))
    return data, img, build, tramp, entry


class World:
    def __init__(self, compiled, depth=3, exit_pc=None, entry_delta=0, vmctx=True):
        data, img, build, tramp, entry = compiled
        text = BASE + img.text_range[0]
        self.pstack = bytearray(0x4000)
        t = PSTACK + 0x1000  # the exit trampoline's frame record
        fp = t + 0x40 + entry.frame_size
        self.x = text + entry.pc
        self.put(t, fp)
        self.put(t + 8, self.x)
        self.fps, self.values = [], []
        for k in range(depth):
            sp = fp - entry.frame_size
            raws = []
            for i, off in enumerate(entry.offsets):
                raw = ((500 + k) << 1) | 1 if i == 0 else 0x20 + 0x20 * k
                struct.pack_into("<I", self.pstack, sp + off - PSTACK, raw)
                raws.append(raw)
            self.values.append(raws)
            caller = fp + 16 + entry.frame_size
            last = k + 1 == depth
            self.put(fp, fp + 0x40 if last else caller)
            self.put(fp + 8, text + tramp.start + 8 if last else text + entry.pc)
            self.fps.append(fp)
            fp = caller
        self.entry_fp = self.fps[-1] + 0x40
        self.put(self.entry_fp, ONES)  # the interpreter's initial frame record
        self.put(self.entry_fp + 8, ONES)
        native = bytearray(0x2000)
        if vmctx:
            struct.pack_into("<Q", native, 0x100, VMCTX)
        vm = bytearray(4096)
        vm[:4] = b"core"
        struct.pack_into("<Q", vm, 8, STORE)
        store = bytearray(4096)
        struct.pack_into("<QQ", store, 32, HEAP, 0x1000)
        struct.pack_into("<QQ", store, 48, t, exit_pc if exit_pc is not None else self.x)
        struct.pack_into("<Q", store, 72, self.entry_fp + entry_delta)
        heap = bytearray(0x1000)
        for n, raws in enumerate(self.values):  # copying collector: 16-byte header, size at +8
            struct.pack_into("<IIII", heap, raws[1], 0xB0000000, 3, 32, 0)
            struct.pack_into("<i", heap, raws[1] + 16, 900 + n)
        self.blocks = {
            BASE: data,
            NATIVE: native,
            PSTACK: self.pstack,
            VMCTX: vm,
            STORE: store,
            HEAP: heap,
        }
        self.regions = [Region(BASE, BASE + len(data), "r--", None)] + [
            Region(a, a + len(b), "rw-", None) for a, b in self.blocks.items() if a != BASE
        ]
        self.thread = ThreadState(1, 1, "t", 0x40_0000, 0, NATIVE + 0x80, None)

    def put(self, addr, v):
        struct.pack_into("<Q", self.pstack, addr - PSTACK, v)

    def target(self):
        t = MemoryTarget({a: bytes(b) for a, b in self.blocks.items()}, [self.thread])
        reg = ImageRegistry()
        reg.add(WasmtimeImage(BytesSource(bytes(self.blocks[BASE])), base=BASE))
        return t, reg, MemoryCache(t)

    def activations(self):
        t, reg, mem = self.target()
        return pulley_activations(Seek(mem, t, reg, 1000), self.thread, self.regions)


def test_pulley_frames_from_the_store_context(compiled):
    w = World(compiled)
    (pa,) = w.activations()
    assert pa.store_context == STORE and pa.vmctx == VMCTX and pa.found_at == NATIVE + 0x100
    act = pa.activation
    assert act.source == "pulley"
    builds = [f for f in act.frames if f.is_wasm_function]
    assert [f.fp for f in builds] == w.fps and act.frames[-1].fp == w.entry_fp
    assert act.frames[0].pc == w.x
    assert [[s.raw for s in f.slots] for f in builds] == w.values
    assert all(f.note is None and f.error is None for f in builds)


def test_objects_in_the_proven_store(compiled):
    w = World(compiled)
    t, reg, mem = w.target()
    collected = [(w.thread, [])]
    found = add_pulley_activations(t, reg, mem, collected, w.regions, 1000)
    assert [(num, n) for num, n, _ in found] == [(1, 0)]
    rep = gcheap.HeapReport()
    rep.finder = gcheap._Finder(t, mem)
    apply_heaps(rep, mem, found)
    rec = rep.activations[(1, 0)]
    assert rec.located and rec.heap is not None and rec.heap.base == HEAP
    assert rec.store_context == STORE
    frames = collected[0][1][0].frames
    assert [f.level for f in frames] == list(range(len(frames)))
    values = [
        struct.unpack_from("<i", rep.objects[(1, f.level, s.offset)].payload or b"")[0]
        for f in frames
        for s in f.slots
        if s.ref.kind == "heap"
    ]
    assert values == [900, 901, 902]


def test_scan_duplicate_dropped_and_levels_renumbered(compiled):
    w = World(compiled)
    t, reg, mem = w.target()
    (pa,) = w.activations()
    dup = Activation(list(pa.activation.frames), "scan", "left wasm code")
    collected = [(w.thread, [dup])]
    add_pulley_activations(t, reg, mem, collected, w.regions, 1000)
    (act,) = collected[0][1]
    assert act.source == "pulley"


@pytest.mark.parametrize(
    "kw",
    [
        {"exit_pc": BASE + 0x10},  # not a return address in .text
        {"entry_delta": 0x10},  # the chain never reaches the recorded entry FP
        {"vmctx": False},  # nothing on the thread's stack leads to the store
    ],
)
def test_no_proof_no_frames(compiled, kw):
    assert World(compiled, **kw).activations() == []
