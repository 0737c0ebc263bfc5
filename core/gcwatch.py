"""`stackmap gc-watch`: stop briefly around every point where a collection can run.

Where a collection can start, in any embedder:
  - wasm calling one of Wasmtime's GC builtins: the image's own trampolines
    `wasmtime_builtin_<name>` (allocation, heap growth, an explicit collection);
  - where the host has symbols: the C API's exported `wasmtime_context_gc` and
    the Rust API's `Store::gc` (host-initiated collections), and the
    collector's own `GcHeap::gc`, which runs once per collection.
At a builtin's (or API call's) entry the roots of every stack of the process
are recorded (core/gccheck.py); a breakpoint at its return address (the same
thread at the same stack pointer) checks them after the call. `GcHeap::gc`
hits inside a watched call are that call's collections; a builtin call in which
it never ran did not collect and is only counted (without host symbols every
call is checked, and reported when a root moved or a check failed).
"""

import functools
import re
from collections.abc import Callable
from typing import NamedTuple

from . import gccheck, gcrecord, gcverify
from .discover import ImageRegistry
from .errors import StackMapsError
from .session import Session
from .target import MemoryCache, Target

BUILTIN_PREFIX = "wasmtime_builtin_"
# Builtins that may run a collection or move the heap, across Wasmtime 32..50 (`gc` is the
# explicit collection of 32-35, `force_gc` of 48+; `grow_gc_heap` grows the null heap).
GC_BUILTINS = frozenset(
    {"gc", "gc_alloc_raw", "force_gc", "grow_gc_heap", "array_new_data", "array_new_elem"}
)
# Host functions, where the host has symbols: (regex the debugger searches names with: plain
# characters, `.*`, `^`, `$` only, the same in GDB's and LLDB's regex flavours; the names
# accepted; kind). A "marker" runs once per collection (the collector's `GcHeap::gc`, which
# sets a collection up): it counts the collections inside a watched call. An "entry" is a
# synchronous call that returns once its collection is complete (the C API's
# `wasmtime_context_gc`, the Rust API's `Store::gc`): it is watched like a builtin.
# (`StoreOpaque::do_gc` is an async fn body, polled several times per collection.)
HOST_POINTS = (
    ("GcHeap>::gc$", re.compile(r"Heap as .*GcHeap>::gc$"), "marker"),
    ("^wasmtime_context_gc$", re.compile(r"^wasmtime_context_gc$"), "entry"),
    ("Store<.*>>::gc$", re.compile(r"::Store<.*>>::gc$"), "entry"),
)
MAX_LOG = 10_000  # records kept for `gc-watch log`


class Point(NamedTuple):
    address: int
    name: str  # "gc_alloc_raw", "wasmtime_context_gc", "GcHeap::gc", ...
    kind: str  # "builtin" | "entry" | "marker" (above)


def builtin_points(registry: ImageRegistry) -> list[Point]:
    out = []
    for img in registry:
        try:
            start = img.text_start
            funcs = img.functions
        except StackMapsError:
            continue
        if start is None:
            continue
        for f in funcs:
            if f.name.startswith(BUILTIN_PREFIX) and f.name[len(BUILTIN_PREFIX) :] in GC_BUILTINS:
                out.append(Point(start + f.start, f.name[len(BUILTIN_PREFIX) :], "builtin"))
    return out


def host_points(target: Target) -> list[Point]:
    out = []
    for search, accept, kind in HOST_POINTS:
        short = search.strip("^$").replace(".*", "")
        for name, addr in target.find_functions(search):
            if accept.search(name):
                out.append(Point(addr, short, kind))
    return out


class Pending(NamedTuple):
    point: Point
    thread: int
    caller: dict  # the wasm frame (or host) that called the point
    before: gccheck.Snapshot
    sp: int  # the thread's stack pointer once the point has returned
    handle: object
    collections: list[int]  # host collector entries seen during the call (a mutable cell)
    early: dict[int, str]  # slot address -> what was wrong with the root before the call
    reach: gcverify.Reach | None = None  # what the roots reached before the call (copying)


