"""Running GDB or LLDB in batch mode with the plugin loaded: one place for the command lines.

Used by `wasmtime-stackmaps triage` and by the test driver, so what the tests
run is what users run.
"""

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Sequence
from typing import Any, NamedTuple

from .install import plugin_path

# The plugins this installation ships (inside the package, or in the checkout).
GDB_PLUGIN = plugin_path("gdb")
LLDB_PLUGIN = plugin_path("lldb")
DEBUGGERS = ("gdb", "lldb")
# Signals a stopped Wasmtime program typically shows: traps (SIGILL on x86_64
# and aarch64 `unreachable`, SIGSEGV/SIGBUS for bad accesses), SIGTRAP, SIGABRT.
STOP_SIGNALS = "SIGILL SIGTRAP SIGSEGV SIGBUS SIGFPE SIGABRT"


# GDB in batch mode: no user init files, no network look-ups, no auto-loaded scripts
# of the inferior (they would run code we did not ask for), no paging, no questions.
GDB_BATCH_OPTIONS = (
    "-nx",
    "-batch",
    "-iex",
    "set debuginfod enabled off",
    "-iex",
    "set auto-load safe-path /nonexistent",
    "-ex",
    "set pagination off",
    "-ex",
    "set confirm off",
)
# LLDB in batch mode: no user init file, no questions, no colour.
LLDB_BATCH_OPTIONS = (
    "--no-lldbinit",
    "-b",
    "-o",
    "settings set auto-confirm true",
    "-o",
    "settings set use-color false",
)


class Launch(NamedTuple):
    """What the debugger opens: a program it runs (or only loads, `run=False`), a core
    file or a process it attaches to; and whether the plugin is loaded."""

    program: Sequence[str] | None = None
    core: str | None = None
    executable: str | None = None  # the core's or the process's executable
    pid: int | None = None
    run: bool = True
    load: bool = True


class BatchResult(NamedTuple):
    output: str  # stdout and stderr
    stdout: str
    docs: list[dict[str, Any]]
    returncode: int


def debugger_path(name: str) -> str | None:
    if name == "gdb":
        return shutil.which("gdb")
    return shutil.which("lldb-19") or shutil.which("lldb")


def plugin_load(debugger: str) -> list[str]:
    """The command-line arguments that load the plugin into `debugger` in batch mode."""
    if debugger == "gdb":
        return ["-ex", f"source {GDB_PLUGIN}"]
    return ["-o", f"command script import {LLDB_PLUGIN}"]


def debugger_env() -> dict[str, str]:
    """The environment a batch debugger runs in: no colour, and none of this Python's
    paths (the debugger's own Python finds the core through the plugin's bootstrap)."""
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    return env


def json_docs(text: str) -> list[dict[str, Any]]:
    """Every JSON document the `stackmap ... --json` commands printed (they carry "schema")."""
    dec = json.JSONDecoder()
    docs: list[dict[str, Any]] = []
    pos = 0
    while True:
        i = text.find('{\n "schema"', pos)
        if i < 0:
            return docs
        try:
            doc, end = dec.raw_decode(text, i)
        except ValueError:
            pos = i + 1
            continue
        docs.append(doc)
        pos = end


def gdb_argv(commands: Sequence[str], launch: Launch) -> list[str]:
    program, core, executable, pid, run, load = launch
    argv = [debugger_path("gdb") or "gdb", *GDB_BATCH_OPTIONS]
    if executable and (core or pid):
        argv += ["-ex", f"file {executable}"]
    if load:
        argv += plugin_load("gdb")
    if core:
        argv += ["-ex", f"core-file {core}"]
    elif pid:
        argv += ["-ex", f"attach {pid}"]
    elif program and run:
        argv += ["-ex", "run"]
    for c in commands:
        argv += ["-ex", c]
    if pid:
        argv += ["-ex", "detach"]
    if program and not core and not pid:
        argv += ["--args", *program]
    return argv


def lldb_argv(commands: Sequence[str], launch: Launch) -> list[str]:
    program, core, executable, pid, run, load = launch
    argv = [debugger_path("lldb") or "lldb", *LLDB_BATCH_OPTIONS]
    if core:
        argv += ["-c", core] + ([executable] if executable else [])
    elif pid:
        argv += ["-p", str(pid)] + ([executable] if executable else [])
    if load:
        argv += plugin_load("lldb")
    if program and not core and not pid and run:
        argv += [
            "-o",
            f"process handle {STOP_SIGNALS} -s true -p false -n true",
            "-o",
            "process launch",
        ]
    # In batch mode a stop on a signal counts as a crash: LLDB then skips the
    # remaining -o commands and runs the -k ones instead. Give the commands to both;
    # only one list runs.
    for c in commands:
        argv += ["-o", c]
    for c in commands:
        argv += ["-k", c]
    if pid:
        argv += ["-o", "process detach", "-k", "process detach"]
    if program and not core and not pid:
        argv += ["--", *program]
    return argv


def run_batch(
    debugger: str,
    commands: Sequence[str],
    launch: Launch,
    timeout: float = 300,
    cwd: str | None = None,
) -> BatchResult:
    build = gdb_argv if debugger == "gdb" else lldb_argv
    argv = build(commands, launch)
    env = debugger_env()
    # A session of its own: on a timeout the debugger, its helpers (lldb-server) and the
    # program it runs are all found and killed, not left running (adopted by init).
    p = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException:  # the timeout, or Ctrl-C: leave nothing behind
        kill_tree(p.pid)
        p.communicate()
        raise
    return BatchResult(out + "\n" + err, out, json_docs(out), p.returncode)


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc), children first found, at this moment."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL `pid`, its process group and every process below it (a traced program too:
    SIGKILL ends a stopped, traced process). The tree is listed before anything dies,
    so nothing is re-parented out of sight first."""
    victims = descendants(pid)
    for target in (pid, *victims):
        try:
            os.kill(target, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
