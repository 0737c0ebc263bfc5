"""The `stackmap` debugger commands, shared by the GDB and LLDB plugins.

A plugin keeps one Session (core/session.py) and calls
`run(session, argv, target_factory, style)`; it gets text back (or raises
StackMapsError, whose message is the one line to print). The argparse parsers
here make the `help` text identical in both debuggers; `HANDLERS` maps each
subcommand to the function that runs it (core/handlers.py).
"""

import argparse
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

from . import gcwatch_commands, handlers, heapcmds, helptext
from .errors import StackMapsError
from .failsafe import bug_line
from .handlers import context_text  # noqa: F401  (the plugins' `stackmap context on`)
from .helptext import (  # noqa: F401  (the plugins take the help texts from here)
    BASE_ORDER,
    EXAMPLES,
    SUMMARIES,
    TOP_SUMMARY,
    TOP_SYNTAX,
    HelpFormatter,
    examples,
)
from .render import Style
from .report import error_document, to_json
from .session import Session
from .target import Target
from .text import safe
from .walk import DEFAULT_MAX_DEPTH

# Every subcommand with its one line (`help stackmap` lists them in this order).
SUBCOMMANDS = {
    **{k: v for k, v in SUMMARIES.items() if k in BASE_ORDER},
    **heapcmds.SUBCOMMANDS,
    **{k: v for k, v in SUMMARIES.items() if k not in BASE_ORDER},
}


def subcommand_list() -> str:
    """Every subcommand with its one line: the body of `help stackmap` in both debuggers."""
    return helptext.subcommand_list(SUBCOMMANDS)


def top_help() -> str:
    """`help stackmap` (GDB prints it as is; LLDB puts TOP_SYNTAX after its `Syntax: `)."""
    return helptext.top_help(SUBCOMMANDS)


class CommandFailed(StackMapsError):
    """A `--json` command failed: `document` is its JSON error document (printed before the
    one error line, so scripts read why from JSON)."""

    def __init__(self, error: StackMapsError, document: str):
        super().__init__(str(error))
        self.kind = error.kind
        self.document = document


class UsageError(StackMapsError):
    """Bad command-line arguments (argparse's message, one line)."""


class HelpShown(Exception):
    """argparse printed help: nothing more to do."""

    def __init__(self, text: str):
        self.text = text


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting the debugger."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        sub = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        raise UsageError(f"{sub + ': ' if sub else ''}{message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise HelpShown(message or "")

    def print_help(self, file: "SupportsWrite[str] | None" = None) -> None:
        raise HelpShown(self.format_help())


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _count(text: str) -> int:
    """A count of frames: 1 or more (-n, --max-depth)."""
    n = _int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text}")
    return n


def _level(text: str) -> int:
    n = _int(text)
    if n < 0:
        raise argparse.ArgumentTypeError(f"a frame number is 0 or more, not {text}")
    return n


def _address(text: str) -> int:
    n = _int(text)
    if not 0 <= n < 1 << 64:
        raise argparse.ArgumentTypeError(f"{text} is not a 64-bit address")
    return n


_HELP: dict[str, str] = {}


def subcommand_help(name: str) -> str:
    """The help of `stackmap NAME`: its summary, usage, description, options, examples."""
    if not _HELP:
        parser = build_parser()
        subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for sub, sp in subs.choices.items():
            _HELP[sub] = SUBCOMMANDS[sub] + ".\n\n" + sp.format_help().rstrip("\n")
    return _HELP[name]


def _json(s: argparse.ArgumentParser) -> None:
    s.add_argument("--json", action="store_true", help="one JSON document")


def _wide(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--wide", action="store_true", help="one line per frame, whatever the terminal width"
    )


def _max_depth(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--max-depth",
        type=_count,
        default=None,
        help=f"frames to walk at most (default {DEFAULT_MAX_DEPTH})",
    )


