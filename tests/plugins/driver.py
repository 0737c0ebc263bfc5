"""Run GDB or LLDB in batch mode on a real process or core file, with the plugin loaded.

Test bodies call `run(debugger, ...)` and get the debugger's whole output plus
every JSON document the `stackmap ... --json` commands printed, in order; they
do not care which debugger ran.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import List, NamedTuple, Optional, Sequence

REPO = Path(__file__).resolve().parent.parent.parent
GDB_PLUGIN = REPO / "gdb_plugin" / "stackmaps.py"
LLDB_PLUGIN = REPO / "lldb_plugin" / "stackmaps.py"
DEBUGGERS = ("gdb", "lldb")
TIMEOUT = 240


class Result(NamedTuple):
    output: str
    docs: List[dict]
    returncode: int


def debugger_path(name: str) -> Optional[str]:
    if name == "gdb":
        return shutil.which("gdb")
    return shutil.which("lldb-19") or shutil.which("lldb")


def _env():
    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def json_docs(text: str) -> List[dict]:
    """Every JSON object printed at the start of a line with a "schema" key."""
    dec = json.JSONDecoder()
    docs = []
    pos = 0
    while True:
        i = text.find('{\n "schema"', pos)
        if i < 0:
            return docs
        doc, end = dec.raw_decode(text, i)
        docs.append(doc)
        pos = end


def gdb_argv(commands: Sequence[str], program: Optional[Sequence[str]] = None,
             core: Optional[str] = None, executable: Optional[str] = None,
             run: bool = True, load: bool = True) -> List[str]:
    argv = [debugger_path("gdb"), "-nx", "-batch", "-iex", "set debuginfod enabled off",
            "-iex", "set auto-load safe-path /nonexistent", "-ex", "set pagination off",
            "-ex", "set confirm off"]
    if load:
        argv += ["-ex", f"source {GDB_PLUGIN}"]
    if core:
        argv += ["-ex", f"core-file {core}"]
    elif program and run:
        argv += ["-ex", "run"]
    for c in commands:
        argv += ["-ex", c]
    if core:
        argv += [executable] if executable else []
    elif program:
        argv += ["--args", *program]
    return argv


def lldb_argv(commands: Sequence[str], program: Optional[Sequence[str]] = None,
              core: Optional[str] = None, executable: Optional[str] = None,
              run: bool = True, load: bool = True) -> List[str]:
    argv = [debugger_path("lldb"), "--no-lldbinit", "-b",
            "-o", "settings set auto-confirm true",
            "-o", "settings set use-color false"]
    if load:
        argv += ["-o", f"command script import {LLDB_PLUGIN}"]
    if core:
        argv[1:1] = ["-c", core] + ([executable] if executable else [])
    elif program and run:
        # Stop on the signals our programs raise, and keep going with the -o list
        # after the stop (-b alone would hand over to the crash commands).
        argv += ["-o", "process launch --stop-at-entry",
                 "-o", "process handle SIGILL SIGTRAP SIGSEGV -s true -p false -n true",
                 "-o", "process continue"]
    for c in commands:
        argv += ["-o", c]
    # Same commands if a stop counts as a crash in batch mode.
    argv += ["-k", "script print('@@crash-handler')"]
    if program and not core:
        argv += ["--", *program]
    return argv


def run(debugger: str, commands: Sequence[str], program: Optional[Sequence[str]] = None,
        core: Optional[str] = None, executable: Optional[str] = None, run: bool = True,
        load: bool = True, cwd: Optional[str] = None) -> Result:
    build = gdb_argv if debugger == "gdb" else lldb_argv
    argv = build(commands, program, core, executable, run, load)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=_env(),
                       cwd=cwd, stdin=subprocess.DEVNULL)
    out = p.stdout + "\n" + p.stderr
    return Result(out, json_docs(p.stdout), p.returncode)


def gcore(program: Sequence[str], path: str) -> str:
    """Run `program` under GDB to its stop and write a core file with gcore."""
    argv = gdb_argv([f"gcore {path}"], program, load=False)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, env=_env(),
                       stdin=subprocess.DEVNULL)
    if not os.path.exists(path):
        raise RuntimeError(f"gcore failed:\n{p.stdout}\n{p.stderr}")
    return path
