"""All text output of the `stackmap` commands, rendered from the report records
(core/report.py), and the colour policy."""

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pygments.console import colorize

from .gcref import SlotKind
from .heaprender import brief
from .text import safe_record
from .width import wrap_parts

_F = TypeVar("_F", bound=Callable[..., Any])


def _escaped(fn: _F) -> _F:
    """Every record or string argument of a renderer goes through safe_record() first:
    whatever came from the inferior or an image is printed with its control characters
    escaped (`\\x1b`), never raw."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*(a if isinstance(a, Style) else safe_record(a) for a in args), **kwargs)

    return wrapper  # type: ignore[return-value]


class Style:
    """ANSI colour through pygments' console palette, or plain text; and the width to
    wrap frame lines at (the debugger's; None: one line per frame, as `--wide`)."""

    def __init__(self, enabled: bool, width: int | None = None):
        self.enabled = enabled
        self.width = width

    def wide(self) -> "Style":
        return Style(self.enabled, None)

    def __call__(self, color: str, text: str) -> str:
        return colorize(color, text) if self.enabled else text


def color_wanted(debugger_styling: bool) -> bool:
    """Colour when the debugger styles its own output and NO_COLOR is not set."""
    return debugger_styling and not os.environ.get("NO_COLOR")


def describe_slot(s: dict) -> str:
    """A slot record's value: `null`, `i31 N`, `heap 0x.. (its object)`, or `unreadable`."""
    kind = s["kind"]
    if kind == SlotKind.NULL:
        return "null"
    if kind == SlotKind.I31:
        return f"i31 {s['value']}"
    if kind == SlotKind.HEAP:
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


_SLOT_COLORS: dict[str, str] = {
    SlotKind.NULL: "gray",
    SlotKind.I31: "cyan",
    SlotKind.HEAP: "yellow",
}


def _slot_color(kind: str) -> str:
    return _SLOT_COLORS.get(kind, "red")


def frame_header(fr: dict, style: Style) -> str:
    """Where a frame is, on one line (its pc, function, wasm offset, FP, SP, size)."""
    parts = _where_parts(fr, style)
    return parts[0][1] + "".join(sep + text for sep, text in parts[1:])


def _where_parts(fr: dict, style: Style) -> list[tuple[str, str]]:
    name = fr["function"] or "??"
    off = fr.get("function_offset")
    where = f"{name}+{off:#x}" if off is not None else name
    parts = [
        ("", style("brightblack", f"#{fr['level']:<3}")),
        (" ", f"{fr['pc']:#018x} in"),
        (" ", style("green", where)),
    ]
    if fr.get("wasm_offset") is not None:
        # The wasm bytecode offset, as Wasmtime prints it.
        parts.append((" ", f"@ {fr['wasm_offset']:#x}"))
    parts.append((" ", f"fp={fr['fp']:#x}"))
    if fr["frame_size"] is not None:
        parts += [(" ", f"sp={fr['sp']:#x}"), (" ", f"size={fr['frame_size']}")]
    return parts


def frame_parts(fr: dict, style: Style, full: bool = False) -> list[tuple[str, str]]:
    """One frame's line as (separator, text) parts: where it is, then its slots (the
    summary only with `full`, whose slots get lines of their own), or why it has none."""
    parts = _where_parts(fr, style)
    if not fr["safepoint"]:
        return [*parts, ("  ", style("brightblack", f"[{fr['reason']}]"))]
    slots = fr["slots"]
    summary = f"{len(slots)} slot{'s' * (len(slots) != 1)}"
    if full or not slots:
        return [*parts, ("  ", summary)]
    live = sum(s["kind"] != "null" for s in slots)
    parts.append(("  ", f"{summary} ({live} non-null):"))
    shown = [f"SP+{s['offset']}=" + style(_slot_color(s["kind"]), describe_slot(s)) for s in slots]
    parts += [(" ", text + ",") for text in shown[:-1]]
    parts.append((" ", shown[-1]))
    return parts


@_escaped
def context_lines(th: dict, style: Style, most: int = 8) -> list[str]:
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
            f"SP+{s['offset']}=" + style(_slot_color(s["kind"]), describe_slot(s))
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


@_escaped
def bt_lines(doc: dict, style: Style, full: bool = False) -> list[str]:
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


def suspended_lines(doc: dict, style: Style, full: bool = False) -> list[str]:
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


def wasm_frames_lines(frames: list[dict], style: Style, full: bool = False) -> list[str]:
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
        head = f"      SP+{s['offset']:<5} {s['address']:#018x}  {raw}"
        # A long value continues under the value column.
        words = [style(_slot_color(s["kind"]), w) for w in describe_slot(s).split(" ")]
        parts = [("", head), ("  ", words[0]), *((" ", w) for w in words[1:])]
        out.extend(wrap_parts(parts, style.width, " " * (len(head) + 2)))
    return out


def _wrapped(prefix: str, text: str, style: Style, indent: str = "        ") -> list[str]:
    """`prefix` + `text`, its words wrapped at the style's width."""
    words = text.split(" ")
    return wrap_parts(
        [("", prefix + words[0]), *((" ", w) for w in words[1:])], style.width, indent
    )


@_escaped
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
        out.extend(_wrapped("  heap: ", fr["heap_note"], style))
    return out


def hexdump_lines(
    base: int,
    data: bytes,
    live_offsets: Iterable[int],
    style: Style,
    sp: int,
    byteorder: str = "little",
) -> list[str]:
    """Words of SP..FP, 16 bytes a line; live slots coloured (or starred without colour)."""
    live = set(live_offsets)
    out = []
    for line in range(0, len(data), 16):
        words = []
        for w in range(line, min(line + 16, len(data)), 4):
            off = base + w - sp
            word = data[w : w + 4]  # a u32 of the target's byte order, most significant first
            text = (word[::-1] if byteorder == "little" else word).hex()
            if off in live:
                text = style("yellow", text) if style.enabled else text + "*"
            elif not style.enabled:
                text += " "
            words.append(text)
        out.append(f"  {base + line:#018x} SP+{base + line - sp:<5} " + " ".join(words))
    if not style.enabled and live:
        out.append("  (* = live GC reference slot)")
    return out


def frame_dump_lines(
    sp: int,
    frame_size: int,
    data: bytes,
    live_offsets: Iterable[int],
    style: Style,
    byteorder: str = "little",
) -> list[str]:
    """`stackmap frame -x`: the hexdump of SP..FP+16 under its title."""
    return [
        f"  SP..FP+16 ({frame_size} bytes + saved FP, return address):",
        *hexdump_lines(sp, data, live_offsets, style, sp, byteorder),
    ]


@_escaped
def dump_error_line(error: str) -> str:
    return f"  cannot dump the frame: {error}"


NO_DUMP_LINE = "  (no stack map at this pc: no frame size, nothing to dump)"


@_escaped
def images_lines(doc: dict) -> list[str]:
    """`stackmap images`: one line per image (from `report.images_document`), then problems."""
    lines = [
        f"{'base':>18} {'size':>10}  {'kind':9} {'target':28} {'ver':>5} "
        f"{'funcs':>6} {'maps':>6}  path"
    ]
    for r in doc["images"]:
        if r["error"]:
            lines.append(f"{r['base']:#18x} {r['size']:#10x}  error: {r['error']}")
            continue
        lines.append(
            f"{r['base']:#18x} {r['size']:#10x}  {r['kind']:9} "
            f"{(r['target'] or r['arch']):28} {r['wasmtime_version']:>5} "
            f"{r['functions']:>6} {r['stackmap_entries']:>6}  "
            f"{r['path'] or '[anon]'}"
        )
    for p in doc["problems"]:
        lines.append(f"{p['base']:#18x} {'':>10}  unusable: {p['error']}")
    return lines


@_escaped
def loaded_line(rec: dict) -> str:
    """`stackmap load`: what was loaded where (an `image_record`)."""
    start, size = rec["text_start"], rec["text_size"]
    return (
        f"loaded {rec['path']} at {rec['base']:#x} (.text {start:#x}..{start + size:#x}, "
        f"{rec['arch']}, Wasmtime {rec['wasmtime_version']})"
    )


@_escaped
def snapshot_line(name: str, roots: int, frames: int, path: str | None) -> str:
    msg = f"snapshot {name!r}: {roots} roots in {frames} frames"
    if path:
        msg += f", written to {path}"
    return msg


@_escaped
def diff_lines(result: dict) -> list[str]:
    """`stackmap diff`: the counts, then each matched frame's roots and their state."""
    c = result["counts"]
    out = [
        f"{c['changed']} roots changed value, {c['unchanged']} unchanged"
        + (f", {c['added']} added, {c['removed']} removed" if c["added"] or c["removed"] else "")
        + f"; {len(result['frames_gone'])} frames gone, {len(result['frames_new'])} new"
    ]
    for f in result["frames"]:
        out.append(f"#{f['level']:<3} {f['pc']:#018x} {f['function']} fp={f['fp']:#x}")
        for s in f["slots"]:
            old = "-" if s["old"] is None else f"{s['old']:#010x}"
            new = "-" if s["new"] is None else f"{s['new']:#010x}"
            out.append(f"      SP+{s['offset']:<5} {old} -> {new}  {s['state']}")
    return out


@_escaped
def report_lines(doc: dict, style: Style) -> list[str]:
    """`stackmap report` (and `wasmtime-stackmaps triage`) as text."""
    out = []
    proc = doc.get("process") or {}
    out.append("process: " + ", ".join(f"{k}={v}" for k, v in proc.items() if v is not None))
    stop = doc.get("stop")
    if stop:
        sig = stop.get("signal_name") or stop.get("signal")
        pc = stop.get("pc")
        out.append(
            f"stop: thread {stop.get('thread')}"
            + (f", signal {sig}" if sig else "")
            + (f" at pc {pc:#x}" if pc else "")
        )
    trap = doc.get("trap")
    if trap:
        what = trap["name"] or "no trap code"
        out.append(
            f"trap: {what} in {trap['function']} (.text+{trap['text_offset']:#x})"
            + (f", wasm offset {trap['wasm_offset']:#x}" if trap["wasm_offset"] is not None else "")
            + (f" ({trap['note']})" if trap.get("note") else "")
        )
    for img in doc.get("images", []):
        out.append(
            f"image: {img['base']:#x} {img['kind']} {img['target'] or img['arch']} "
            f"Wasmtime {img['wasmtime_version']} {img['path'] or '[anon]'}"
        )
    out.extend(bt_lines(doc, style))
    return out
