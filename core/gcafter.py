"""What became of one root in a collection: its state after it, and what is wrong with it.

A heap root must still point at a live object (core/gccheck.py `ref_problem`), and a
root the collector moved at the same object (`object_difference`, refs to objects that
moved themselves excepted); a null or i31 root must not change. core/gcrecord.py makes
the records of these verdicts; this module only decides.
"""

import enum
from typing import NamedTuple

from . import gccheck, gcheap
from .target import MemoryCache


class RootState(enum.StrEnum):
    MOVED = "moved"  # a heap ref the collector updated
    UNCHANGED = "unchanged"  # a heap ref it left as it was
    CHANGED = "changed"  # a null or i31 root whose value changed (nothing may move those)
    OTHER = "other"  # a null or i31 root, as it was
    UNREADABLE = "unreadable"  # the slot could not be read after the collection


class RootAfter(NamedTuple):
    new: int | None  # the slot's value after the collection
    state: RootState
    problem: str | None  # what is wrong with it now (None: nothing)
    identical: bool | None  # the object is the one it pointed at before (None: not compared)
    heap_ref: bool  # both values heap refs: the object's bytes before and after were read
    after: bytes | None  # the first bytes of the object it points at now (heap refs)


def root_after(
    mem: MemoryCache,
    r: gccheck.Root,
    new: int | None,
    heap: gcheap.Heap,
    spaces: gccheck.Spaces | None,
    moved: dict[int, int],
) -> RootAfter:
    """The verdict on root `r` whose slot now holds `new`, in the heap as it is after the
    collection; `moved` maps every moved root's old value to its new one."""
    if new is None:
        return RootAfter(
            None, RootState.UNREADABLE, "the slot is unreadable after the call", None, False, None
        )
    if new == 0 or new & 1 or not r.raw or r.raw & 1:
        if new == r.raw:
            return RootAfter(new, RootState.OTHER, None, None, False, None)
        why = f"a null/i31 root changed: {r.raw:#x} -> {new:#x}"
        return RootAfter(new, RootState.CHANGED, why, None, False, None)
    state = RootState.MOVED if new != r.raw else RootState.UNCHANGED
    problem = gccheck.ref_problem(mem, heap, r.collector, new, spaces, stack_root=True)
    after = gccheck.read_object(mem, heap, r.collector, new)
    identical = None
    if problem is None and r.obj is not None and after is not None:
        diff = gccheck.object_difference(mem.order, r.obj, after, r.collector, moved)
        identical = diff is None
        if diff and state is RootState.MOVED:
            problem = f"not the object it pointed at before the move: {diff}"
    return RootAfter(new, state, problem, identical, True, after)
