"""The `stackmap` debugger commands, shared by the GDB and LLDB plugins.

A plugin builds a Target for the current inferior and calls
`Session.run(argv, target)`; it gets text back (or raises StackMapsError,
whose message is the one line to print). The argparse parsers here make the
`help` text identical in both debuggers.
"""

import argparse
import json
import os
import shlex
import signal

from . import gcheap, heapcmds
from .discover import ImageRegistry, discover_from_pc, discover_from_regions
from .errors import StackMapsError
from .image import WasmtimeImage
from .render import Style, bt_lines, frame_lines, hexdump_lines
from .report import document, frame_record, image_record, thread_record
from .source import FileSource
from .suspicious import find_suspicious
from .target import MemoryCache, Target
from .traps import lookup_trap, lookup_wasm_offset
from .walk import DEFAULT_MAX_DEPTH, thread_activations

SUBCOMMANDS = {
    "frame": "live GC-reference slots of one wasm frame",
    "bt": "wasm frames of the thread(s) with their live GC references",
    "images": "Wasmtime code images found in the inferior",
    "load": "tell the plugin that an image file is mapped at an address",
    "report": "crash report: signal, faulting pc, trap, every thread's wasm frames",
    "snapshot": "record the live GC roots of every wasm frame (for 'stackmap diff')",
    "diff": "compare the live GC roots now with a snapshot: which roots changed value",
    **heapcmds.SUBCOMMANDS,
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
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")


def to_json(doc: dict) -> str:
    """One JSON document, one top-level key a line.

    Scripts parse it; people page through it. Indenting every level makes
    json fall back to its pure-Python encoder (5x slower on a 10,000-frame bt).
    """
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()) + "\n}"


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
    return p


