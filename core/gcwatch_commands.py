"""The `stackmap gc-watch` and `stackmap watch` subcommands (their parsers and handlers)."""

import argparse
import json

from .errors import StackMapsError
from .gcrender import gcwatch_lines, gcwatch_status_line, watch_list_lines
from .gcwatch import GcWatch
from .render import Style
from .report import to_json
from .session import Session
from .target import Target
from .watch import Watches


def gc_watch_of(session: Session) -> GcWatch:
    """The session's gc-watch state (one per debugger session)."""
    w = getattr(session, "gcwatch", None)
    if w is None:
        w = GcWatch(session)
        session.gcwatch = w  # type: ignore[attr-defined]
    return w


def watches_of(session: Session) -> Watches:
    w = getattr(session, "watches", None)
    if w is None:
        w = Watches(session, gc_watch_of(session))
        session.watches = w  # type: ignore[attr-defined]
    return w


def add_watch_parser(sub: argparse._SubParsersAction, summary: str) -> None:
    s = sub.add_parser(
        "watch",
        help=summary,
        description="A hardware write watchpoint on a live root slot of a wasm frame "
        "('#3 SP+8', the selected frame without #N) or on a word of a GC object "
        "('heap 0x70+16', '#1 SP+0->+16': the object that slot points at; REF.FIELD with "
        "the module's types). The next write stops with the writer on top. An object's "
        "watch follows the object when a collection moves it (gc-watch is turned on for it).",
    )
    s.add_argument("spec", nargs="*", help="what to watch (see above)")
    s.add_argument("--list", action="store_true", help="the watches and how often they moved")
    s.add_argument("--delete", type=int, metavar="N", help="delete watch N")
    s.add_argument("--delete-all", action="store_true", help="delete every watch")
    s.add_argument("--json", action="store_true", help="--list: one JSON document")


def cmd_watch(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    ws = watches_of(session)
    if args.delete is not None or args.delete_all:
        gone = ws.delete(target, None if args.delete_all else args.delete)
        return f"watch: deleted {', '.join(f'#{n}' for n in gone) or 'nothing'}"
    if args.list or not args.spec:
        recs = [w.record() for w in ws.watches.values()]
        if args.json:
            return to_json({"schema": 1, "watches": recs})
        return "\n".join(watch_list_lines(recs)) or "no watches"
    ws.add(target, " ".join(args.spec))
    return ""


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
    s.add_argument("action", choices=("on", "off", "status", "log"), help="what to do (below)")
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
