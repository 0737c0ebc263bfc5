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
from typing import Dict, List, Optional, Tuple

from .discover import ImageRegistry, discover_from_pc, discover_from_regions, probe_image
from .errors import NotAnImage, StackMapsError
from .image import WasmtimeImage
from .render import Style, bt_lines, frame_lines, hexdump_lines
from .report import document, frame_record, image_record, thread_record
from .source import FileSource
from .target import MemoryCache, Target
from .walk import DEFAULT_MAX_DEPTH, thread_activations

SUBCOMMANDS = {
    "frame": "live GC-reference slots of one wasm frame",
    "bt": "wasm frames of the thread(s) with their live GC references",
    "images": "Wasmtime code images found in the inferior",
    "load": "tell the plugin that an image file is mapped at an address",
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
        raise UsageError(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):
        raise HelpShown(message or "")

    def print_help(self, file=None):
        raise HelpShown(self.format_help())


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="stackmap", description="Show live GC references in WebAssembly frames "
                                            "of a Wasmtime process, from its stack maps.")
    sub = p.add_subparsers(dest="sub", metavar="SUBCOMMAND", parser_class=_Parser)

    s = sub.add_parser("frame", help=SUBCOMMANDS["frame"],
                       description="Stack map and live GC-reference slots of the selected "
                                   "wasm frame, or of frame N as numbered by 'stackmap bt'.")
    s.add_argument("level", nargs="?", type=_int, help="frame number from 'stackmap bt'")
    s.add_argument("-x", "--dump", action="store_true",
                   help="hexdump SP..FP with the live slots highlighted")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument("--max-depth", type=_int, default=None,
                   help=f"frames to walk at most (default {DEFAULT_MAX_DEPTH})")

    s = sub.add_parser("bt", help=SUBCOMMANDS["bt"],
                       description="One line per wasm frame with its live GC references; "
                                   "host code between activations is shown as one line.")
    s.add_argument("--all-threads", "-a", action="store_true", help="every thread")
    s.add_argument("--full", action="store_true", help="every slot on its own line")
    s.add_argument("-n", type=_int, default=None, metavar="N", help="only the N innermost frames")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument("--no-scan", action="store_true",
                   help="do not scan the stack for activations the debugger cannot unwind to")
    s.add_argument("--max-depth", type=_int, default=None,
                   help=f"frames to walk at most (default {DEFAULT_MAX_DEPTH})")

    s = sub.add_parser("images", help=SUBCOMMANDS["images"],
                       description="Wasmtime images mapped in the inferior (from its memory "
                                   "map, a scan back from each thread's pc, and 'stackmap load').")
    s.add_argument("--json", action="store_true", help="one JSON document")

    s = sub.add_parser("load", help=SUBCOMMANDS["load"],
                       description="Use FILE (a .cwasm) as the image mapped at ADDR, for core "
                                   "files whose image memory was not dumped and remote targets.")
    s.add_argument("file")
    s.add_argument("address", type=_int)
    return p


