"""The frame walk over synthetic stacks around a real compiled image (no debugger).

A real image (deep_trap.wat compiled by the wasmtime CLI) is placed at a base
address in a MemoryTarget; stacks are built word by word with frame records
whose return addresses are the image's real stack-map pcs, so every rule of
the walk (safepoints, SP = FP - frame_size, loops, unreadable memory, PAC
bits, prologues, the stack scan) is checked against exact expectations.
"""

import struct

import pytest
from wasmtime_stackmaps import WasmtimeImage
from wasmtime_stackmaps.discover import ImageRegistry, discover_from_pc
from wasmtime_stackmaps.frames import ActivationEnd, ActivationSource
from wasmtime_stackmaps.gcref import SlotKind
from wasmtime_stackmaps.target import MemoryCache, MemoryTarget, ThreadState
from wasmtime_stackmaps.walk import thread_activations, walk_chain

from tests.tooling import REPO, compile_wat

BASE = 0x1000_0000
STACK = 0x7000_0000
STACK_SIZE = 0x4000
HOST_PC = 0x40_1234


@pytest.fixture(scope="module", params=["x86_64", "aarch64"])
def compiled(request, tmp_path_factory):
    arch = request.param
    out = tmp_path_factory.mktemp("walk") / f"deep_{arch}.cwasm"
    compile_wat(
        REPO / "tests" / "programs" / "deep_trap.wat", out, target=f"{arch}-unknown-linux-gnu"
    )
    data = out.read_bytes()
    img = WasmtimeImage.from_bytes(data)
    build = next(f for f in img.functions if f.name.endswith("::build"))
    tramp = next(f for f in img.functions if "array_to_wasm_trampoline" in f.name)
    entries = list(img.stackmaps.entries_between(build.start, build.end))
    # The recursive call site: the entry with the most live slots.
    entry = max(entries, key=lambda e: len(e.offsets))
    return arch, data, img, build, tramp, entry


class Stack:
    """A stack image with frame records (little-endian unless `endian` is ">");
    addresses are absolute."""

    def __init__(self, endian="<"):
        self.mem = bytearray(STACK_SIZE)
        self.endian = endian

    def put64(self, addr, value):
        struct.pack_into(self.endian + "Q", self.mem, addr - STACK, value)

    def put32(self, addr, value):
        struct.pack_into(self.endian + "I", self.mem, addr - STACK, value & 0xFFFFFFFF)


def build_stack(compiled, depth=3, pac=0, endian="<"):
    """Innermost frame in `build` (at a trap), `depth` callers at the call site, the trampoline."""
    arch, data, img, build, tramp, entry = compiled
    text = BASE + img.text_range[0]
    st = Stack(endian)
    fps = [STACK + 0x1000]
    values = []
    for k in range(depth):
        # Callee record at fps[-1]; the caller's SP sits 16 bytes above it.
        caller_fp = fps[-1] + 16 + entry.frame_size
        st.put64(fps[-1], caller_fp)
        st.put64(fps[-1] + 8, (text + entry.pc) | pac)
        sp = caller_fp - entry.frame_size
        vals = []
        for i, off in enumerate(entry.offsets):
            raw = ((k * 10 + i) << 1) | 1 if i == 0 else 0x20 * (k + 1)
            st.put32(sp + off, raw)
            vals.append(raw)
        values.append(vals)
        fps.append(caller_fp)
    # The outermost wasm frame returns into the trampoline, which returns to the host.
    tramp_fp = fps[-1] + 0x40
    st.put64(fps[-1], tramp_fp)
    st.put64(fps[-1] + 8, (text + tramp.start + 8) | pac)
    st.put64(tramp_fp, tramp_fp + 0x100)
    st.put64(tramp_fp + 8, HOST_PC)
    return st, fps, values, text


def make_target(compiled, st, pc, fp, sp, lr=None):
    arch, data = compiled[0], compiled[1]
    thread = ThreadState(1, 100, "main", pc, fp, sp, lr)
    return MemoryTarget({BASE: data, STACK: bytes(st.mem)}, [thread], arch=arch)


def walk(target):
    reg = ImageRegistry()
    th = target.threads()[0]
    assert discover_from_pc(
        target, th.pc if reg.image_at(th.pc) is None else th.pc, reg
    ) or discover_from_pc(target, BASE + 0x1000, reg)
    return reg, thread_activations(target, reg, MemoryCache(target), th, None)


def test_walk_safepoints_and_slots(compiled):
    arch, data, img, build, tramp, entry = compiled
    st, fps, values, text = build_stack(compiled)
    t = make_target(compiled, st, text + build.start + 0x20, fps[0], fps[0] - 0x30)
    reg, acts = walk(t)
    assert len(acts) == 1
    frames = acts[0].frames
    assert [f.function_name for f in frames] == [build.name] * 4 + [tramp.name]
    assert frames[0].innermost and not frames[0].safepoint
    for k, f in enumerate(frames[1:4]):
        assert f.safepoint and f.frame_size == entry.frame_size
        assert f.sp == f.fp - entry.frame_size == fps[k] + 16
        assert [s.raw for s in f.slots] == values[k]
        assert [s.offset for s in f.slots] == list(entry.offsets)
        assert f.note is None and f.error is None
    assert frames[1].slots[0].ref.kind is SlotKind.I31 and frames[1].slots[0].ref.value == 0
    assert frames[4].reason.startswith("not wasm code")
    assert acts[0].end is ActivationEnd.LEFT_WASM
    assert acts[0].source is ActivationSource.REGISTERS