class Session:
    """Per-debugger state that outlives one command: the image registry of the inferior."""

    def __init__(self):
        self.registry = ImageRegistry()
        self._identity: tuple | None = None
        self._regions_seen: set = set()
        self.max_depth = DEFAULT_MAX_DEPTH
        self.last_stats: dict[str, int] = {}
        self.snapshots: dict[str, dict] = {}

    # -- inferior tracking ----------------------------------------------------
    def invalidate(self) -> None:
        """Forget everything about the inferior (new objfile, exit, rerun)."""
        self.registry = ImageRegistry()
        self._regions_seen = set()

    def _sync(self, target: Target) -> None:
        ident = target.identity()
        if ident != self._identity:
            self.invalidate()
            self._identity = ident
        # An image unloaded and another mapped at the same base: re-check headers.
        for base, img in list(self.registry.images.items()):
            if img.loaded_from == "user":
                continue
            try:
                head = target.read_memory(base, 64)
            except StackMapsError:
                head = None
            if head is None or head != img.source.read(0, 64):
                del self.registry.images[base]
                self.registry._reindex()
                # Probe that mapping again: another image may now start there.
                self._regions_seen = {r for r in self._regions_seen if r.start != base}

    def discover(self, target: Target, threads=None):
        """Find images: memory map when known, then a scan back from every thread's pc."""
        self._sync(target)
        regions = target.regions()
        if regions is not None:
            fresh = [r for r in regions if r not in self._regions_seen]
            discover_from_regions(target, fresh, self.registry)
            self._regions_seen.update(fresh)
        for t in threads if threads is not None else target.threads():
            if self.registry.image_at(t.pc) is None:
                discover_from_pc(target, t.pc, self.registry)
        return regions

    # -- commands -------------------------------------------------------------
    def run(self, argv, target_factory=None, style: Style | None = None) -> str:
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
        if style is None:
            style = Style(False)
        if args.sub == "load":
            return self.cmd_load(args, target_factory())
        target = target_factory()
        if args.sub == "images":
            return self.cmd_images(args, target)
        if args.sub == "bt":
            return self.cmd_bt(args, target, style)
        if args.sub == "report":
            return self.cmd_report(args, target, style)
        if args.sub == "snapshot":
            return self.cmd_snapshot(args, target)
        if args.sub == "diff":
            return self.cmd_diff(args, target)
        if args.sub in heapcmds.SUBCOMMANDS:
            return heapcmds.run(self, args, target, style)
        return self.cmd_frame(args, target, style)

    def cmd_load(self, args, target: Target) -> str:
        self._sync(target)
        img = WasmtimeImage(FileSource(args.file), base=args.address, path=args.file)
        img.loaded_from = "user"
        img.text_range  # fail now, not at the first lookup
        self.registry.add(img)
        off, size = img.text_range
        return (
            f"loaded {args.file} at {args.address:#x} (.text {args.address + off:#x}.."
            f"{args.address + off + size:#x}, {img.arch}, Wasmtime {img.engine.version})"
        )

    def cmd_images(self, args, target: Target) -> str:
        self.discover(target)
        recs = [image_record(img) for img in self.registry]
        if args.json:
            problems = [{"base": b, "error": e} for b, e in sorted(self.registry.problems.items())]
            return to_json({"schema": 1, "images": recs, "problems": problems})
        if not recs and not self.registry.problems:
            raise StackMapsError(
                "no Wasmtime images found in this process "
                "(not a Wasmtime process, or no module loaded yet)"
            )
        lines = [
            f"{'base':>18} {'size':>10}  {'kind':9} {'target':28} {'ver':>5} "
            f"{'funcs':>6} {'maps':>6}  path"
        ]
        for r in recs:
            if r["error"]:
                lines.append(f"{r['base']:#18x} {r['size']:#10x}  error: {r['error']}")
                continue
            lines.append(
                f"{r['base']:#18x} {r['size']:#10x}  {r['kind']:9} "
                f"{(r['target'] or r['arch']):28} {r['wasmtime_version']:>5} "
                f"{r['functions']:>6} {r['stackmap_entries']:>6}  "
                f"{r['path'] or '[anon]'}"
            )
        for base, err in sorted(self.registry.problems.items()):
            lines.append(f"{base:#18x} {'':>10}  unusable: {err}")
        return "\n".join(lines)

    def _collect(self, target: Target, thread_nums, scan: bool, max_depth: int):
        threads = target.threads()
        if not threads:
            raise StackMapsError("the process has no threads (not running?)")
        regions = self.discover(target, threads)
        if not len(self.registry):
            problems = "; ".join(self.registry.problems.values())
            raise StackMapsError(
                "no Wasmtime images found in this process"
                + (
                    f": {problems}"
                    if problems
                    else " (not a Wasmtime process, or no module loaded yet)"
                )
            )
        mem = MemoryCache(target)
        out = []
        for t in threads:
            if thread_nums is not None and t.num not in thread_nums:
                continue
            acts = thread_activations(
                target, self.registry, mem, t, regions, scan=scan, max_depth=max_depth
            )
            out.append((t, acts))
        self.heap = gcheap.annotate(target, mem, out, regions)  # GC objects of heap refs
        heapcmds.enrich(self, target, out)  # their types and fields, when the module is known
        self.last_stats = {
            "memory_reads": mem.reads,
            "frames": sum(len(a.frames) for _, acts in out for a in acts),
        }
        return out, mem

    def _doc(self, collected, limit=None) -> dict:
        threads = []
        for t, acts in collected:
            rec = thread_record(t.num, acts, {"name": t.name, "tid": t.tid})
            if limit is not None:
                rec["frames"] = rec["frames"][:limit]
            threads.append(rec)
        return self.heap.apply(document(threads))

    def cmd_bt(self, args, target: Target, style: Style) -> str:
        sel = target.selected_thread()
        nums = None if args.all_threads else {sel}
        collected, mem = self._collect(
            target, nums, not args.no_scan, args.max_depth or self.max_depth
        )
        doc = self._doc(collected, args.n)
        if args.suspicious:
            found = find_suspicious(mem, collected, self.heap)
            for th in doc["threads"]:
                for fr in th["frames"]:
                    hit = found.get((th["thread"], fr["level"]))
                    if hit is not None:
                        fr["suspicious"] = hit["words"]
                        fr["suspicious_note"] = hit["note"]
        if args.json:
            doc["stats"] = self.last_stats
            return to_json(doc)
        return "\n".join(bt_lines(doc, style, full=args.full))

    def cmd_frame(self, args, target: Target, style: Style) -> str:
        sel_thread = target.selected_thread()
        collected, mem = self._collect(target, {sel_thread}, True, args.max_depth or self.max_depth)
        frames = [f for _, acts in collected for a in acts for f in a.frames]
        if args.level is not None:
            match = [f for f in frames if f.level == args.level]
            if not match:
                raise StackMapsError(
                    f"no wasm frame #{args.level} in thread {sel_thread} "
                    f"(it has {len(frames)}; see 'stackmap bt')"
                )
            frame = match[0]
        else:
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
                img = self.registry.image_at(sel.pc) if sel is not None else None
                why = (
                    "not wasm code"
                    if img is None
                    else "in wasm code but not on this thread's frame-pointer chain"
                )
                raise StackMapsError(
                    f"{where}: {why}; 'stackmap bt' lists the wasm frames, "
                    f"'stackmap frame N' picks one"
                )
        rec = frame_record(frame)
        rec["thread"] = frame.thread
        self.heap.apply_frame(rec)
        if args.json:
            return to_json(document([{"thread": frame.thread, "frames": [rec]}]))
        lines = frame_lines(rec, style)
        if args.dump and frame.entry is not None:
            sp = frame.sp
            try:
                data = mem.read(sp, frame.entry.frame_size + 16)
                lines.append(
                    f"  SP..FP+16 ({frame.entry.frame_size} bytes + saved FP, return address):"
                )
                lines.extend(hexdump_lines(sp, data, frame.entry.offsets, style, sp))
            except StackMapsError as e:
                lines.append(f"  cannot dump the frame: {e}")
        elif args.dump:
            lines.append("  (no stack map at this pc: no frame size, nothing to dump)")
        return "\n".join(lines)

    # -- crash report -----------------------------------------------------------
    def cmd_report(self, args, target: Target, style: Style) -> str:
        collected, _ = self._collect(target, None, True, self.max_depth)
        doc = self._doc(collected)
        doc["stats"] = self.last_stats
        doc["process"] = {"description": target.description, **target.process_info()}
        stop = target.stop_info()
        if stop and stop.get("signal") and not stop.get("signal_name"):
            stop["signal_name"] = signal_name(stop["signal"])
        doc["stop"] = stop
        doc["trap"] = self._trap_info(stop, collected)
        doc["images"] = [image_record(img) for img in self.registry]
        if args.json:
            return to_json(doc)
        return "\n".join(report_lines(doc, style))

    def _trap_info(self, stop: dict | None, collected) -> dict | None:
        """Trap code and wasm offset when the stopped thread's pc is in wasm code."""
        if not stop or stop.get("pc") is None:
            return None
        img = self.registry.image_at(stop["pc"])
        if img is None:
            return None
        off = img.text_offset(stop["pc"])
        func = img.function_at(off)
        info = {
            "pc": stop["pc"],
            "text_offset": off,
            "function": func.name if func else None,
            "code": None,
            "name": None,
            "wasm_offset": None,
            "note": None,
        }
        try:
            traps = img.section_data(".wasmtime.traps")
            hit = lookup_trap(traps, off, img.engine.major) if traps else None
            if hit:
                info.update(hit)
            else:
                info["note"] = "pc is not a trap site (a breakpoint or a fault in a call?)"
            addrmap = img.section_data(".wasmtime.addrmap")
            if addrmap:
                info["wasm_offset"] = lookup_wasm_offset(addrmap, off, img.engine.major)
        except StackMapsError as e:
            info["note"] = str(e)
        return info

    # -- snapshots ----------------------------------------------------------------
    def _roots(self, target: Target) -> dict:
        collected, _ = self._collect(target, None, True, self.max_depth)
        frames = []
        for t, acts in collected:
            for a in acts:
                for f in a.frames:
                    if f.entry is None:
                        continue
                    frames.append(
                        {
                            "thread": t.num,
                            "level": f.level,
                            "pc": f.pc,
                            "fp": f.fp,
                            "function": f.function_name,
                            "slots": [
                                {"offset": s.offset, "address": s.address, "raw": s.raw}
                                for s in f.slots
                            ],
                        }
                    )
        return {"schema": 1, "kind": "stackmap-snapshot", "frames": frames}

    def cmd_snapshot(self, args, target: Target) -> str:
        snap = self._roots(target)
        self.snapshots[args.name] = snap
        n = sum(len(f["slots"]) for f in snap["frames"])
        msg = f"snapshot {args.name!r}: {n} roots in {len(snap['frames'])} frames"
        if args.file:
            with open(args.file, "w") as fh:
                json.dump(snap, fh)
            msg += f", written to {args.file}"
        return msg

    def cmd_diff(self, args, target: Target) -> str:
        if args.file:
            try:
                with open(args.file) as fh:
                    old = json.load(fh)
            except (OSError, ValueError) as e:
                raise StackMapsError(f"cannot read snapshot {args.file}: {e}")
            if not isinstance(old, dict) or old.get("kind") != "stackmap-snapshot":
                raise StackMapsError(f"{args.file} is not a 'stackmap snapshot' file")
        elif args.name in self.snapshots:
            old = self.snapshots[args.name]
        else:
            raise StackMapsError(
                f"no snapshot named {args.name!r}: run 'stackmap snapshot' at an earlier stop"
            )
        result = diff_roots(old, self._roots(target))
        if args.json:
            return to_json({"schema": 1, **result})
        return "\n".join(diff_lines(result))


