"""`stackmap watch`: a hardware write watchpoint on a root slot or on a field of a GC object.

What can be watched (SPEC):
  [#N] SP+OFF          a live slot of wasm frame N (as `stackmap bt` numbers the selected
                       thread's frames; the selected frame without #N)
  REF+OFF              4 bytes at byte OFF of the object at REF (`heap 0x70`, `0x70`, or
                       `[#N] SP+OFF->` for the object a root slot points at), OFF counted
                       from the object's start (its header included)
  REF.FIELD            a struct field by name or index (needs the module's types)
The next write stops the process with the writer's frame on top (a wasm function,
named in the report line). Writes made while gc-watch sees a collection running
(the collector copying or updating) are let through. A watched object field
follows its object: after each collection gc-watch checks, the object's old
location is looked up (the copying collector's forwarding header says where it
went) and the watchpoint re-armed there; a watched object that was not copied
is dead, and its watch is deleted.
"""

import functools
import re
from typing import NamedTuple

from . import gccheck, gcheap
from .errors import StackMapsError
from .frames import WasmFrame
from .gcwatch import GcWatch
from .session import Session
from .target import ByteOrder, MemoryCache, Target

WIDTH = 4  # a slot or a field word: GC refs, i32, f32 (wider fields: their first word)

_SLOT = r"(?:#(?P<level>\d+)\s*)?SP\s*\+\s*(?P<off>0x[0-9a-fA-F]+|\d+)"
_REF = r"(?:heap\s+)?(?P<ref>0x[0-9a-fA-F]+|\d+)"
_SPEC = re.compile(
    rf"^\s*(?:(?P<slot>{_SLOT})\s*(?P<deref>->)?|{_REF})\s*"
    r"(?:\+\s*(?P<foff>0x[0-9a-fA-F]+|\d+)|\.(?P<field>\w+))?\s*$"
)


class Spec(NamedTuple):
    level: int | None
    slot_offset: int | None
    deref: bool
    ref: int | None
    field_offset: int | None
    field: str | None


def parse_spec(text: str) -> Spec:
    m = _SPEC.match(text)
    if m is None:
        raise StackMapsError(
            f"watch: cannot read {text!r}: give '[#N] SP+OFF', 'heap 0xREF+OFF', "
            f"'[#N] SP+OFF->+OFF' or REF.FIELD"
        )

    def num(name: str) -> int | None:
        v = m.group(name)
        return int(v, 0) if v is not None else None

    spec = Spec(
        num("level"),
        num("off"),
        bool(m.group("deref")),
        num("ref"),
        num("foff"),
        m.group("field"),
    )
    if spec.slot_offset is not None and not spec.deref and (spec.field_offset or spec.field):
        raise StackMapsError("watch: a field needs an object: write 'SP+OFF->+FIELD_OFF'")
    if spec.deref and spec.field_offset is None and spec.field is None:
        raise StackMapsError("watch: '->' needs a field after it ('->+16', '->.name')")
    if spec.ref is not None and spec.field_offset is None and spec.field is None:
        raise StackMapsError("watch: which word of the object? add '+OFF' or '.FIELD'")
    return spec


class Watch:
    def __init__(self, number: int, text: str, what: str, address: int, width: int = WIDTH):
        self.number = number
        self.text = text
        self.what = what  # "slot" | "field"
        self.address = address
        self.width = width
        self.heap: gcheap.Heap | None = None
        self.collector: str | None = None
        self.ref: int | None = None
        self.offset = 0
        self.handle: object = None
        self.moves = 0
        self.hits = 0
        self.value: int | None = None  # the word's value when armed or last hit

    def record(self) -> dict:
        return {
            "number": self.number,
            "spec": self.text,
            "what": self.what,
            "address": self.address,
            "ref": self.ref,
            "offset": self.offset if self.ref is not None else None,
            "moves": self.moves,
            "hits": self.hits,
        }