@pytest.mark.parametrize("compiled", ["x86_64"], indirect=True)
def test_big_endian_target_slots_and_records(compiled):
    """A big-endian target's frame records and slots are read in its byte order (the image
    itself is the little-endian one: only the stack's byte order is under test)."""
    arch, data, img, build, tramp, entry = compiled
    st, fps, values, text = build_stack(compiled, endian=">")
    t = make_target(compiled, st, text + build.start + 0x20, fps[0], fps[0] - 0x30)
    t.little_endian = False
    _, acts = walk(t)
    frames = acts[0].frames
    assert len(frames) == 5 and acts[0].end is ActivationEnd.LEFT_WASM
    assert [[s.raw for s in f.slots] for f in frames[1:4]] == values


@pytest.mark.parametrize("compiled", ["aarch64"], indirect=True)
def test_pac_bits_are_stripped_on_aarch64(compiled):
    st, fps, values, text = build_stack(compiled, pac=0x004C_0000_0000_0000)
    t = make_target(compiled, st, text + compiled[3].start + 0x20, fps[0], fps[0] - 0x30)
    _, acts = walk(t)
    assert sum(f.safepoint for f in acts[0].frames) == 3


def test_frame_pointer_going_down_is_an_error_on_that_frame(compiled):
    st, fps, values, text = build_stack(compiled)
    st.put64(fps[2], fps[0])  # frame 2's caller FP points back down the stack
    t = make_target(compiled, st, text + compiled[3].start + 0x20, fps[0], fps[0] - 0x30)
    _, acts = walk(t)
    frames = acts[0].frames
    assert len(frames) == 3
    assert "not above" in frames[2].error
    assert acts[0].end == "non-monotonic frame pointer"
    assert frames[1].safepoint and frames[1].error is None  # frames before it are intact


def test_frame_pointer_loop_is_detected(compiled):
    arch, data, img, build, tramp, entry = compiled
    st = Stack()
    text = BASE + img.text_range[0]
    fp = STACK + 0x1000
    st.put64(fp, fp)  # a record pointing at itself
    st.put64(fp + 8, text + entry.pc)
    t = make_target(compiled, st, text + build.start + 0x20, fp, fp - 0x30)
    reg = ImageRegistry()
    discover_from_pc(t, text + build.start, reg)
    act = walk_chain(
        MemoryCache(t), t, reg, text + build.start + 0x20, fp, True, t.threads()[0], max_depth=50
    )
    assert len(act.frames) <= 2
    assert act.end in ("non-monotonic frame pointer", "frame pointer loop")


def test_unreadable_frame_record(compiled):
    st, fps, values, text = build_stack(compiled)
    st.put64(fps[1], 0x7100_0000)  # caller FP above, in unmapped memory; return address wasm
    t = make_target(compiled, st, text + compiled[3].start + 0x20, fps[0], fps[0] - 0x30)
    _, acts = walk(t)
    last = acts[0].frames[-1]
    assert "unreadable" in last.error and acts[0].end == "unreadable frame record"


def test_depth_limit(compiled):
    st, fps, values, text = build_stack(compiled, depth=3)
    t = make_target(compiled, st, text + compiled[3].start + 0x20, fps[0], fps[0] - 0x30)
    reg = ImageRegistry()
    discover_from_pc(t, text, reg)
    act = walk_chain(
        MemoryCache(t), t, reg, t.threads()[0].pc, fps[0], True, t.threads()[0], max_depth=2
    )
    assert len(act.frames) == 2 and act.end.startswith("depth limit")


def test_innermost_at_function_entry_uses_return_address_at_sp(compiled):
    arch, data, img, build, tramp, entry = compiled
    st, fps, values, text = build_stack(compiled)
    # Stopped on build's first instruction: nothing pushed yet. The return address is
    # at [SP] on x86_64 and in the link register on aarch64; FP is still the caller's.
    sp = fps[0] + 8
    ra = text + entry.pc
    lr = None
    if arch == "x86_64":
        st.put64(sp, ra)
    else:
        lr = ra
    t = make_target(compiled, st, text + build.start, fps[1], sp, lr)
    _, acts = walk(t)
    frames = acts[0].frames
    assert frames[0].innermost and "prologue" in frames[0].note
    assert frames[1].fp == fps[1] and frames[1].safepoint


def test_stack_scan_finds_wasm_below_host_frames(compiled):
    """Stopped in host code (the pc is not in the image): the scan finds the activation."""
    st, fps, values, text = build_stack(compiled)
    # A host frame below: garbage words, then the wasm_to_host record at fps[0].
    for a in range(fps[0] - 0x200, fps[0], 8):
        st.put64(a, 0x1234_5678)
    t = make_target(compiled, st, HOST_PC, fps[0] - 0x100, fps[0] - 0x200)
    reg = ImageRegistry()
    discover_from_pc(t, text + compiled[3].start, reg)
    acts = thread_activations(t, reg, MemoryCache(t), t.threads()[0], None)
    assert len(acts) == 1 and acts[0].source == "scan"
    assert sum(f.safepoint for f in acts[0].frames) == 3


def test_memory_reads_do_not_grow_with_depth(compiled):
    """Reads are batched: a 30-frame stack costs the same debugger reads as a 3-frame one."""
    counts = []
    for depth in (3, 30):
        st, fps, values, text = build_stack(compiled, depth=depth)
        t = make_target(compiled, st, text + compiled[3].start + 0x20, fps[0], fps[0] - 0x30)
        reg = ImageRegistry()
        discover_from_pc(t, text, reg)
        before = t.reads
        act = walk_chain(MemoryCache(t), t, reg, t.threads()[0].pc, fps[0], True, t.threads()[0])
        assert sum(f.safepoint for f in act.frames) == depth
        counts.append(t.reads - before)
    assert counts[0] == counts[1] <= 4, counts
