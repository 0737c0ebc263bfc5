"""Text of backtraces: `stackmap bt`, the context shown after a stop, suspended fiber
stacks, rendered from the report records (core/report.py)."""

from .render import Style, describe_slot, escaped, frame_parts, slot_color, slot_lines
from .report import Record
from .width import wrap_parts


@escaped
def context_lines(th: Record, style: Style, most: int = 8) -> list[str]:
    """`stackmap context on`: after a stop, the selected thread's roots in a few lines."""
    frames = th["frames"]
    rooted = [f for f in frames if f["safepoint"] and f["slots"]]
    refs = sum(s["kind"] != "null" for f in rooted for s in f["slots"])
    title = (
        f"wasm roots: thread {th['thread']}, {len(frames)} wasm frame{'s' * (len(frames) != 1)}, "
        f"{refs} live ref{'s' * (refs != 1)}"
    )
    width = style.width or len(title) + 8
    out = [style("brightblack", f"── {title} " + "─" * max(0, width - len(title) - 4))]
    for fr in rooted[:most]:
        name = fr["function"] or "??"
        off = fr.get("function_offset")
        short = name.rsplit("::", 1)[-1] if name.startswith("wasm[") else name
        where = f"{short}+{off:#x}" if off is not None else short
        shown = [
            f"SP+{s['offset']}=" + style(slot_color(s["kind"]), describe_slot(s))
            for s in fr["slots"]
        ]
        parts = [("", style("brightblack", f"#{fr['level']:<3}")), (" ", style("green", where))]
        parts += [(" ", text + ",") for text in shown[:-1]] + [(" ", shown[-1])]
        out.extend(wrap_parts(parts, style.width))
    if len(rooted) > most:
        out.append(f"     ... {len(rooted) - most} more frames with roots: 'stackmap bt'")
    if not rooted:
        out.append("     no live GC references in these frames")
    return out


@escaped
def bt_lines(doc: Record, style: Style, full: bool = False) -> list[str]:
    """`stackmap bt`: each thread's wasm frames, then the suspended fiber stacks (if any)."""
    out: list[str] = []
    for th in doc["threads"]:
        frames = th["frames"]
        nact = len(th.get("activations", []))
        label = f"Thread {th['thread']}"
        if th.get("name"):
            label += f' "{th["name"]}"'
        if not frames:
            out.append(f"{label}: no wasm frames")
            continue
        total = th.get("frames_total", len(frames))
        count = f"{total} wasm frame{'s' * (total != 1)}"
        if total > len(frames):  # bt -n N
            count = f"showing {len(frames)} of {count}"
        out.append(f"{label}: {count} in {nact} activation{'s' * (nact != 1)}")
        out.extend(wasm_frames_lines(frames, style, full))
    out.extend(suspended_lines(doc, style, full))
    return out


def suspended_lines(doc: Record, style: Style, full: bool = False) -> list[str]:
    """One block per suspended fiber stack: a header, a note on the stack, its frames."""
    out: list[str] = []
    for s in doc.get("suspended") or []:
        lo, hi = s["stack"]
        n = len(s["frames"])
        head = f"Suspended fiber stack {lo:#x}-{hi:#x}: {n} wasm frame{'s' * (n != 1)}"
        if len(s["activations"]) > 1:
            head += f" in {len(s['activations'])} activations"
        if s.get("store_context") is not None:
            head += f", store context {s['store_context']:#x}"
        out.append(head)
        if s.get("note"):
            out.append("      note: " + s["note"])
        out.extend(wasm_frames_lines(s["frames"], style, full))
    return out


def wasm_frames_lines(frames: list[Record], style: Style, full: bool = False) -> list[str]:
    """One line per frame (and its notes); `~~ host frames ~~` between activations."""
    out: list[str] = []
    prev_act = None
    shown_heap_note = None
    for fr in frames:
        if prev_act is not None and fr["activation"] != prev_act:
            out.append(style("brightblack", "     ~~ host frames ~~"))
        prev_act = fr["activation"]
        out.extend(wrap_parts(frame_parts(fr, style, full), style.width))
        if full:
            out.extend(slot_lines(fr, style))
        if fr.get("note"):
            out.append("      note: " + fr["note"])
        if fr.get("error"):
            out.append("      " + style("red", "error: " + fr["error"]))
        note = fr.get("heap_note")
        if note and note != shown_heap_note and _heap_note_shown(note):
            out.append("      " + style("brightblack", note))
            shown_heap_note = note
        if "suspicious" in fr:
            out.extend(suspicious_lines(fr, style))
    return out


# Heap notes shown under a frame (once per run of frames): why there are no objects,
# or that the store of the objects shown was not confirmed by the runtime's records.
NOTE_SHOWN = ("GC heap not located", "heap ambiguous")


def _heap_note_shown(note: str) -> bool:
    return note.startswith(NOTE_SHOWN) or "unconfirmed:" in note


def suspicious_lines(fr: Record, style: Style) -> list[str]:
    words = fr["suspicious"]
    if words is None:
        return ["      suspicious-slot check " + fr["suspicious_note"]]
    if not words:
        return []
    shown = ", ".join(f"SP+{w['offset']}={w['raw']:#x} ({w['object_kind']})" for w in words)
    return ["      " + style("red", f"suspicious (heuristic, not in the map): {shown}")]
