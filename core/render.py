"""Text of one frame and its slots, rendered from the report records (core/report.py),
and the colour policy shared by every text renderer.

The text output lives in the render modules: this one (a frame: `stackmap frame`,
its slots and hexdump, and the pieces a backtrace line is made of), core/btrender.py
(backtraces), core/reportrender.py (images, snapshots, the crash report),
core/heaprender.py and core/gcrender.py (the heap inspector, gc-watch)."""

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pygments.console import colorize

from .gcref import SlotKind
from .heaprender import brief
from .report import Record
from .text import safe_record
from .width import wrap_parts

_F = TypeVar("_F", bound=Callable[..., Any])


def escaped(fn: _F) -> _F:
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


def describe_slot(s: Record) -> str:
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


SLOT_COLORS: dict[str, str] = {
    SlotKind.NULL: "gray",
    SlotKind.I31: "cyan",
    SlotKind.HEAP: "yellow",
}


def slot_color(kind: str) -> str:
    return SLOT_COLORS.get(kind, "red")


def _where_parts(fr: Record, style: Style) -> list[tuple[str, str]]:
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


def frame_parts(fr: Record, style: Style, full: bool = False) -> list[tuple[str, str]]:
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
    shown = [f"SP+{s['offset']}=" + style(slot_color(s["kind"]), describe_slot(s)) for s in slots]
    parts += [(" ", text + ",") for text in shown[:-1]]
    parts.append((" ", shown[-1]))
    return parts


def slot_lines(fr: Record, style: Style) -> list[str]:
    out = []
    for s in fr["slots"]:
        raw = f"{s['raw']:#010x}" if s["raw"] is not None else "??????????"
        head = f"      SP+{s['offset']:<5} {s['address']:#018x}  {raw}"
        # A long value continues under the value column.
        words = [style(slot_color(s["kind"]), w) for w in describe_slot(s).split(" ")]
        parts = [("", head), ("  ", words[0]), *((" ", w) for w in words[1:])]
        out.extend(wrap_parts(parts, style.width, " " * (len(head) + 2)))
    return out


def _wrapped(prefix: str, text: str, style: Style, indent: str = "        ") -> list[str]:
    """`prefix` + `text`, its words wrapped at the style's width."""
    words = text.split(" ")
    return wrap_parts(
        [("", prefix + words[0]), *((" ", w) for w in words[1:])], style.width, indent
    )


@escaped
def frame_lines(fr: Record, style: Style) -> list[str]:
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


@escaped
def dump_error_line(error: str) -> str:
    return f"  cannot dump the frame: {error}"


NO_DUMP_LINE = "  (no stack map at this pc: no frame size, nothing to dump)"