def _subcommand(sub: Any, name: str, description: str) -> argparse.ArgumentParser:
    """The parser of `stackmap NAME`: its one-line summary and examples from helptext."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, epilog=examples(name), help=SUBCOMMANDS[name], description=description
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="stackmap",
        description="Show live GC references in WebAssembly frames "
        "of a Wasmtime process, from its stack maps.",
    )
    sub = p.add_subparsers(dest="sub", metavar="SUBCOMMAND", parser_class=_Parser)

    s = _subcommand(
        sub,
        "frame",
        "Stack map and live GC-reference slots of the selected "
        "wasm frame, or of frame N as numbered by 'stackmap bt'.",
    )
    s.add_argument("level", nargs="?", type=_level, help="frame number from 'stackmap bt'")
    s.add_argument(
        "-x", "--dump", action="store_true", help="hexdump SP..FP with the live slots highlighted"
    )
    _json(s)
    _max_depth(s)

    s = _subcommand(
        sub,
        "bt",
        "One line per wasm frame with its live GC references; "
        "host code between activations is shown as one line.",
    )
    s.add_argument("--all-threads", "-a", action="store_true", help="every thread")
    s.add_argument("--full", action="store_true", help="every slot on its own line")
    s.add_argument("-n", type=_count, default=None, metavar="N", help="only the N innermost frames")
    _wide(s)
    _json(s)
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
    _max_depth(s)

    s = _subcommand(
        sub,
        "images",
        "Wasmtime images mapped in the inferior (from its memory "
        "map, a scan back from each thread's pc, and 'stackmap load').",
    )
    _json(s)

    s = _subcommand(
        sub,
        "load",
        "Use FILE (a .cwasm) as the image mapped at ADDR, for core "
        "files whose image memory was not dumped and remote targets.",
    )
    s.add_argument("file", help="the image file (a .cwasm)")
    s.add_argument("address", type=_address, help="the address it is mapped at")

    s = _subcommand(
        sub,
        "report",
        "Everything for a crash triage in one document: the stop "
        "signal and faulting pc, the trap code (.wasmtime.traps) and "
        "wasm bytecode offset (.wasmtime.addrmap) when the pc is a "
        "trap site, the images, and every thread's wasm frames.",
    )
    _json(s)
    _wide(s)

    for name in ("snapshot", "diff"):
        s = _subcommand(
            sub,
            name,
            SUBCOMMANDS[name]
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
            _json(s)
    heapcmds.add_parsers(sub, _int)
    gcwatch_commands.add_parser(sub, SUBCOMMANDS["gc-watch"], _Parser)
    gcwatch_commands.add_watch_parser(sub, SUBCOMMANDS["watch"])
    for name in (*heapcmds.SUBCOMMANDS, "gc-watch", "watch"):
        sub.choices[name].epilog = examples(name)
    s = _subcommand(
        sub,
        "context",
        "With 'on', after every stop where the selected thread has wasm frames, "
        "the debugger shows a few lines: each frame with live GC references and what they "
        "are (off by default). With no argument, show that summary now.",
    )
    s.add_argument("state", nargs="?", choices=("on", "off"), help="on or off")
    _wide(s)
    return p


Handler = Callable[[Session, argparse.Namespace, Target, Style], str]
HANDLERS: dict[str, Handler] = {
    "frame": handlers.cmd_frame,
    "bt": handlers.cmd_bt,
    "images": handlers.cmd_images,
    "load": handlers.cmd_load,
    "report": handlers.cmd_report,
    "snapshot": handlers.cmd_snapshot,
    "diff": handlers.cmd_diff,
    **dict.fromkeys(heapcmds.SUBCOMMANDS, heapcmds.run),
    "gc-watch": gcwatch_commands.cmd_gc_watch,
    "watch": gcwatch_commands.cmd_watch,
    "context": handlers.cmd_context,
}
assert HANDLERS.keys() == SUBCOMMANDS.keys(), "a subcommand without a handler"


def run(
    session: Session,
    argv: str | list[str],
    target_factory: Callable[[], Target],
    style: Style | None = None,
) -> str:
    """Run one `stackmap` command. `target_factory()` gives the Target (or raises).

    Raises StackMapsError only, with one line to print: anything else escaping a
    handler is a bug, reported as one line too (failsafe.bug_line)."""
    try:
        if isinstance(argv, str):
            argv = shlex.split(argv)
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except HelpShown as h:
            return h.text.rstrip("\n")
        if not args.sub:
            return top_help()
        if args.sub == "context" and args.state:  # a switch: no process needed
            session.context = args.state == "on"
            return f"stackmap context is {args.state}"
        try:
            return HANDLERS[args.sub](session, args, target_factory(), style or Style(False))
        except StackMapsError as e:
            if getattr(args, "json", False):
                raise CommandFailed(e, to_json(error_document(e))) from e
            raise
    except StackMapsError as e:
        # The message may quote the inferior or an image: one line, control characters escaped.
        clean = StackMapsError(safe(str(e)))
        clean.kind = e.kind
        if isinstance(e, CommandFailed):
            raise CommandFailed(clean, e.document) from None
        raise clean from None
    except ValueError as e:  # shlex: unbalanced quotes
        if "quotation" in str(e) or "escape" in str(e):
            raise StackMapsError(str(e)) from None
        raise StackMapsError(bug_line(e, "")) from e
    except MemoryError as e:
        raise StackMapsError(bug_line(e, "")) from None
    except Exception as e:
        raise StackMapsError(bug_line(e, "")) from e
