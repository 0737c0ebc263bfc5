"""gc-watch's records are built by gcrecord alone from the data gcverify and gcafter find:
the keys the JSON log and the text output read, the problem count they add up, and
each root's verdict after a collection."""

import struct

from wasmtime_stackmaps import gcafter, gccheck, gcheap, gcrecord
from wasmtime_stackmaps.gcafter import RootState
from wasmtime_stackmaps.gcverify import HeapProblem, Reach, SpaceCheck, Verified
from wasmtime_stackmaps.target import MemoryCache, MemoryTarget

TYPED = {"objects": 3, "refs_checked": 2, "count": 1, "violations": [{"ref": 16}], "typed": True}


def test_space_record_counts_its_problems_and_the_typed_ones():
    space = SpaceCheck(5, 160, 1, [HeapProblem(0x40, "copied bit set after the collection")], 1)
    reach = Reach({0x10: (None, 0, "root"), 0x20: (0x10, 16, "root")}, 0, False)
    lost = [HeapProblem(0x20, "gone", "root -> +0x10 = heap 0x20")]
    rec = gcrecord.verify_record(Verified(space, None, reach, lost), TYPED)
    assert list(rec) == [
        "objects",
        "bytes",
        "untraced",
        "problems",
        "problem_count",
        "reachable_before",
        "untraced_before",
        "lost",
        "typed",
    ]
    assert rec["problems"] == [{"ref": 0x40, "problem": "copied bit set after the collection"}]
    assert rec["lost"] == [{"ref": 0x20, "problem": "gone", "path": "root -> +0x10 = heap 0x20"}]
    assert (rec["objects"], rec["bytes"], rec["reachable_before"]) == (5, 160, 2)
    # The space's problem and the typed verify's violation; lost objects are counted apart.
    assert rec["problem_count"] == 2 and rec["typed"] is TYPED


def test_unreadable_space_and_no_roots_still_count_the_typed_problems():
    note = gcrecord.verify_record(Verified(None, "space unreadable", None, []), TYPED)
    assert note == {"note": "space unreadable", "problem_count": 1, "typed": TYPED}
    none = gcrecord.verify_record(None, {"note": "typed verify not available"})
    assert none == {"problem_count": 0, "typed": {"note": "typed verify not available"}}


# -- each root's verdict (gcafter) and its record (gcrecord) ---------------------------------

HEAP, LENGTH, A, OLD = 0x100000, 0x1000, 0x10, 0x810


def _heap_world():
    layout, _ = gcheap.layout_for(50)
    mem = bytearray(LENGTH)
    struct.pack_into("<IIII", mem, A, 0xB0000000, 7, 32, 0)
    struct.pack_into("<I", mem, A + 16, 42)
    struct.pack_into("<IIIII", mem, OLD, 0xB0000000 | gccheck.COPIED_BIT, 7, 32, 0, A)
    target = MemoryTarget({HEAP: bytes(mem)}, [])
    heap = gcheap.Heap(HEAP, LENGTH, None, 0x2000, None, None, 50, layout)
    return MemoryCache(target), heap, bytes(mem[A : A + 32])


def _root(raw, heap, obj=None):
    return gccheck.Root(1, 2, "f", 0x1000, 0x7000, 8, 0x6FF8, raw, heap, "copying", obj)


def test_root_verdicts_and_their_records():
    mem, heap, a_bytes = _heap_world()
    unreadable = gcafter.root_after(mem, _root(OLD, heap), None, heap, None, {})
    assert unreadable.state is RootState.UNREADABLE and "unreadable" in unreadable.problem
    same_i31 = gcafter.root_after(mem, _root(0x15, heap), 0x15, heap, None, {})
    assert (same_i31.state, same_i31.problem) == (RootState.OTHER, None)
    changed = gcafter.root_after(mem, _root(0x15, heap), 0x17, heap, None, {})
    assert changed.state is RootState.CHANGED and "0x15 -> 0x17" in changed.problem
    # Moved from OLD to A, the same object: no problem, identical.
    moved = gcafter.root_after(mem, _root(OLD, heap, a_bytes), A, heap, None, {OLD: A})
    assert (moved.state, moved.problem, moved.identical) == (RootState.MOVED, None, True)
    # Left pointing at the old copy: the forwarding header says where it went.
    stale = gcafter.root_after(mem, _root(OLD, heap, a_bytes), OLD, heap, None, {})
    assert stale.state is RootState.UNCHANGED and "copied to 0x10" in stale.problem
    rec = gcrecord.root_record(_root(OLD, heap, a_bytes), moved, "was stale")
    assert rec["state"] == "moved" and type(rec["state"]) is str
    assert (rec["old"], rec["new"], rec["problem_before"]) == (OLD, A, "was stale")
    assert rec["before"] == rec["after"] == a_bytes.hex()
    assert rec["path"] == "thread 1 frame #2 f SP+8"
    assert "before" not in gcrecord.root_record(_root(0x15, heap), same_i31, None)
