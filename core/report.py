"""Frames and images to JSON-ready records: the one schema for both debuggers.

Stable keys (more may be added, these stay):
    {"threads": [{"thread": int, "frames": [{"level", "pc", "function", "fp", "sp",
      "frame_size", "safepoint", "reason", "slots": [{"offset", "address", "raw",
      "kind", "value"}]}]}]}
"""

import json
import signal
from collections.abc import Iterable
from typing import Any

from .errors import StackMapsError
from .frames import Activation, Slot, WasmFrame, wasm_offset
from .gcheap import GcObject, HeapFinding, HeapReport
from .gcref import SlotKind
from .image import WasmtimeImage
from .suspended import SuspendedStack
from .target import ThreadState
from .traps import lookup_trap, lookup_wasm_offset

SCHEMA_VERSION = 1
# A JSON-ready record: str keys; values str, int, bool, None, lists and records.
Record = dict[str, Any]


def slot_record(s: Slot) -> Record:
    ref = s.ref
    return {
        "offset": s.offset,
        "address": s.address,
        "raw": s.raw,
        "kind": ref.kind if ref else SlotKind.UNREADABLE,
        "value": ref.value if ref else None,
    }


def frame_record(f: WasmFrame) -> Record:
    return {
        "level": f.level,
        "pc": f.pc,
        "function": f.function_name,
        "fp": f.fp,
        "sp": f.sp,
        "frame_size": f.frame_size,
        "safepoint": f.safepoint,
        "reason": f.reason,
        "slots": [slot_record(s) for s in f.slots],
        # extras
        "text_offset": f.text_offset,
        "function_offset": (
            f.text_offset - f.function.start
            if f.function is not None and f.text_offset is not None
            else None
        ),
        "wasm_function_index": f.function.index if f.function else None,
        "wasm_offset": wasm_offset(f),  # what Wasmtime's own backtrace prints for the frame
        "image_base": f.image.base,
        "activation": f.activation,
        "innermost": f.innermost,
        "debugger_level": f.debugger_level,  # the debugger's frame number, where it gave one
        "error": f.error,
        "note": f.note,
    }


def thread_record(num: int, activations: list[Activation], extra: Record | None = None) -> Record:
    rec = {
        "thread": num,
        "frames": [frame_record(f) for a in activations for f in a.frames],
        "activations": [
            {"source": a.source, "end": a.end_text, "frames": len(a.frames)} for a in activations
        ],
    }
    if extra:
        rec.update(extra)
    return rec


def image_record(img: WasmtimeImage) -> Record:
    rec = {
        "base": img.base,
        "size": img.size,
        "path": img.path,
        "kind": img.kind,
        "arch": img.arch,
        "target": None,
        "wasmtime_version": None,
        "text_start": None,
        "text_size": None,
        "functions": None,
        "stackmap_entries": None,
        "loaded_from": img.loaded_from,
        "error": None,
    }
    try:
        rec["target"] = img.engine.target
        rec["wasmtime_version"] = img.engine.version
        off, size = img.text_range
        rec["text_start"] = img.base + off if img.base is not None else off
        rec["text_size"] = size
        rec["functions"] = len(img.functions)
        sm = img.stackmaps
        rec["stackmap_entries"] = len(sm) if sm is not None else 0
    except StackMapsError as e:  # one bad image must not hide the others
        rec["error"] = str(e)
    return rec


def document(threads: list[Record], **extra: object) -> Record:
    doc = {"schema": SCHEMA_VERSION, "threads": threads}
    doc.update(extra)
    return doc


def threads_document(
    collected: Iterable[tuple[ThreadState, list[Activation]]],
    heap: HeapReport,
    limit: int | None = None,
) -> Record:
    """The document of the walked threads (the `limit` innermost frames of each), with the
    GC objects their live refs point at."""
    threads = []
    for t, acts in collected:
        rec = thread_record(t.num, acts, {"name": t.name, "tid": t.tid})
        if limit is not None:
            rec["frames_total"] = len(rec["frames"])  # the header says "showing N of M"
            rec["frames"] = rec["frames"][:limit]
        threads.append(rec)
    return apply_heap(document(threads), heap)


def suspended_records(stacks: Iterable[SuspendedStack]) -> list[Record]:
    """The `suspended` key: one record per suspended fiber stack, frames as a thread's."""
    out = []
    for st in stacks:
        frames, acts = [], []
        for act, tie in st.activations:
            objects = tie.get("objects", {})
            note = tie.get("heap_note")
            for f in act.frames:
                fr = frame_record(f)
                fr["thread"] = None
                for s in fr["slots"]:
                    obj = objects.get((id(f), s["offset"]))
                    if obj is not None:
                        s["object"] = object_record(obj)
                if note and any(s["kind"] == SlotKind.HEAP for s in fr["slots"]):
                    fr["heap_note"] = note
                frames.append(fr)
            rec = {k: v for k, v in tie.items() if k not in ("objects", "heap_note")}
            if isinstance(rec.get("heap"), HeapFinding):
                rec["heap"] = heap_record(rec["heap"])
            acts.append(
                {"source": act.source, "end": act.end_text, "frames": len(act.frames), **rec}
            )
        stores = {a["store_context"] for a in acts if a["store_context"] is not None}
        out.append(
            {
                "stack": [st.region.start, st.region.end],
                "saved_sp": st.saved_sp,
                "store_context": stores.pop() if len(stores) == 1 else None,
                "frames": frames,
                "activations": acts,
                "note": st.note,
            }
        )
    return out


