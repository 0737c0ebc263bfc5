"""The `stackmap` debugger commands, shared by the GDB and LLDB plugins.

A plugin keeps one Session (core/session.py) and calls
`run(session, argv, target_factory, style)`; it gets text back (or raises
StackMapsError, whose message is the one line to print). The argparse parsers
here make the `help` text identical in both debuggers; `HANDLERS` maps each
subcommand to the function that runs it. Handlers gather data, core/report.py
turns it into records, core/render.py into text.
"""

import argparse
import shlex
from collections.abc import Callable

from . import gcwatch_commands, heapcmds
from .errors import StackMapsError
from .image import WasmtimeImage
from .render import (
    NO_DUMP_LINE,
    Style,
    bt_lines,
    diff_lines,
    dump_error_line,
    frame_dump_lines,
    frame_lines,
    images_lines,
    loaded_line,
    report_lines,
    snapshot_line,
)
from .report import (
    apply_heap_frame,
    apply_suspicious,
    document,
    frame_record,
    image_record,
    images_document,
    stop_record,
    suspended_records,
    threads_document,
    to_json,
    trap_record,
)
from .session import Session
from .snapshots import diff_roots, read_snapshot, root_count, roots, write_snapshot
from .source import FileSource
from .suspicious import find_suspicious
from .target import Target
from .walk import DEFAULT_MAX_DEPTH, WasmFrame

SUBCOMMANDS = {
    "frame": "live GC-reference slots of one wasm frame",
    "bt": "wasm frames of the thread(s) with their live GC references",
    "images": "Wasmtime code images found in the inferior",
    "load": "tell the plugin that an image file is mapped at an address",
    "report": "crash report: signal, faulting pc, trap, every thread's wasm frames",
    "snapshot": "record the live GC roots of every wasm frame (for 'stackmap diff')",
    "diff": "compare the live GC roots now with a snapshot: which roots changed value",
    **heapcmds.SUBCOMMANDS,
    "gc-watch": "check the roots around every garbage collection (stops briefly at each)",
    "watch": "hardware watchpoint on a root slot or an object field (follows moves)",
}


class UsageError(StackMapsError):
    """Bad command-line arguments (argparse's message, one line)."""


