"""GC objects behind live heap refs: the store's GC heap located in a real process.

The proof that the heap base is right: each `build` frame's $node struct, read
at `heap base + ref`, holds the i32 the program stored in it (v = n in
deep_trap.wat, 1000*act + n in host_nested.wat) and its `next` field is the
ref the caller frame holds. Run under GDB and LLDB (the `dbg` fixture), on
the `wasmtime` CLI 49 (copying collector) and the Python package 50 (its C
API is built without the copying collector: DRC).

The unit tests at the end run `heapfind.annotate` on synthetic memory: the
notes shown when the heap cannot be located, and the collector inference.
"""

import struct
from types import SimpleNamespace

import pytest
from wasmtime_stackmaps import gcheap, heapfind
from wasmtime_stackmaps.errors import ReadError
from wasmtime_stackmaps.frames import Activation, Slot
from wasmtime_stackmaps.gcref import decode_gcref
from wasmtime_stackmaps.report import apply_heap, heap_record, object_record
from wasmtime_stackmaps.target import MemoryCache, Target, ThreadState

from tests.plugins import driver
from tests.plugins.common import (
    CLI_DEPTH,
    build_frames,
    check_heap_records,
    check_structs,
    cli_program,
    frames_of,
    heap_slots,
    host_program,
    only_doc,
)


def test_cli_struct_objects(dbg):
    """`wasmtime run` (CLI 49): frame n's struct holds v = n; copying collector."""
    r = driver.run(dbg, ["stackmap bt --json", "stackmap bt", "stackmap frame 2"], cli_program())
    doc = only_doc(r)
    at_calls = [f for f in build_frames(frames_of(doc)) if f["safepoint"]]
    assert len(at_calls) == CLI_DEPTH, r.output[-3000:]
    # at_calls[i] is the frame with n = i + 1 (the innermost, n = 0, trapped).
    check_structs(at_calls, [n for n in range(1, CLI_DEPTH + 1)], collector="copying")
    check_heap_records(doc, at_calls)
    # The text forms show the object and where the heap is.
    assert "structref type" in r.output and "32 bytes)" in r.output, r.output[-3000:]
    assert "heap: GC heap 0x" in r.output


@pytest.mark.parametrize("mode", ["inproc", "cwasm"])
def test_python_host_struct_objects(dbg, mode, tmp_path):
    """Python embedder (wasmtime 50), two activations: v = 1000*act + n."""
    args = [mode] + ([tmp_path / "nested.cwasm"] if mode == "cwasm" else []) + [3, 2]
    r = driver.run(dbg, ["stackmap bt --json"], host_program(*args))
    doc = only_doc(r)
    at_calls = [f for f in build_frames(frames_of(doc)) if f["safepoint"]]
    depth, activations = 3, 2
    expected = [1000 * act + n for act in reversed(range(activations)) for n in range(1, depth + 1)]
    check_structs(at_calls, expected)
    check_heap_records(doc, at_calls)


def test_core_file_objects(dbg, host_core):
    """A core file of the Python host: the heap is in the core, the same objects decode."""
    core, prog = host_core
    r = driver.run(dbg, ["stackmap bt --json"], core=core, executable=prog[0])
    doc = only_doc(r)
    at_calls = [f for f in build_frames(frames_of(doc)) if f["safepoint"]]
    check_structs(at_calls, [1000 * act + n for act in (1, 0) for n in (1, 2, 3)])
    check_heap_records(doc, at_calls)


ARRAYS_WAT = """
(module
  (type $arr (array (mut i32)))
  (type $bytes (array i8))
  (func $inner (param $a (ref $arr)) (result i32) (unreachable))
  (func (export "_start")
    (local $a (ref $arr)) (local $b (ref $bytes))
    (local.set $a (array.new_fixed $arr 3 (i32.const 101) (i32.const 202) (i32.const 303)))
    (local.set $b (array.new $bytes (i32.const 7) (i32.const 40)))
    (drop (call $inner (local.get $a)))
    (drop (array.len (local.get $b)))
    (drop (array.get $arr (local.get $a) (i32.const 0)))))
"""


