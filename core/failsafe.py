"""What a command does with an exception that is not a StackMapsError: one line, not a traceback.

Every entry point (the CLI, each debugger command, GDB's frame filter) catches
everything; a StackMapsError is the user's one line, anything else is a bug
in this tool and becomes `bug_line()`: one line naming the exception and
DEBUG_ENV, which (set to 1) prints the traceback too.
"""

import os
import sys
import traceback

from .text import safe

DEBUG_ENV = "WASMTIME_STACKMAPS_DEBUG"


def debugging() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def bug_line(exc: BaseException, where: str = "wasmtime-stackmaps") -> str:
    """One line for an unexpected exception (a bug); the traceback goes to stderr when
    DEBUG_ENV is set."""
    if debugging():
        traceback.print_exception(exc, file=sys.stderr)
    what = safe(str(exc))
    if len(what) > 200:
        what = what[:200] + "..."
    return (
        (f"{where}: " if where else "")
        + f"internal error (a bug in wasmtime-stackmaps): {type(exc).__name__}"
        + (f": {what}" if what else "")
        + f"; set {DEBUG_ENV}=1 for the traceback"
    )
