"""The GC-heap readers decode the inferior's memory in the target's byte order.

The same copying-collector heap is laid out little- and big-endian; every reader
(gc-watch's root checks and verify, the object decoder, watch's word) must see the
same values in both. A reader that assumed little-endian would read the big-endian
heap's sizes, kinds and forwarding refs byte-swapped.
"""

import struct

import pytest
from wasmtime_stackmaps import gccheck, gcheap, gcverify, watch
from wasmtime_stackmaps.target import ByteOrder, MemoryCache, MemoryTarget

VMCTX, STORE, DATA, HEAP = 0x10000, 0x20000, 0x30000, 0x100000
LENGTH = 0x1000
STRUCT = 0xB0000000
INLINE_ONE_REF = (1 << 1) | (1 << 3)  # inline trace info, bitmap bit 0: the u32 at +16 is a ref
A, B, OLD = 0x10, 0x30, 0x810  # A -> B in the active space [0, 0x800); OLD: copied to A


def world(little: bool) -> tuple[MemoryTarget, gcheap.Heap]:
    e = "<" if little else ">"
    layout, _ = gcheap.layout_for(50)
    assert layout is not None
    vmctx = bytearray(4096)
    vmctx[:4] = b"core"
    struct.pack_into(e + "Q", vmctx, 8, STORE)
    struct.pack_into(e + "Q", vmctx, gccheck.VMCTX_GC_HEAP_DATA, DATA)
    store = bytearray(4096)
    struct.pack_into(e + "QQ", store, layout.heap_offset, HEAP, LENGTH)
    data = bytearray(4096)
    struct.pack_into(e + "II", data, 0, 0x50, 0x800)  # bump pointer, active space end
    heap = bytearray(LENGTH)
    struct.pack_into(e + "IIII", heap, A, STRUCT | INLINE_ONE_REF, 7, 32, 0)
    struct.pack_into(e + "I", heap, A + 16, B)
    struct.pack_into(e + "IIII", heap, B, STRUCT | INLINE_ONE_REF, 7, 32, 0)
    struct.pack_into(e + "IIIII", heap, OLD, STRUCT | gccheck.COPIED_BIT, 7, 32, 0, A)
    target = MemoryTarget(
        {VMCTX: bytes(vmctx), STORE: bytes(store), DATA: bytes(data), HEAP: bytes(heap)}, []
    )
    target.little_endian = little
    h = gcheap.Heap(HEAP, LENGTH, VMCTX, STORE, None, None, 50, layout)
    return target, h


@pytest.mark.parametrize("little", [True, False], ids=["little", "big"])
def test_gc_readers_follow_the_target_byte_order(little):
    target, heap = world(little)
    mem = MemoryCache(target)
    assert mem.order.little_endian is little and mem.byteorder == ("little" if little else "big")
    assert gccheck.heap_now(mem, heap._replace(base=0, length=0))[:2] == (HEAP, LENGTH)
    spaces = gccheck.copying_spaces(mem, heap)
    assert spaces == gccheck.Spaces(0, 0x50, 0x800)
    assert gccheck.ref_problem(mem, heap, "copying", A, spaces) is None
    assert "copied to 0x10" in (gccheck.ref_problem(mem, heap, "copying", OLD, spaces) or "")
    assert gccheck.forwarded_to(mem, heap, OLD) == A
    assert gccheck.forwarded_to(mem, heap, A) is None
    obj = gccheck.read_object(mem, heap, "copying", A)
    assert obj is not None and len(obj) == 32  # the size from the header, not OBJECT_BYTES
    # B moved to 0x40: A's copy holding 0x40 where it held B is the same object.
    moved = bytearray(obj)
    moved[16:20] = (0x40).to_bytes(4, mem.byteorder)
    assert gccheck.object_difference(mem.order, obj, bytes(moved), "copying", {B: 0x40}) is None
    assert "payload differs" in (
        gccheck.object_difference(mem.order, obj, bytes(moved), "copying", {}) or ""
    )
    assert gcverify.ref_offsets(mem.order, obj, obj) == [16]
    ver = gcverify.verify_space(mem, heap, spaces)
    assert (ver.objects, ver.bytes, ver.problem_count) == (2, 64, 0), ver
    assert set(gcverify.reachable(mem, heap, [("root", A)]).parent) == {A, B}
    assert watch._word(target, HEAP + A + 16) == B


@pytest.mark.parametrize("little", [True, False], ids=["little", "big"])
def test_objects_decode_in_the_target_byte_order(little):
    target, heap = world(little)
    mem = MemoryCache(target)
    finder = gcheap._Finder(target, mem)
    obj = gcheap.decode_object(finder, heap, A, "copying")
    assert (obj.kind, obj.type_index, obj.size, obj.error) == ("structref", 7, 32, None)
    assert obj.payload is not None and ByteOrder(little).u32(obj.payload) == B
    old = gcheap.decode_object(finder, heap, OLD, "copying")
    assert old.copied and old.forwarded == A


def test_byte_order_decodes_both_ways():
    data = bytes.fromhex("0102030405060708")
    le, be = ByteOrder(True), ByteOrder(False)
    assert (le.u32(data), be.u32(data)) == (0x04030201, 0x01020304)
    assert (le.u64(data), be.u64(data)) == (0x0807060504030201, 0x0102030405060708)
    assert le.unpack("HH", data, 4) == (0x0605, 0x0807) and be.int(data[:2]) == 0x0102
