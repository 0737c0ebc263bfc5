"""The `stackmap gc-watch` and `stackmap watch` subcommands (their parsers and handlers)."""

import argparse
import json

from .errors import StackMapsError
from .gcwatch import GcWatch
from .render import Style, gcwatch_lines, gcwatch_status_line
from .report import to_json
from .session import Session
from .target import Target


def gc_watch_of(session: Session) -> GcWatch:
    """The session's gc-watch state (one per debugger session)."""
    w = getattr(session, "gcwatch", None)
    if w is None:
        w = GcWatch(session)
        session.gcwatch = w  # type: ignore[attr-defined]
    return w


def add_parser(sub: argparse._SubParsersAction, summary: str, parser_class: type) -> None:
    s = sub.add_parser(
        "gc-watch",
        help=summary,
        description="on: stop briefly (and continue by itself) where a collection can run: "
        "calls from wasm into Wasmtime's GC builtins and, where the host has symbols, the "
        "collector's entry. Before, the roots of every stack of the store are recorded; after, "
        "each is checked: moved or unchanged, and a root left pointing at a forwarded, freed "
        "or out-of-heap object (or at another object than before) is a violation. One line "
        "per collection. off: remove the breakpoints. status: counts. log: every record.",
    )
    s.add_argument("action", choices=("on", "off", "status", "log"))
    s.add_argument(
        "--verify", action="store_true", help="also check the objects the roots reach (slower)"
    )
    s.add_argument(
        "--stop-on-violation",
        action="store_true",
        help="stop at the first violation, with the offending root's frame selected",
    )
    s.add_argument(
        "--stop-at",
        type=int,
        metavar="N",
        help="stop after checking collection N (with its frames in place)",
    )
    s.add_argument("--json", action="store_true", help="log/status: one JSON document")
    s.add_argument("--file", help="log: write the records to FILE as JSON")


def cmd_gc_watch(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    w = gc_watch_of(session)
    if args.action == "on":
        st = w.enable(target, args.verify, args.stop_on_violation, args.stop_at)
        if not st["points"]:
            raise StackMapsError(
                "gc-watch: no point to watch: no GC builtin in the images found and no "
                "collector entry among the host's symbols (load a module first?)"
            )
        return gcwatch_status_line(st)
    if args.action == "off":
        return gcwatch_status_line(w.disable(target))
    if args.action == "status":
        st = w.summary()
        return to_json({"schema": 1, **st}) if args.json else gcwatch_status_line(st)
    doc = {"schema": 1, "status": w.summary(), "collections": w.log}
    if args.file:
        with open(args.file, "w") as fh:
            json.dump(doc, fh)
        return f"gc-watch: {len(w.log)} records written to {args.file}"
    if args.json:
        return to_json(doc)
    return "\n".join(line for rec in w.log for line in gcwatch_lines(rec)) or "no collections"
