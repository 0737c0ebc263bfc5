"""Run GDB or LLDB in batch mode on a real process or core file, with the plugin loaded.

Test bodies call `run(debugger, ...)` and get the debugger's whole output plus
every JSON document the `stackmap ... --json` commands printed, in order; they
do not care which debugger ran. The command lines come from the core's
`batch` module, the same ones `wasmtime-stackmaps triage` uses.
"""

import os
import subprocess
from collections.abc import Sequence
from typing import NamedTuple

from wasmtime_stackmaps import batch
from wasmtime_stackmaps.batch import DEBUGGERS, Launch, debugger_path, run_batch

__all__ = ["DEBUGGERS", "TIMEOUT", "Result", "debugger_path", "gcore", "run"]

TIMEOUT = 240


class Result(NamedTuple):
    output: str
    docs: list
    returncode: int


def run(
    debugger: str,
    commands: Sequence[str],
    program: Sequence[str] | None = None,
    core: str | None = None,
    executable: str | None = None,
    run: bool = True,
    load: bool = True,
    pid: int | None = None,
) -> Result:
    r = run_batch(debugger, commands, Launch(program, core, executable, pid, run, load), TIMEOUT)
    return Result(r.output, r.docs, r.returncode)


def gdb_argv(
    commands: Sequence[str], program: Sequence[str], run: bool = True, load: bool = True
) -> list[str]:
    """GDB's batch command line running (or, `run=False`, only loading) `program`."""
    return batch.gdb_argv(commands, Launch(program, run=run, load=load))


def gcore(program: Sequence[str], path: str) -> str:
    """Run `program` under GDB to its stop and write a core file with gcore."""
    argv = gdb_argv([f"gcore {path}"], program, load=False)
    env = dict(os.environ, NO_COLOR="1")
    p = subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL
    )
    if not os.path.exists(path):
        raise RuntimeError(f"gcore failed:\n{p.stdout}\n{p.stderr}")
    return path
