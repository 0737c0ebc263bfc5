"""Text rendering of the report records: backtrace lines, frame details, hexdump, colour."""

from collections.abc import Iterable

from pygments.console import colorize

from .heaprender import brief


class Style:
    """ANSI colour through pygments' console palette, or plain text."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, color: str, text: str) -> str:
        return colorize(color, text) if self.enabled else text


def describe_slot(s: dict) -> str:
    kind = s["kind"]
    if kind == "null":
        return "null"
    if kind == "i31":
        return f"i31 {s['value']}"
    if kind == "heap":
        text = f"heap {s['value']:#x}"
        obj = s.get("object")
        if obj:
            text += f" ({obj['kind']}"
            if obj.get("type_index") is not None:
                text += f" type {obj['type_index']}"
            if obj.get("length") is not None:
                text += f", length {obj['length']}"
            if obj.get("size") is not None:
                text += f", {obj['size']} bytes"
            text += ")"
            if obj.get("type"):
                text += " " + brief(obj)
        return text
    return "unreadable"


def _slot_color(kind: str) -> str:
    return {"null": "gray", "i31": "cyan", "heap": "yellow"}.get(kind, "red")


def frame_header(fr: dict, style: Style) -> str:
    name = fr["function"] or "??"
    off = fr.get("function_offset")
    where = f"{name}+{off:#x}" if off is not None else name
    parts = [
        style("brightblack", f"#{fr['level']:<3}"),
        f"{fr['pc']:#018x} in",
        style("green", where),
        f"fp={fr['fp']:#x}",
    ]
    if fr["frame_size"] is not None:
        parts.append(f"sp={fr['sp']:#x} size={fr['frame_size']}")
    return " ".join(parts)


def bt_lines(
    doc: dict, style: Style, full: bool = False, host_names: dict[int, str] | None = None
) -> list[str]:
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
        out.append(
            f"{label}: {len(frames)} wasm frame{'s' * (len(frames) != 1)} in "
            f"{nact} activation{'s' * (nact != 1)}"
        )
        prev_act = None
        shown_heap_note = None
        for fr in frames:
            if prev_act is not None and fr["activation"] != prev_act:
                out.append(style("brightblack", "     ~~ host frames ~~"))
            prev_act = fr["activation"]
            line = frame_header(fr, style)
            slots = fr["slots"]
            if fr["safepoint"]:
                live = [s for s in slots if s["kind"] != "null"]
                summary = f"{len(slots)} slot{'s' * (len(slots) != 1)}"
                if not full:
                    shown = ", ".join(
                        f"SP+{s['offset']}=" + style(_slot_color(s["kind"]), describe_slot(s))
                        for s in slots
                    )
                    summary += f" ({len(live)} non-null): {shown}"
                line += "  " + summary
            else:
                line += "  " + style("brightblack", f"[{fr['reason']}]")
            out.append(line)
            if full:
                out.extend(slot_lines(fr, style))
            if fr.get("note"):
                out.append("      note: " + fr["note"])
            if fr.get("error"):
                out.append("      " + style("red", "error: " + fr["error"]))
            note = fr.get("heap_note")
            if note and note.startswith("GC heap not located") and note != shown_heap_note:
                out.append("      " + style("brightblack", note))
                shown_heap_note = note
            if "suspicious" in fr:
                out.extend(suspicious_lines(fr, style))
    return out


def suspicious_lines(fr: dict, style: Style) -> list[str]:
    words = fr["suspicious"]
    if words is None:
        return ["      suspicious-slot check " + fr["suspicious_note"]]
    if not words:
        return []
    shown = ", ".join(f"SP+{w['offset']}={w['raw']:#x} ({w['object_kind']})" for w in words)
    return ["      " + style("red", f"suspicious (heuristic, not in the map): {shown}")]


def slot_lines(fr: dict, style: Style) -> list[str]:
    out = []
    for s in fr["slots"]:
        raw = f"{s['raw']:#010x}" if s["raw"] is not None else "??????????"
        out.append(
            f"      SP+{s['offset']:<5} {s['address']:#018x}  {raw}  "
            + style(_slot_color(s["kind"]), describe_slot(s))
        )
    return out


def frame_lines(fr: dict, style: Style) -> list[str]:
    name = fr["function"] or "??"
    out = [f"frame #{fr['level']} (thread {fr.get('thread', '?')}): " + style("green", name)]
    to = fr.get("text_offset")
    out.append(f"  pc:         {fr['pc']:#x}" + (f"  (.text+{to:#x})" if to is not None else ""))
    out.append(f"  fp:         {fr['fp']:#x}")
    if fr["safepoint"]:
        out.append(f"  sp:         {fr['sp']:#x}  (fp - frame_size)")
        out.append(f"  frame size: {fr['frame_size']}")
        out.append(
            f"  safepoint:  yes, {len(fr['slots'])} live slot{'s' * (len(fr['slots']) != 1)}"
        )
        out.append("      offset   address             raw         value")
        out.extend(slot_lines(fr, style))
    else:
        out.append(f"  safepoint:  no: {fr['reason']}")
    if fr.get("note"):
        out.append("  note: " + fr["note"])
    if fr.get("error"):
        out.append("  " + style("red", "error: " + fr["error"]))
    if fr.get("heap_note"):
        out.append("  heap: " + fr["heap_note"])
    return out


def hexdump_lines(
    base: int, data: bytes, live_offsets: Iterable[int], style: Style, sp: int
) -> list[str]:
    """Words of SP..FP, 16 bytes a line; live slots coloured (or starred without colour)."""
    live = set(live_offsets)
    out = []
    for line in range(0, len(data), 16):
        words = []
        for w in range(line, min(line + 16, len(data)), 4):
            off = base + w - sp
            text = data[w : w + 4][::-1].hex()  # little-endian u32, most significant first
            if off in live:
                text = style("yellow", text) if style.enabled else text + "*"
            elif not style.enabled:
                text += " "
            words.append(text)
        out.append(f"  {base + line:#018x} SP+{base + line - sp:<5} " + " ".join(words))
    if not style.enabled and live:
        out.append("  (* = live GC reference slot)")
    return out