def apply_heap(doc: Record, heap: HeapReport) -> Record:
    """Add `object`, `heap_note` and activation `heap` keys to a report document."""
    for th in doc.get("threads", []):
        num = th.get("thread")
        for fr in th.get("frames", []):
            apply_heap_frame(fr, heap, num)
        for i, act in enumerate(th.get("activations", [])):
            finding = heap.activations.get((num, i))
            if finding is not None:
                act["heap"] = heap_record(finding)
    return doc


def apply_heap_frame(fr: Record, heap: HeapReport, thread: int | None = None) -> Record:
    """Add the `object` of each slot and the frame's `heap_note` to one frame record."""
    num: int = fr["thread"] if thread is None else thread
    level: int = fr["level"]
    for s in fr.get("slots", []):
        obj = heap.objects.get((num, level, s.get("offset")))
        if obj is not None:
            s["object"] = object_record(obj)
    note = heap.frame_notes.get((num, level))
    if note is not None:
        fr["heap_note"] = note
    return fr


def object_record(o: GcObject) -> Record:
    """A heap slot's `object` record: what its ref points at (keys as in the schema)."""
    rec: Record = {
        "kind": o.kind,
        "type_index": o.type_index,
        "size": o.size,
        "length": o.length,
        "header": o.header.hex() if o.header is not None else None,
        "address": o.address,
        "collector": o.collector,
    }
    if o.error is not None:
        rec["error"] = o.error
    if o.copied:
        rec["forwarded"] = o.forwarded
    if o.ref_count is not None:
        rec["ref_count"] = o.ref_count
    if o.payload is not None:
        rec["payload"] = o.payload.hex()
    if o.typed is not None:
        rec.update(o.typed)
    return rec


def heap_record(h: HeapFinding) -> Record:
    """An activation's `heap` record: where its GC heap is, or why it was not located."""
    tie = {}
    if h.tie is not None or h.tie_by_records is not None:
        tie = {"tie": h.tie, "tie_by_records": h.tie_by_records}
    if h.located is None:  # no live heap refs: the store it runs in, only
        return {"located": None, "store_context": h.store_context, **tie, "vmctx": h.vmctx}
    if not h.located or h.heap is None:
        rec: Record = {"located": False, "note": h.note}
        if h.ambiguous is not None:
            rec["ambiguous"] = list(h.ambiguous)
        if tie:
            rec.update(store_context=h.store_context, **tie)
        return rec
    heap = h.heap
    return {
        "located": True,
        "base": heap.base,
        "length": heap.length,
        "vmctx": h.vmctx,
        "store_context": h.store_context,
        **tie,
        "found_at": heap.found_at,
        "found_in": heap.found_in,
        "collector": h.collector,
        "wasmtime_major": heap.major,
        "layout_from": h.layout_from,
    }


def apply_suspicious(doc: Record, found: dict[tuple[int, int], Record]) -> Record:
    """Add `suspicious` words and their note to the frames the heuristic checked."""
    for th in doc["threads"]:
        for fr in th["frames"]:
            hit = found.get((th["thread"], fr["level"]))
            if hit is not None:
                fr["suspicious"] = hit["words"]
                fr["suspicious_note"] = hit["note"]
    return doc


def images_document(images: Iterable[WasmtimeImage], problems: dict[int, str]) -> Record:
    return {
        "schema": SCHEMA_VERSION,
        "images": [image_record(img) for img in images],
        "problems": [{"base": b, "error": e} for b, e in sorted(problems.items())],
    }


def stop_record(stop: Record | None) -> Record | None:
    """The debugger's stop info, with the signal's name when the debugger gave none."""
    if stop and stop.get("signal") and not stop.get("signal_name"):
        stop["signal_name"] = signal_name(stop["signal"])
    return stop


def signal_name(signo: int) -> str | None:
    """Linux signal name (the numbers are the same on every architecture we walk)."""
    try:
        return signal.Signals(signo).name
    except ValueError:
        return None


def trap_record(image: WasmtimeImage | None, pc: int | None) -> Record | None:
    """Trap code and wasm offset when the stopped thread's pc is in wasm code."""
    if image is None or pc is None:
        return None
    off = image.text_offset(pc)
    if off is None:  # not in this image's .text
        return None
    func = image.function_at(off)
    info: Record = {
        "pc": pc,
        "text_offset": off,
        "function": func.name if func else None,
        "code": None,
        "name": None,
        "wasm_offset": None,
        "note": None,
    }
    try:
        traps = image.section_data(".wasmtime.traps")
        hit = lookup_trap(traps, off, image.engine.major) if traps else None
        if hit:
            info.update(hit)
        else:
            info["note"] = "pc is not a trap site (a breakpoint or a fault in a call?)"
        addrmap = image.section_data(".wasmtime.addrmap")
        if addrmap:
            info["wasm_offset"] = lookup_wasm_offset(addrmap, off, image.engine.major)
    except StackMapsError as e:
        info["note"] = str(e)
    return info


def error_document(error: StackMapsError) -> Record:
    """Why a `--json` command failed, for scripts (`wasmtime-stackmaps triage` reads it)."""
    return {"schema": SCHEMA_VERSION, "error": {"kind": error.kind, "message": str(error)}}


def to_json(doc: Record) -> str:
    """One JSON document, one top-level key a line.

    Scripts parse it; people page through it. Indenting every level makes
    json fall back to its pure-Python encoder (5x slower on a 10,000-frame bt).
    """
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()) + "\n}"