class Watches:
    """The watches of one debugger session."""

    def __init__(self, session: Session, gcwatch: GcWatch):
        self.session = session
        self.gcwatch = gcwatch
        self.watches: dict[int, Watch] = {}
        self.next = 1
        gcwatch.listeners.append(self._after_collection)

    def add(self, target: Target, text: str) -> Watch:
        spec = parse_spec(text)
        tnum = target.selected_thread()
        got = self.session.collect(target, {tnum})
        frames = [(n, f) for _, acts in got.threads for n, a in enumerate(acts) for f in a.frames]
        w: Watch
        if spec.slot_offset is not None:
            n, frame = _pick_frame(target, frames, spec.level)
            slot = next((s for s in frame.slots if s.offset == spec.slot_offset), None)
            if slot is None:
                live = ", ".join(f"SP+{s.offset}" for s in frame.slots) or "none"
                raise StackMapsError(
                    f"watch: frame #{frame.level} has no live slot SP+{spec.slot_offset} "
                    f"(live slots: {live})"
                )
            if not spec.deref:
                w = Watch(self.next, text, "slot", slot.address)
                return self._arm(target, w, f"frame #{frame.level} {frame.function_name}")
            if slot.ref is None or slot.ref.kind != "heap":
                raise StackMapsError(f"watch: SP+{slot.offset} holds no heap ref")
            ref = slot.ref.value
            heap = got.heap.heaps.get((tnum, n))
            finding = got.heap.activations.get((tnum, n))
        else:
            ref = spec.ref
            heap = next((h for (t, _), h in got.heap.heaps.items() if t == tnum), None)
            finding = next((r for (t, _), r in got.heap.activations.items() if t == tnum), None)
        if heap is None:
            raise StackMapsError("watch: the GC heap of the selected thread's store is not located")
        collector = finding.collector if finding is not None else None
        assert ref is not None
        width, label = WIDTH, f"heap {ref:#x}+{spec.field_offset or 0}"
        if spec.field is not None:
            off, width, label = _field(self.session, target, ref, spec.field)
        else:
            off = spec.field_offset or 0
        obj = gccheck.read_object(MemoryCache(target), heap, collector, ref)
        if obj is None:
            raise StackMapsError(f"watch: no object at heap {ref:#x}")
        if gccheck.ref_problem(MemoryCache(target), heap, collector, ref, None):
            raise StackMapsError(f"watch: heap {ref:#x} is not a live object")
        if off + width > len(obj):
            raise StackMapsError(f"watch: +{off} is past the object's {len(obj)} bytes")
        w = Watch(self.next, text, "field", heap.base + ref + off, width)
        w.heap, w.collector, w.ref, w.offset = heap, collector, ref, off
        if not self.gcwatch.enabled:  # following the object needs the collections watched
            self.gcwatch.enable(target, False, False)
            self.gcwatch.quiet = True
        return self._arm(target, w, label)

    def _arm(self, target: Target, w: Watch, where: str) -> Watch:
        w.value = _word(target, w.address, w.width)
        w.handle = target.set_watchpoint(w.address, w.width, functools.partial(self._hit, w=w))
        self.watches[w.number] = w
        self.next += 1
        target.write(f"watch #{w.number}: {where} at {w.address:#x} ({w.width} bytes)")
        return w

    def delete(self, target: Target, number: int | None) -> list[int]:
        gone = [n for n in self.watches if number is None or n == number]
        if number is not None and not gone:
            raise StackMapsError(f"watch: no watch #{number}")
        for n in gone:
            target.delete_breakpoint(self.watches.pop(n).handle)
        return gone

    def _hit(self, target: Target, w: Watch) -> bool:
        if any(self.gcwatch.pending.values()):
            return False  # the collector moving or updating: not the mutator's write
        w.hits += 1
        tnum = target.selected_thread()
        ts = next((t for t in target.threads() if t.num == tnum), None)
        writer = "host code"
        if ts is not None:
            img = self.session.registry.image_at(ts.pc)
            off = img.text_offset(ts.pc) if img is not None else None
            f = img.function_at(off) if img is not None and off is not None else None
            if f is not None and off is not None:
                writer = f"{f.name}+{off - f.start:#x}"
            elif ts is not None:
                writer = f"host pc {ts.pc:#x}"
        old, w.value = w.value, _word(target, w.address, w.width)
        target.write(
            f"watch #{w.number} ({w.text}): {w.address:#x} written by {writer} "
            f"(thread {tnum}): {_hex(old)} -> {_hex(w.value)}"
        )
        return True

    def _after_collection(self, target: Target, rec: dict) -> None:
        """Re-arm the object watches whose object the collection moved."""
        mem = MemoryCache(target)
        for w in list(self.watches.values()):
            if w.what != "field" or w.heap is None or w.ref is None or w.collector != "copying":
                continue
            heap = gccheck.heap_now(mem, w.heap)
            new = gccheck.forwarded_to(mem, heap, w.ref)
            if new is None or new == w.ref:
                if gccheck.ref_problem(mem, heap, w.collector, w.ref, None) is None:
                    continue
                target.delete_breakpoint(self.watches.pop(w.number).handle)
                target.write(f"watch #{w.number}: object {w.ref:#x} died in a collection: deleted")
                continue
            target.delete_breakpoint(w.handle)
            w.heap, w.ref, w.address = heap, new, heap.base + new + w.offset
            w.moves += 1
            w.handle = target.set_watchpoint(w.address, w.width, functools.partial(self._hit, w=w))


