"""Frames and images to JSON-ready records: the one schema for both debuggers.

Stable keys (more may be added, these stay):
    {"threads": [{"thread": int, "frames": [{"level", "pc", "function", "fp", "sp",
      "frame_size", "safepoint", "reason", "slots": [{"offset", "address", "raw",
      "kind", "value"}]}]}]}
"""

from .errors import StackMapsError
from .image import WasmtimeImage
from .walk import Activation, Slot, WasmFrame

SCHEMA_VERSION = 1


def slot_record(s: Slot) -> dict:
    ref = s.ref
    return {
        "offset": s.offset,
        "address": s.address,
        "raw": s.raw,
        "kind": ref.kind if ref else "unreadable",
        "value": ref.value if ref else None,
    }


def frame_record(f: WasmFrame) -> dict:
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
        "function_offset": (f.text_offset - f.function.start) if f.function else None,
        "wasm_function_index": f.function.index if f.function else None,
        "image_base": f.image.base,
        "activation": f.activation,
        "innermost": f.innermost,
        "debugger_level": f.debugger_level,  # the debugger's frame number, where it gave one
        "error": f.error,
        "note": f.note,
    }


def thread_record(num: int, activations: list[Activation], extra: dict | None = None) -> dict:
    rec = {
        "thread": num,
        "frames": [frame_record(f) for a in activations for f in a.frames],
        "activations": [
            {"source": a.source, "end": a.end, "frames": len(a.frames)} for a in activations
        ],
    }
    if extra:
        rec.update(extra)
    return rec


def image_record(img: WasmtimeImage) -> dict:
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


def document(threads: list[dict], **extra) -> dict:
    doc = {"schema": SCHEMA_VERSION, "threads": threads}
    doc.update(extra)
    return doc