def diff_roots(old: dict, new: dict) -> dict:
    """Match frames by (thread, fp, pc) and slots by offset; classify each root."""

    def key(f):
        return (f.get("thread"), f.get("fp"), f.get("pc"))

    before = {key(f): f for f in old.get("frames", []) if isinstance(f, dict)}
    after = {key(f): f for f in new["frames"]}
    frames = []
    counts = {"changed": 0, "unchanged": 0, "added": 0, "removed": 0}
    for k, f in after.items():
        o = before.get(k)
        if o is None:
            continue
        old_slots = {
            s.get("offset"): s.get("raw") for s in o.get("slots", []) if isinstance(s, dict)
        }
        slots = []
        for s in f["slots"]:
            if s["offset"] not in old_slots:
                state = "added"
            elif old_slots[s["offset"]] != s["raw"]:
                state = "changed"
            else:
                state = "unchanged"
            counts[state] += 1
            slots.append(
                {
                    "offset": s["offset"],
                    "address": s["address"],
                    "old": old_slots.get(s["offset"]),
                    "new": s["raw"],
                    "state": state,
                }
            )
        for off in set(old_slots) - {s["offset"] for s in f["slots"]}:
            counts["removed"] += 1
            slots.append(
                {
                    "offset": off,
                    "address": None,
                    "old": old_slots[off],
                    "new": None,
                    "state": "removed",
                }
            )
        frames.append(
            {
                "thread": f["thread"],
                "level": f["level"],
                "pc": f["pc"],
                "fp": f["fp"],
                "function": f["function"],
                "slots": slots,
            }
        )
    return {
        "frames": frames,
        "counts": counts,
        "frames_gone": [{"thread": k[0], "fp": k[1], "pc": k[2]} for k in before if k not in after],
        "frames_new": [{"thread": k[0], "fp": k[1], "pc": k[2]} for k in after if k not in before],
    }


def diff_lines(result: dict) -> list[str]:
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


def report_lines(doc: dict, style: Style) -> list[str]:
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


def signal_name(signo: int) -> str | None:
    """Linux signal name (the numbers are the same on every architecture we walk)."""
    try:
        return signal.Signals(signo).name
    except ValueError:
        return None


def color_wanted(debugger_styling: bool) -> bool:
    return debugger_styling and not os.environ.get("NO_COLOR")