class Session:
    """Per-debugger state that outlives one command: the image registry of the inferior."""

    def __init__(self):
        self.registry = ImageRegistry()
        self._identity: Optional[Tuple] = None
        self._regions_seen: set = set()
        self.max_depth = DEFAULT_MAX_DEPTH
        self.last_stats: Dict[str, int] = {}

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

    def discover(self, target: Target, threads=None):
        """Find images: memory map when known, then a scan back from every thread's pc."""
        self._sync(target)
        regions = target.regions()
        if regions is not None:
            fresh = [r for r in regions if r not in self._regions_seen]
            discover_from_regions(target, fresh, self.registry)
            self._regions_seen.update(fresh)
        for t in (threads if threads is not None else target.threads()):
            if self.registry.image_at(t.pc) is None:
                discover_from_pc(target, t.pc, self.registry)
        return regions

    # -- commands -------------------------------------------------------------
    def run(self, argv, target_factory=None, style: Optional[Style] = None) -> str:
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
        return self.cmd_frame(args, target, style)

    def cmd_load(self, args, target: Target) -> str:
        self._sync(target)
        img = WasmtimeImage(FileSource(args.file), base=args.address, path=args.file)
        img.loaded_from = "user"
        img.text_range  # fail now, not at the first lookup
        self.registry.add(img)
        off, size = img.text_range
        return (f"loaded {args.file} at {args.address:#x} (.text {args.address + off:#x}.."
                f"{args.address + off + size:#x}, {img.arch}, Wasmtime {img.engine.version})")

    def cmd_images(self, args, target: Target) -> str:
        self.discover(target)
        recs = [image_record(img) for img in self.registry]
        if args.json:
            return json.dumps({"schema": 1, "images": recs,
                               "problems": [{"base": b, "error": e}
                                            for b, e in sorted(self.registry.problems.items())]},
                              indent=1)
        if not recs and not self.registry.problems:
            raise StackMapsError("no Wasmtime images found in this process "
                                 "(not a Wasmtime process, or no module loaded yet)")
        lines = [f"{'base':>18} {'size':>10}  {'kind':9} {'target':28} {'ver':>5} "
                 f"{'funcs':>6} {'maps':>6}  path"]
        for r in recs:
            if r["error"]:
                lines.append(f"{r['base']:#18x} {r['size']:#10x}  error: {r['error']}")
                continue
            lines.append(f"{r['base']:#18x} {r['size']:#10x}  {r['kind']:9} "
                         f"{(r['target'] or r['arch']):28} {r['wasmtime_version']:>5} "
                         f"{r['functions']:>6} {r['stackmap_entries']:>6}  "
                         f"{r['path'] or '[anon]'}")
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
            raise StackMapsError("no Wasmtime images found in this process" +
                                 (f": {problems}" if problems else
                                  " (not a Wasmtime process, or no module loaded yet)"))
        mem = MemoryCache(target)
        out = []
        for t in threads:
            if thread_nums is not None and t.num not in thread_nums:
                continue
            acts = thread_activations(target, self.registry, mem, t, regions, scan=scan,
                                      max_depth=max_depth)
            out.append((t, acts))
        self.last_stats = {"memory_reads": mem.reads,
                           "frames": sum(len(a.frames) for _, acts in out for a in acts)}
        return out, mem

    def _doc(self, collected, limit=None) -> Dict:
        threads = []
        for t, acts in collected:
            rec = thread_record(t.num, acts, {"name": t.name, "tid": t.tid})
            if limit is not None:
                rec["frames"] = rec["frames"][:limit]
            threads.append(rec)
        return document(threads)

    def cmd_bt(self, args, target: Target, style: Style) -> str:
        sel = target.selected_thread()
        nums = None if args.all_threads else {sel}
        collected, _ = self._collect(target, nums, not args.no_scan,
                                     args.max_depth or self.max_depth)
        doc = self._doc(collected, args.n)
        if args.json:
            doc["stats"] = self.last_stats
            return json.dumps(doc, indent=1)
        return "\n".join(bt_lines(doc, style, full=args.full))

    def cmd_frame(self, args, target: Target, style: Style) -> str:
        sel_thread = target.selected_thread()
        collected, mem = self._collect(target, {sel_thread}, True,
                                       args.max_depth or self.max_depth)
        frames = [f for _, acts in collected for a in acts for f in a.frames]
        if args.level is not None:
            match = [f for f in frames if f.level == args.level]
            if not match:
                raise StackMapsError(f"no wasm frame #{args.level} in thread {sel_thread} "
                                     f"(it has {len(frames)}; see 'stackmap bt')")
            frame = match[0]
        else:
            sel = target.selected_frame()
            frame = None
            if sel is not None:
                frame = next((f for f in frames if f.pc == sel.pc and
                              (sel.fp is None or f.fp == sel.fp)), None)
                if frame is None:
                    frame = next((f for f in frames if f.pc == sel.pc), None)
            if frame is None:
                where = f"pc {sel.pc:#x}" if sel is not None else "the selected frame"
                img = self.registry.image_at(sel.pc) if sel is not None else None
                why = ("not wasm code" if img is None else
                       "in wasm code but not on this thread's frame-pointer chain")
                raise StackMapsError(f"{where}: {why}; 'stackmap bt' lists the wasm frames, "
                                     f"'stackmap frame N' picks one")
        rec = frame_record(frame)
        rec["thread"] = frame.thread
        if args.json:
            return json.dumps(document([{"thread": frame.thread, "frames": [rec]}]), indent=1)
        lines = frame_lines(rec, style)
        if args.dump and frame.entry is not None:
            sp = frame.sp
            try:
                data = mem.read(sp, frame.entry.frame_size + 16)
                lines.append(f"  SP..FP+16 ({frame.entry.frame_size} bytes + saved FP, "
                             f"return address):")
                lines.extend(hexdump_lines(sp, data, frame.entry.offsets, style, sp))
            except StackMapsError as e:
                lines.append(f"  cannot dump the frame: {e}")
        elif args.dump:
            lines.append("  (no stack map at this pc: no frame size, nothing to dump)")
        return "\n".join(lines)


def color_wanted(debugger_styling: bool) -> bool:
    return debugger_styling and not os.environ.get("NO_COLOR")
