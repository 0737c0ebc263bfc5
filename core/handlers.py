"""What each `stackmap` subcommand does: (session, parsed arguments, target, style) -> text.

core/commands.py parses the command line and dispatches here through its table.
A handler gathers data through the Session, core/report.py turns it into
records (the JSON), the render modules (core/render.py, btrender.py, reportrender.py)
into text.
"""

import argparse

from .btrender import bt_lines, context_lines
from .errors import NoImages, StackMapsError
from .frames import WasmFrame
from .image import ImageOrigin, WasmtimeImage
from .render import NO_DUMP_LINE, Style, dump_error_line, frame_dump_lines, frame_lines
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
from .reportrender import diff_lines, images_lines, loaded_line, report_lines, snapshot_line
from .session import Session
from .snapshots import diff_roots, read_snapshot, root_count, roots, write_snapshot
from .source import FileSource
from .suspicious import find_suspicious
from .target import Target
from .validate import validate_image

# `frame -x` shows at most this much of a frame (4,096 lines).
MAX_FRAME_DUMP = 64 * 1024


def cmd_load(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    session.sync(target)
    img = WasmtimeImage(FileSource(args.file), base=args.address, path=args.file)
    img.loaded_from = ImageOrigin.USER
    validate_image(img)  # what `wasmtime-stackmaps check` refuses is refused here, now
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
        raise NoImages(
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
    return "\n".join(bt_lines(doc, style.wide() if args.wide else style, full=args.full))


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
        sp = frame.fp - size
        shown = min(size + 16, MAX_FRAME_DUMP)  # a map may claim a frame of up to 1 GiB
        try:
            data = got.mem.read(sp, shown)
            lines.extend(
                frame_dump_lines(sp, size, data, frame.entry.offsets, style, got.mem.byteorder)
            )
            if shown < size + 16:
                lines.append(dump_error_line(f"only its first {shown} of {size + 16} bytes"))
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
    return "\n".join(report_lines(doc, style.wide() if args.wide else style))


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


def context_text(session: Session, target: Target, style: Style) -> str | None:
    """The summary `stackmap context on` shows after a stop; None when the selected
    thread has no wasm frames (the plugins then show nothing)."""
    got = session.collect(target, {target.selected_thread()})
    doc = threads_document(got.threads, got.heap)
    if not doc["threads"] or not doc["threads"][0]["frames"]:
        return None
    return "\n".join(context_lines(doc["threads"][0], style))


def cmd_context(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    text = context_text(session, target, style.wide() if args.wide else style)
    state = "on" if session.context else "off"
    return (text or "no wasm frames in the selected thread") + f"\n(stackmap context is {state})"