def test_cli_array_objects(dbg, tmp_path):
    """Two arrays live across a call: kind arrayref, their lengths and elements."""
    wat = tmp_path / "arrays.wat"
    wat.write_text(ARRAYS_WAT)
    prog = cli_program()
    prog[-1] = str(wat)
    r = driver.run(dbg, ["stackmap bt --json"], prog)
    frames = [f for f in frames_of(only_doc(r)) if f["safepoint"]]
    assert len(frames) == 1, r.output[-3000:]
    objs = sorted((s["object"] for s in heap_slots(frames[0])), key=lambda o: o["length"])
    assert [o["kind"] for o in objs] == ["arrayref", "arrayref"]
    assert [o["length"] for o in objs] == [3, 40]
    assert len({o["type_index"] for o in objs}) == 2  # two array types
    assert all(o["collector"] == "copying" for o in objs)
    small, big = objs
    assert struct.unpack_from("<3i", bytes.fromhex(small["payload"])) == (101, 202, 303)
    assert small["size"] >= 16 + 4 + 12 and big["size"] >= 16 + 4 + 40
    assert bytes.fromhex(big["payload"]) == b"\x07" * 32  # the first 32 of 40 elements


# -- synthetic memory: no debugger ------------------------------------------------------------

STACK = 0x7F00_0000_0000
VMCTX = 0x5500_0000_1000
STORE = 0x5500_0000_2000
HEAP = 0x7E00_0000_0000


class FakeTarget(Target):
    def __init__(self, blocks):
        self.blocks = blocks

    def read_memory(self, address, size):
        for start, data in self.blocks.items():
            if start <= address and address + size <= start + len(data):
                return bytes(data[address - start : address - start + size])
        raise ReadError(f"cannot read {size} bytes at {address:#x}", address)

    def threads(self):
        return []


def _frame(level, fp, refs, major):
    img = SimpleNamespace(engine=SimpleNamespace(major=major))
    slots = [Slot(8 * i, fp - 64 + 8 * i, r, decode_gcref(r)) for i, r in enumerate(refs)]
    return SimpleNamespace(level=level, fp=fp, image=img, slots=slots)


def _world(
    major=50,
    collector="copying",
    with_vmctx=True,
    heap=(HEAP, 0x10000),
    kind=0xB0000000,
    magic=b"core",
):
    """A stack with one wasm frame holding two struct refs; the vmctx pointer spilled in it."""
    stack = bytearray(0x2000)
    fp = STACK + 0x1800
    if with_vmctx:
        struct.pack_into("<Q", stack, 0x1800 - 0x20, VMCTX)
    vmctx = bytearray(4096)  # whole pages: MemoryCache reads by page
    vmctx[:4] = magic
    struct.pack_into("<Q", vmctx, gcheap.VMCTX_STORE_OFFSET[magic], STORE)
    store = bytearray(4096)
    struct.pack_into("<QQ", store, gcheap.layout_for(major)[0].heap_offset, *heap)
    mem = bytearray(0x10000)
    refs = [0x20, 0x40]
    for r, v in zip(refs, (11, 22), strict=True):
        if collector == "copying":
            struct.pack_into("<IIII", mem, r, kind | 0x12, 7, 32, 0)
            struct.pack_into("<i", mem, r + 16, v)
        elif collector == "drc":
            struct.pack_into("<IIQII", mem, r, kind, 7, 1, 0, 32)
            struct.pack_into("<i", mem, r + 24, v)
    blocks = {STACK: stack, VMCTX: vmctx, STORE: store, HEAP: mem}
    thread = ThreadState(1, 1, "t", 0x1000, fp, STACK + 0x1700, None)
    act = Activation([_frame(0, fp, refs, major)], "registers", "left wasm code")
    target = FakeTarget(blocks)
    return heapfind.annotate(target, MemoryCache(target), [(thread, [act])]), refs