class HelpShown(Exception):
    """argparse printed help: nothing more to do."""

    def __init__(self, text: str):
        self.text = text


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting the debugger."""

    def error(self, message):
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        raise UsageError(f"{sub + ': ' if sub else ''}{message}")

    def exit(self, status=0, message=None):
        raise HelpShown(message or "")

    def print_help(self, file=None):
        raise HelpShown(self.format_help())


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


_HELP: dict[str, str] = {}


def subcommand_help(name: str) -> str:
    """The long help of `stackmap NAME` (its summary, then argparse's description and options)."""
    if not _HELP:
        parser = build_parser()
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for sub, sp in subs.choices.items():
            _HELP[sub] = SUBCOMMANDS[sub] + ".\n\n" + sp.format_help().split("\n\n", 1)[-1]
    return _HELP[name]


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="stackmap",
        description="Show live GC references in WebAssembly frames "
        "of a Wasmtime process, from its stack maps.",
    )
    sub = p.add_subparsers(dest="sub", metavar="SUBCOMMAND", parser_class=_Parser)

    s = sub.add_parser(
        "frame",
        help=SUBCOMMANDS["frame"],
        description="Stack map and live GC-reference slots of the selected "
        "wasm frame, or of frame N as numbered by 'stackmap bt'.",
    )
    s.add_argument("level", nargs="?", type=_int, help="frame number from 'stackmap bt'")
    s.add_argument(
        "-x", "--dump", action="store_true", help="hexdump SP..FP with the live slots highlighted"
    )
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument(
        "--max-depth",
        type=_int,
        default=None,
        help=f"frames to walk at most (default {DEFAULT_MAX_DEPTH})",
    )

    s = sub.add_parser(
        "bt",
        help=SUBCOMMANDS["bt"],
        description="One line per wasm frame with its live GC references; "
        "host code between activations is shown as one line.",
    )
    s.add_argument("--all-threads", "-a", action="store_true", help="every thread")
    s.add_argument("--full", action="store_true", help="every slot on its own line")
    s.add_argument("-n", type=_int, default=None, metavar="N", help="only the N innermost frames")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument(
        "--no-scan",
        action="store_true",
        help="do not scan the stack for activations the debugger cannot unwind to",
    )
    s.add_argument(
        "--suspicious",
        action="store_true",
        help="HEURISTIC: also list words in each frame that point at a GC object "
        "but are not in its stack map (a missing root, or a dead copy)",
    )
    s.add_argument(
        "--max-depth",
        type=_int,
        default=None,
        help=f"frames to walk at most (default {DEFAULT_MAX_DEPTH})",
    )

    s = sub.add_parser(
        "images",
        help=SUBCOMMANDS["images"],
        description="Wasmtime images mapped in the inferior (from its memory "
        "map, a scan back from each thread's pc, and 'stackmap load').",
    )
    s.add_argument("--json", action="store_true", help="one JSON document")

    s = sub.add_parser(
        "load",
        help=SUBCOMMANDS["load"],
        description="Use FILE (a .cwasm) as the image mapped at ADDR, for core "
        "files whose image memory was not dumped and remote targets.",
    )
    s.add_argument("file")
    s.add_argument("address", type=_int)

    s = sub.add_parser(
        "report",
        help=SUBCOMMANDS["report"],
        description="Everything for a crash triage in one document: the stop "
        "signal and faulting pc, the trap code (.wasmtime.traps) and "
        "wasm bytecode offset (.wasmtime.addrmap) when the pc is a "
        "trap site, the images, and every thread's wasm frames.",
    )
    s.add_argument("--json", action="store_true", help="one JSON document")

    for name in ("snapshot", "diff"):
        s = sub.add_parser(
            name,
            help=SUBCOMMANDS[name],
            description=SUBCOMMANDS[name]
            + (
                ". Frames are matched by thread, frame pointer and pc; a root whose value changed "
                "is what a moving collector must have updated."
                if name == "diff"
                else ". Kept for this debugger session under NAME, or written to FILE as JSON."
            ),
        )
        s.add_argument("--name", default="default", help="snapshot name (default: default)")
        s.add_argument("--file", help="write (snapshot) or read (diff) the snapshot as JSON")
        if name == "diff":
            s.add_argument("--json", action="store_true", help="one JSON document")
    heapcmds.add_parsers(sub, _int)
    gcwatch_commands.add_parser(sub, SUBCOMMANDS["gc-watch"], _Parser)
    gcwatch_commands.add_watch_parser(sub, SUBCOMMANDS["watch"])
    return p


# -- the handlers: (session, parsed args, target, style) -> text ---------------------------