def return_of(target: Target, pc: int, sp: int, lr: int | None) -> tuple[int, int]:
    """(return address, stack pointer after the return) of a thread at a function's entry."""
    if target.arch == "x86_64":
        return MemoryCache(target).u64(sp), sp + 8
    if lr is None:
        raise StackMapsError("no link register at the function's entry")
    return lr, sp


class GcWatch:
    """The breakpoints of `gc-watch on` and what they found."""

    def __init__(self, session: Session):
        self.session = session
        self.enabled = False
        self.verify = False
        self.stop_on_violation = False
        self.stop_at: int | None = None  # stop after this collection's check
        self.armed: dict[int, tuple[Point, object]] = {}
        self.pending: dict[int, list[Pending]] = {}  # thread -> calls in progress
        self.log: list[dict] = []
        self.counts = {
            "collections": 0,
            "calls": 0,
            "no_collection": 0,
            "violations": 0,
            "unbracketed": 0,  # collections the host ran outside any watched call
        }
        self.host_known = False  # the host's collector entry has a breakpoint
        self.errors = 0
        # Called with (target, record) after each checked collection (`watch` re-arms there).
        self.listeners: list[Callable[[Target, dict], None]] = []
        self.quiet = False  # turned on by `watch` only: no line per collection

    # -- arming ------------------------------------------------------------------------
    def enable(
        self, target: Target, verify: bool, stop_on_violation: bool, stop_at: int | None = None
    ) -> dict:
        self.verify, self.stop_on_violation, self.stop_at = verify, stop_on_violation, stop_at
        self.quiet = False
        if not self.enabled:
            self.log.clear()
            for k in self.counts:
                self.counts[k] = 0
        self.enabled = True
        try:
            self.session.discover(target)
        except StackMapsError:
            pass  # no image yet: builtins are armed when one shows up
        for p in host_points(target):
            self._arm(target, p)
        self.host_known = any(p.kind == "marker" for p, _ in self.armed.values())
        self.arm_images(target)
        return self.summary()

    def arm_images(self, target: Target) -> None:
        for p in builtin_points(self.session.registry):
            if p.address not in self.armed:
                self._arm(target, p)

    def _arm(self, target: Target, p: Point) -> None:
        if p.address in self.armed:
            return
        h = target.set_breakpoint(p.address, functools.partial(self._entry, p=p))
        self.armed[p.address] = (p, h)

    def disable(self, target: Target) -> dict:
        for _, h in self.armed.values():
            target.delete_breakpoint(h)
        for calls in self.pending.values():
            for c in calls:
                target.delete_breakpoint(c.handle)
        self.armed.clear()
        self.pending.clear()
        self.enabled = False
        return self.summary()

    def summary(self) -> dict:
        names: dict[str, int] = {}
        for p, _ in self.armed.values():
            names[p.name] = names.get(p.name, 0) + 1
        return {
            "enabled": self.enabled,
            "verify": self.verify,
            "stop_on_violation": self.stop_on_violation,
            "points": names,
            "host_collector_known": self.host_known,
            **self.counts,
            "errors": self.errors,
        }

    # -- the stops -----------------------------------------------------------------------
    def _entry(self, target: Target, p: Point) -> bool:
        if not self.enabled:
            return False
        try:
            return self._entry_checked(target, p)
        except StackMapsError as e:
            self.errors += 1
            target.write(f"gc-watch: at {p.name}: {e}")
            return False

    def _entry_checked(self, target: Target, p: Point) -> bool:
        tnum = target.selected_thread()
        calls = self.pending.setdefault(tnum, [])
        if p.kind == "marker":
            if calls:  # the collector starts inside a watched call: that call's collection
                calls[-1].collections.append(p.address)
            else:  # e.g. the first collection, in a call made before its image was known
                self.session.discover(target)
                self.arm_images(target)
                self._bracket_from_host(target, tnum, p)
            return False
        if calls:  # an entry inside a watched call (the C API's gc calling the crate's)
            return False
        ts = next((t for t in target.threads() if t.num == tnum), None)
        if ts is None:
            return False
        self.arm_images(target)
        ra, sp_after = return_of(target, ts.pc, ts.sp, ts.lr)
        before = gccheck.take_snapshot(self.session, target, tnum)
        mem = MemoryCache(target)
        early = gccheck.problems_now(mem, before.roots, before.store_context)
        reach = gcverify.before_collection(mem, before)
        caller = _caller(self.session.registry, ra)
        h = target.set_breakpoint(ra, functools.partial(self._return, tnum=tnum, sp=sp_after))
        calls.append(Pending(p, tnum, caller, before, sp_after, h, [], early, reach))
        return False

    def _bracket_from_host(self, target: Target, tnum: int, p: Point) -> None:
        """A collection starting outside any watched call: when the thread is inside a GC
        builtin called from wasm (called before its image was known), check it at the
        builtin's return; else (a collection the host started) count it."""
        before = gccheck.take_snapshot(self.session, target, tnum)
        if before.in_builtin is None:
            self.counts["unbracketed"] += 1
            return
        fp, ra, name = before.in_builtin
        sp_after = fp + 16  # the builtin's frame record popped, its return address taken
        mem = MemoryCache(target)
        early = gccheck.problems_now(mem, before.roots, before.store_context)
        reach = gcverify.before_collection(mem, before)
        caller = _caller(self.session.registry, ra)
        h = target.set_breakpoint(ra, functools.partial(self._return, tnum=tnum, sp=sp_after))
        point = Point(p.address, name, "builtin")
        self.pending[tnum].append(
            Pending(point, tnum, caller, before, sp_after, h, [p.address], early, reach)
        )

    def _return(self, target: Target, tnum: int, sp: int) -> bool:
        if target.selected_thread() != tnum:
            return False
        calls = self.pending.get(tnum) or []
        ts = next((t for t in target.threads() if t.num == tnum), None)
        if not calls or ts is None or ts.sp != sp or calls[-1].sp != sp:
            return False  # the same return address reached by another call
        call = calls.pop()
        target.delete_breakpoint(call.handle)
        self.counts["calls"] += 1
        if not call.collections and self.host_known and call.point.kind == "builtin":
            self.counts["no_collection"] += 1
            return False
        try:
            rec = gcrecord.check_after(target, call, len(self.log) + 1, self.host_known)
            # Objects the roots reached before and the collection did not copy.
            lost = gcverify.lost_after(MemoryCache(target), call.before, call.reach)
            rec["lost"] = gcrecord.problem_records(lost)
            rec["counts"]["lost"] = len(lost)
            if self.verify:
                ver = gcverify.after_collection(MemoryCache(target), call.before, call.reach)
                rec["verify"] = gcrecord.verify_record(ver, gcverify.typed(self.session, target))
        except StackMapsError as e:
            self.errors += 1
            target.write(f"gc-watch: after {call.point.name}: {e}")
            return False
        if rec["collections"] is None and not rec["counts"]["moved"] and not rec["violations"]:
            self.counts["no_collection"] += 1
            return False  # nothing seen: an allocation that did not collect (as far as we know)
        self.counts["collections"] += 1
        self.counts["violations"] += len(rec["violations"])
        if len(self.log) < MAX_LOG:
            self.log.append(rec)
        from .gcrender import gcwatch_lines  # (imported late: render imports pygments)

        if not self.quiet:
            for line in gcwatch_lines(rec):
                target.write(line)
        for listener in self.listeners:
            listener(target, rec)
        heap_problems = (rec.get("verify") or {}).get("problem_count", 0) + len(rec["lost"])
        self.counts["violations"] += heap_problems
        if (rec["violations"] or heap_problems) and self.stop_on_violation:
            if rec["violations"]:
                v = rec["violations"][0]
                target.select_frame(v["thread"], v["pc"], v["fp"])
            return True
        return rec["collection"] == self.stop_at


def _caller(registry: ImageRegistry, ra: int) -> dict:
    img = registry.image_at(ra)
    if img is None:
        return {"pc": ra, "function": None}
    off = img.text_offset(ra)
    f = img.function_at(off) if off is not None else None
    return {
        "pc": ra,
        "function": f.name if f else None,
        "function_offset": off - f.start if f and off is not None else None,
    }
