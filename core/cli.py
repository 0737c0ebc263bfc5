"""`wasmtime-stackmaps`: the offline console tool (images on disk, no debugger)."""

import argparse
import json
import sys

from . import __version__, install, triage
from .errors import CorruptSection, StackMapsError
from .image import WasmtimeImage
from .stackmap import StackMapEntry

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a number: {text!r} (use decimal or 0x-hex)"
        ) from None


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
        "wasm_functions": sum(1 for f in funcs if f.is_wasm),
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
    img = WasmtimeImage.from_file(args.file)
    info = image_info(img)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    pulley = f" (Pulley {img.pulley}-bit bytecode)" if img.pulley else ""
    print(f"file:              {info['file']}")
    print(f"kind:              {info['kind']}{pulley}")
    print(f"arch:              {info['arch']}")
    print(f"target:            {info['target']}")
    print(f"wasmtime version:  {info['wasmtime_version']}")
    print(f"functions:         {info['functions']} ({info['wasm_functions']} wasm)")
    print(f"stack-map entries: {info['stackmap_entries']}")
    print(f"distinct maps:     {info['distinct_maps']}")
    if info["stackmap_note"]:
        print(f"note:              {info['stackmap_note']}")
    return EXIT_OK


def _selected_entries(img: WasmtimeImage, function: str | None) -> list[StackMapEntry]:
    sm = img.stackmaps
    if sm is None:
        return []
    if function is None:
        return list(sm)
    funcs = img.find_function(function)
    if not funcs:
        raise StackMapsError(f"{img.name}: no function matches {function!r}")
    out: list[StackMapEntry] = []
    for f in funcs:
        out.extend(sm.entries_between(f.start, f.end))
    return out


def cmd_dump(args: argparse.Namespace) -> int:
    img = WasmtimeImage.from_file(args.file)
    entries = _selected_entries(img, args.function)
    if args.json:
        doc = {
            "file": img.name,
            "target": img.engine.target,
            "arch": img.arch,
            "wasmtime_version": img.engine.version,
            "entries": [entry_record(img, e) for e in entries],
        }
        if img.stackmaps is None:
            doc["note"] = img.no_stackmaps_reason()
        print(json.dumps(doc, indent=1))
        return EXIT_OK
    if img.stackmaps is None:
        print(f"{img.name}: {img.no_stackmaps_reason()}")
        return EXIT_OK
    print(f"{'pc':>10}  {'frame':>5}  function+offset: live offsets (SP+n)")
    for e in entries:
        r = entry_record(img, e)
        where = f"{r['function']}+{r['function_offset']:#x}" if r["function"] else "?"
        offs = ", ".join(str(o) for o in e.offsets)
        print(f"{e.pc:#10x}  {e.frame_size:5d}  {where}: [{offs}]")
    print(f"{len(entries)} entries")
    return EXIT_OK


def cmd_lookup(args: argparse.Namespace) -> int:
    img = WasmtimeImage.from_file(args.file)
    pc = args.pc
    e = img.lookup(pc)
    f = img.function_at(pc)
    fname = f"{f.name}+{pc - f.start:#x}" if f else None
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
    if e is None:
        print(
            f"{pc:#x}{' (' + fname + ')' if fname else ''}: no stack map: {img.describe_no_map(pc)}"
        )
        return EXIT_OK
    print(
        f"{pc:#x} ({fname}): frame_size={e.frame_size} live slots at "
        + ", ".join(f"SP+{o}" for o in e.offsets)
    )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    img = WasmtimeImage.from_file(args.file)
    try:
        _ = img.engine, img.functions  # parse them now: a bad image fails the check
        sm = img.stackmaps
        if sm is not None:
            sm.validate()
            size = img.text_range[1]
            if len(sm) and sm.pcs[len(sm) - 1] > size:
                raise CorruptSection(
                    f"{img.name}: stack map pc {sm.pcs[len(sm) - 1]:#x} is past the end of "
                    f".text ({size:#x})"
                )
    except CorruptSection as e:
        print(f"invalid: {e}")
        return EXIT_INVALID
    n = len(sm) if sm is not None else 0
    print(
        f"{img.name}: valid ({n} stack-map entries"
        + ("" if sm is not None else f"; {img.no_stackmaps_reason()}")
        + ")"
    )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wasmtime-stackmaps",
        description="Read the GC stack maps (.wasmtime.stackmap) of Wasmtime code images.",
    )
    p.add_argument("--version", action="version", version=f"wasmtime-stackmaps {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
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

    s = sub.add_parser("check", help="validate the section: exit 0 valid, 1 invalid, 2 unreadable")
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
        print(f"wasmtime-stackmaps: invalid: {e}", file=sys.stderr)
        return EXIT_INVALID
    except StackMapsError as e:
        print(f"wasmtime-stackmaps: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
