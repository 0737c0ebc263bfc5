"""`wasmtime-stackmaps`: the offline console tool (images on disk, no debugger).

Every subcommand validates the whole image first (core/validate.py: the one
validity `check` reports), prints text only through `safe()` (no control
character from an image reaches the terminal), and fails with one line.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from typing import NoReturn

from . import __version__, install, triage
from .errors import CorruptSection, StackMapsError
from .failsafe import bug_line
from .image import WasmtimeImage
from .stackmap import StackMapEntry
from .text import safe
from .validate import validate_image

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_BUG = 0, 1, 2, 70  # 70: EX_SOFTWARE
# What one `dump` prints at most (entries + live slots): a 64 MB section could ask
# for billions of lines; past this the output stops with a note (--function, lookup).
DUMP_BUDGET = 1_000_000


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {safe(message)} (see --help)\n")


def _int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number: {text!r} (use decimal or 0x-hex)"
        ) from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a 64-bit offset")
    return value


def _open(path: str) -> WasmtimeImage:
    img = WasmtimeImage.from_file(path)
    validate_image(img)
    return img


def image_info(img: WasmtimeImage) -> dict:
    sm = img.stackmaps
    funcs = img.functions
    return {
        "file": img.name,
        "kind": img.kind,
        "pulley": img.pulley,
        "arch": img.arch,
        "target": img.engine.target,
        "wasmtime_version": img.engine.version,
        "text_size": img.text_range[1],
        "functions": len(funcs),
        "wasm_functions": funcs.wasm_count(),
        "stackmap_entries": len(sm) if sm is not None else 0,
        "distinct_maps": sm.distinct_maps() if sm is not None else 0,
        "stackmap_note": None if sm is not None else img.no_stackmaps_reason(),
    }


def entry_record(img: WasmtimeImage, e: StackMapEntry) -> dict:
    f = img.function_at(e.pc)
    return {
        "pc": e.pc,
        "function": f.name if f else None,
        "function_offset": e.pc - f.start if f else None,
        "frame_size": e.frame_size,
        "offsets": list(e.offsets),
    }


def cmd_info(args: argparse.Namespace) -> int:
    img = _open(args.file)
    info = image_info(img)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    pulley = f" (Pulley {img.pulley}-bit bytecode)" if img.pulley else ""
    print(f"file:              {safe(info['file'])}")
    print(f"kind:              {info['kind']}{pulley}")
    print(f"arch:              {info['arch']}")
    print(f"target:            {safe(info['target'])}")
    print(f"wasmtime version:  {safe(info['wasmtime_version'])}")
    print(f"functions:         {info['functions']} ({info['wasm_functions']} wasm)")
    print(f"stack-map entries: {info['stackmap_entries']}")
    print(f"distinct maps:     {info['distinct_maps']}")
    if info["stackmap_note"]:
        print(f"note:              {safe(info['stackmap_note'])}")
    return EXIT_OK


def _selected_entries(
    img: WasmtimeImage, function: str | None
) -> tuple[Iterator[StackMapEntry], int]:
    """The entries to dump, lazily, and how many there are (counted by binary search)."""
    sm = img.stackmaps
    if sm is None:
        return iter(()), 0
    if function is None:
        return iter(sm), len(sm)
    funcs = img.find_function(function)
    if not funcs:
        raise StackMapsError(f"{img.name}: no function matches {safe(function)!r}")
    total = sum(sm.count_between(f.start, f.end) for f in funcs)
    return (e for f in funcs for e in sm.entries_between(f.start, f.end)), total


def _budgeted(entries: Iterator[StackMapEntry], shown: list[int]) -> Iterator[StackMapEntry]:
    """The entries until DUMP_BUDGET (entries + slots) is spent; shown[0] counts them."""
    spent = 0
    for e in entries:
        spent += 1 + len(e.offsets)
        if spent > DUMP_BUDGET:
            return
        shown[0] += 1
        yield e


def _stopped_note(img: WasmtimeImage, held: int) -> str:
    return (
        f"wasmtime-stackmaps: dump stopped after {DUMP_BUDGET:,} lines and slots "
        f"({held} entries not shown): use --function NAME or lookup PC"
    )


def cmd_dump(args: argparse.Namespace) -> int:
    img = _open(args.file)
    selected, total = _selected_entries(img, args.function)
    shown = [0]
    entries = _budgeted(selected, shown)
    out = sys.stdout
    if args.json:
        # Streamed, one entry a line: nothing proportional to the section is kept.
        head = {
            "file": img.name,
            "target": img.engine.target,
            "arch": img.arch,
            "wasmtime_version": img.engine.version,
        }
        if img.stackmaps is None:
            head["note"] = img.no_stackmaps_reason()
        out.write(json.dumps(head)[:-1] + ',\n "entries": [')
        for i, e in enumerate(entries):
            out.write(("\n  " if i == 0 else ",\n  ") + json.dumps(entry_record(img, e)))
        held = total - shown[0]
        out.write("\n ]" + (f',\n "not_shown": {held}' if held else "") + "\n}\n")
    elif img.stackmaps is None:
        print(f"{img.name}: {img.no_stackmaps_reason()}")
    else:
        out.write(f"{'pc':>10}  {'frame':>5}  function+offset: live offsets (SP+n)\n")
        n = 0
        f = None
        for e in entries:
            if f is None or not f.start <= e.pc < f.end:  # entries come in pc order
                f = img.function_at(e.pc)
                name = safe(f.name) if f else None
            where = f"{name}+{e.pc - f.start:#x}" if f else "?"
            offs = ", ".join(map(str, e.offsets))
            out.write(f"{e.pc:#10x}  {e.frame_size:5d}  {where}: [{offs}]\n")
            n += 1
        out.write(f"{n} entries\n")
    if total > shown[0]:
        print(_stopped_note(img, total - shown[0]), file=sys.stderr)
    return EXIT_OK


def cmd_lookup(args: argparse.Namespace) -> int:
    img = _open(args.file)
    pc = args.pc
    e = img.lookup(pc) if pc < 1 << 32 else None
    f = img.function_at(pc)
    if args.json:
        doc = {
            "file": img.name,
            "pc": pc,
            "function": f.name if f else None,
            "safepoint": e is not None,
            "frame_size": e.frame_size if e else None,
            "offsets": list(e.offsets) if e else [],
            "reason": None if e else img.describe_no_map(pc),
        }
        print(json.dumps(doc, indent=2))
        return EXIT_OK
    fname = f"{safe(f.name)}+{pc - f.start:#x}" if f else None
    if e is None:
        where = f" ({fname})" if fname else ""
        print(f"{pc:#x}{where}: no stack map: {img.describe_no_map(pc)}")
        return EXIT_OK
    print(
        f"{pc:#x} ({fname}): frame_size={e.frame_size} live slots at "
        + ", ".join(f"SP+{o}" for o in e.offsets)
    )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    img = WasmtimeImage.from_file(args.file)
    try:
        sm = validate_image(img)
    except CorruptSection as e:
        print(f"invalid: {safe(e)}")
        return EXIT_INVALID
    n = len(sm) if sm is not None else 0
    print(
        f"{img.name}: valid ({n} stack-map entries"
        + ("" if sm is not None else f"; {img.no_stackmaps_reason()}")
        + ")"
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="wasmtime-stackmaps",
        description="Read the GC stack maps (.wasmtime.stackmap) of Wasmtime code images.",
    )
    p.add_argument("--version", action="version", version=f"wasmtime-stackmaps {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    s = sub.add_parser("info", help="kind, target, version, function and stack-map counts")
    s.add_argument("file", help="a Wasmtime image (.cwasm)")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("dump", help="every stack-map entry")
    s.add_argument("file", help="a Wasmtime image (.cwasm)")
    s.add_argument(
        "--function",
        metavar="NAME|INDEX",
        help="only this function (full name, ::suffix, or wasm function index)",
    )
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.set_defaults(func=cmd_dump)

    s = sub.add_parser("lookup", help="the stack map at a text offset, or why there is none")
    s.add_argument("file", help="a Wasmtime image (.cwasm)")
    s.add_argument("pc", type=_int, help="return-address offset in .text (decimal or 0x-hex)")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.set_defaults(func=cmd_lookup)

    s = sub.add_parser("check", help="validate the image: exit 0 valid, 1 invalid, 2 unreadable")
    s.add_argument("file", help="a Wasmtime image (.cwasm)")
    s.set_defaults(func=cmd_check)

    triage.add_parser(sub)
    install.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CorruptSection as e:
        print(f"wasmtime-stackmaps: invalid: {safe(e)}", file=sys.stderr)
        return EXIT_INVALID
    except StackMapsError as e:
        print(f"wasmtime-stackmaps: {safe(e)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `| head`: stop quietly, and let nothing flush into the pipe
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug: one line (WASMTIME_STACKMAPS_DEBUG=1 shows the traceback)
        print(bug_line(e), file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