def _word(target: Target, address: int, width: int = WIDTH) -> int | None:
    try:
        return ByteOrder(target.little_endian).int(target.read_memory(address, width))
    except StackMapsError:
        return None


def _hex(v: int | None) -> str:
    return "unreadable" if v is None else f"{v:#x}"


# Bytes a watchpoint covers for a field of each storage type (a v128: its first 8 bytes).
_WIDTHS = {"i8": 1, "i16": 2, "i64": 8, "f64": 8, "v128": 8}


def _field(session: Session, target: Target, ref: int, name: str) -> tuple[int, int, str]:
    """(offset from the object's start, watch width, label) of field NAME (or index) of the
    object at `ref`, from the module's types (the heap inspector's typed view)."""
    try:
        from .heapctx import context  # the heap inspector (issue 13)
    except ImportError:
        raise StackMapsError(
            "watch: field names need the module's types, not available in this version: "
            "use REF+OFF (+16 is the first field after the copying collector's header)"
        ) from None
    obj = context(session, target).view.describe(ref, depth=0, elements=0)
    fields = obj.get("fields")
    if not fields:
        why = obj.get("error") or obj.get("type_note") or "not a struct of a known type"
        raise StackMapsError(f"watch: heap {ref:#x}: {why}")
    for f in fields:
        if f.get("name") == name or str(f.get("index")) == name:
            off = f["offset"] - ref
            storage = (f.get("type") or "").split()[-1]
            width = _WIDTHS.get(storage, WIDTH)
            while width > 1 and (off % width):  # debug registers want an aligned range
                width //= 2
            tname = (obj.get("type") or {}).get("name") or "struct"
            return off, width, f"heap {ref:#x} {tname}.{f.get('name') or f['index']} (+{off})"
    names = ", ".join(str(f.get("name") or f["index"]) for f in fields)
    raise StackMapsError(f"watch: heap {ref:#x} has no field {name!r} (fields: {names})")


def _pick_frame(
    target: Target, frames: list[tuple[int, WasmFrame]], level: int | None
) -> tuple[int, WasmFrame]:
    if level is not None:
        for n, f in frames:
            if f.level == level:
                return n, f
        raise StackMapsError(f"watch: no wasm frame #{level} (see 'stackmap bt')")
    sel = target.selected_frame()
    for n, f in frames:
        if sel is not None and f.pc == sel.pc and (sel.fp is None or f.fp == sel.fp):
            return n, f
    raise StackMapsError("watch: the selected frame is not a wasm frame: give #N")