def cmd_load(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    session.sync(target)
    img = WasmtimeImage(FileSource(args.file), base=args.address, path=args.file)
    img.loaded_from = "user"
    _ = img.text_range  # fail now, not at the first lookup
    session.registry.add(img)
    rec = image_record(img)
    if rec["error"]:
        raise StackMapsError(rec["error"])
    return loaded_line(rec)


def cmd_images(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    session.discover(target)
    doc = images_document(session.registry, session.registry.problems)
    if args.json:
        return to_json(doc)
    if not doc["images"] and not doc["problems"]:
        raise StackMapsError(
            "no Wasmtime images found in this process "
            "(not a Wasmtime process, or no module loaded yet)"
        )
    return "\n".join(images_lines(doc))


def cmd_bt(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    nums = None if args.all_threads else {target.selected_thread()}
    got = session.collect(target, nums, not args.no_scan, args.max_depth)
    doc = threads_document(got.threads, got.heap, args.n)
    if got.suspended is not None:
        doc["suspended"] = suspended_records(got.suspended)
    if args.suspicious:
        apply_suspicious(doc, find_suspicious(got.mem, got.threads, got.heap))
    if args.json:
        doc["stats"] = session.last_stats
        return to_json(doc)
    return "\n".join(bt_lines(doc, style, full=args.full))


def _selected_wasm_frame(
    session: Session, target: Target, frames: list[WasmFrame], thread: int, level: int | None
) -> WasmFrame:
    """Frame `level` of the walk, or the one the debugger has selected (StackMapsError if none)."""
    if level is not None:
        match = [f for f in frames if f.level == level]
        if not match:
            raise StackMapsError(
                f"no wasm frame #{level} in thread {thread} "
                f"(it has {len(frames)}; see 'stackmap bt')"
            )
        return match[0]
    sel = target.selected_frame()
    frame = None
    if sel is not None:
        frame = next(
            (f for f in frames if f.pc == sel.pc and (sel.fp is None or f.fp == sel.fp)),
            None,
        )
        if frame is None:
            frame = next((f for f in frames if f.pc == sel.pc), None)
    if frame is None:
        where = f"pc {sel.pc:#x}" if sel is not None else "the selected frame"
        img = session.registry.image_at(sel.pc) if sel is not None else None
        why = (
            "not wasm code"
            if img is None
            else "in wasm code but not on this thread's frame-pointer chain"
        )
        raise StackMapsError(
            f"{where}: {why}; 'stackmap bt' lists the wasm frames, 'stackmap frame N' picks one"
        )
    return frame


def cmd_frame(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    sel_thread = target.selected_thread()
    got = session.collect(target, {sel_thread}, True, args.max_depth)
    frames = [f for _, acts in got.threads for a in acts for f in a.frames]
    frame = _selected_wasm_frame(session, target, frames, sel_thread, args.level)
    rec = frame_record(frame)
    rec["thread"] = frame.thread
    apply_heap_frame(rec, got.heap)
    if args.json:
        return to_json(document([{"thread": frame.thread, "frames": [rec]}]))
    lines = frame_lines(rec, style)
    if args.dump and frame.entry is not None:
        size = frame.entry.frame_size
        try:
            data = got.mem.read(frame.sp, size + 16)
            lines.extend(frame_dump_lines(frame.sp, size, data, frame.entry.offsets, style))
        except StackMapsError as e:
            lines.append(dump_error_line(str(e)))
    elif args.dump:
        lines.append(NO_DUMP_LINE)
    return "\n".join(lines)


def cmd_report(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    got = session.collect(target)
    doc = threads_document(got.threads, got.heap)
    doc["suspended"] = suspended_records(got.suspended or [])
    doc["stats"] = session.last_stats
    doc["process"] = {"description": target.description, **target.process_info()}
    stop = doc["stop"] = stop_record(target.stop_info())
    pc = stop.get("pc") if stop else None
    doc["trap"] = trap_record(session.registry.image_at(pc) if pc is not None else None, pc)
    doc["images"] = [image_record(img) for img in session.registry]
    if args.json:
        return to_json(doc)
    return "\n".join(report_lines(doc, style))


def cmd_snapshot(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    snap = roots(session.collect(target).threads)
    session.snapshots[args.name] = snap
    if args.file:
        write_snapshot(args.file, snap)
    return snapshot_line(args.name, root_count(snap), len(snap["frames"]), args.file)


def cmd_diff(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    if args.file:
        old = read_snapshot(args.file)
    elif args.name in session.snapshots:
        old = session.snapshots[args.name]
    else:
        raise StackMapsError(
            f"no snapshot named {args.name!r}: run 'stackmap snapshot' at an earlier stop"
        )
    result = diff_roots(old, roots(session.collect(target).threads))
    if args.json:
        return to_json({"schema": 1, **result})
    return "\n".join(diff_lines(result))


Handler = Callable[[Session, argparse.Namespace, Target, Style], str]
HANDLERS: dict[str, Handler] = {
    "frame": cmd_frame,
    "bt": cmd_bt,
    "images": cmd_images,
    "load": cmd_load,
    "report": cmd_report,
    "snapshot": cmd_snapshot,
    "diff": cmd_diff,
    **dict.fromkeys(heapcmds.SUBCOMMANDS, heapcmds.run),
    "gc-watch": gcwatch_commands.cmd_gc_watch,
    "watch": gcwatch_commands.cmd_watch,
}
assert HANDLERS.keys() == SUBCOMMANDS.keys()


def run(
    session: Session,
    argv: str | list[str],
    target_factory: Callable[[], Target],
    style: Style | None = None,
) -> str:
    """Run one `stackmap` command. `target_factory()` gives the Target (or raises)."""
    if isinstance(argv, str):
        argv = shlex.split(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except HelpShown as h:
        return h.text.rstrip("\n")
    if not args.sub:
        return parser.format_help().rstrip("\n")
    return HANDLERS[args.sub](session, args, target_factory(), style or Style(False))