@pytest.mark.parametrize("collector", ["copying", "drc"])
def test_synthetic_located(collector):
    rep, refs = _world(collector=collector)
    rec = heap_record(rep.activations[(1, 0)])
    assert rec["located"] and rec["base"] == HEAP and rec["vmctx"] == VMCTX
    assert rec["collector"] == collector and rec["found_at"] == STACK + 0x1800 - 0x20
    # The records, as the report shows them (the schema's keys).
    objs = [object_record(rep.objects[(1, 0, 8 * i)]) for i in range(len(refs))]
    assert [o["kind"] for o in objs] == ["structref"] * 2
    assert [o["type_index"] for o in objs] == [7, 7] and [o["size"] for o in objs] == [32, 32]
    assert [struct.unpack_from("<i", bytes.fromhex(o["payload"]))[0] for o in objs] == [11, 22]


def test_synthetic_component_vmctx():
    rep, _ = _world(magic=b"comp")
    assert rep.activations[(1, 0)].located


def _check_not_located(rep, why):
    rec = heap_record(rep.activations[(1, 0)])
    assert not rec["located"]
    assert rec["note"].startswith("GC heap not located: ") and why in rec["note"], rec["note"]
    assert rep.frame_notes[(1, 0)] == rec["note"]
    assert not rep.objects
    # Applied to a report document: the note on the frame and the activation, no object.
    doc = {
        "threads": [
            {
                "thread": 1,
                "activations": [{}],
                "frames": [{"level": 0, "slots": [{"offset": 0, "kind": "heap"}]}],
            }
        ]
    }
    apply_heap(doc, rep)
    assert doc["threads"][0]["frames"][0]["heap_note"] == rec["note"]
    assert doc["threads"][0]["activations"][0]["heap"] == rec
    assert "object" not in doc["threads"][0]["frames"][0]["slots"][0]


@pytest.mark.parametrize(
    "kw, why",
    [
        ({"with_vmctx": False}, "no VMContext"),
        ({"heap": (1, 0)}, "has not allocated its GC heap yet"),
        ({"heap": (HEAP, 0x30)}, "past the heap length"),
        ({"kind": 0x0C000000}, "is not a GC object header"),
    ],
)
def test_synthetic_not_located(kw, why):
    rep, _ = _world(**kw)
    _check_not_located(rep, why)


def test_synthetic_version_not_covered():
    thread = ThreadState(1, 1, "t", 0x1000, STACK + 0x1800, STACK + 0x1700, None)
    act = Activation([_frame(0, STACK + 0x1800, [0x20], 31)], "registers", "left wasm code")
    target = FakeTarget({})
    rep = heapfind.annotate(target, MemoryCache(target), [(thread, [act])])
    _check_not_located(rep, "Wasmtime 31 is not covered by the heap layout table")


def test_synthetic_no_heap_refs():
    thread = ThreadState(1, 1, "t", 0x1000, STACK + 0x1800, STACK + 0x1700, None)
    act = Activation([_frame(0, STACK + 0x1800, [0, 7], 50)], "registers", "left wasm code")
    target = FakeTarget({})
    rep = heapfind.annotate(target, MemoryCache(target), [(thread, [act])])
    assert not rep.activations and not rep.objects and not rep.frame_notes
    assert target.blocks == {}  # and nothing was read


def test_layout_table():
    assert gcheap.layout_for(31) == (None, None)
    assert gcheap.layout_for(49)[1] == 46 and gcheap.layout_for(50)[0].heap_offset == 32
    assert gcheap.layout_for(40)[0].heap_offset == 24
    assert gcheap.layout_for(32)[0].heap_in == "vmctx"
    assert gcheap.layout_for(35)[0].kind_mask == 0xF8000000
    assert gcheap.layout_for(36)[0].kind_mask == 0xFC000000
