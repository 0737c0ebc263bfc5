"""Remote targets for tests/arch: a program under qemu-user's GDB stub, debugged by GDB
or LLDB in batch mode with the plugin loaded (the remote counterpart of
tests/plugins/driver.py)."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from typing import NamedTuple

from wasmtime_stackmaps.batch import (
    GDB_BATCH_OPTIONS,
    LLDB_BATCH_OPTIONS,
    debugger_env,
    debugger_path,
    json_docs,
    plugin_load,
)

TIMEOUT = 240


class RemoteResult(NamedTuple):
    output: str  # the debugger's stdout and stderr
    docs: list  # JSON documents printed by `stackmap ... --json`, in order
    returncode: int
    target_output: str  # what the program (and qemu) printed
    qemu_pid: int
    seconds: float  # wall time of the debugger session


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Is something listening on `port`? Read from /proc/net/tcp*: a probe connect()
    would use up the stub's one connection (qemu then runs on without a debugger)."""
    want = f":{port:04X} "
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and (parts[1] + " ").endswith(want) and parts[3] == "0A":
                return True
    return False


@contextmanager
def qemu_gdb_stub(
    qemu: str,
    program: Sequence[str],
    env: dict | None = None,
    log_path: str | None = None,
    wait: float = 20.0,
):
    """Start `qemu -g PORT program...` (stopped before its first instruction, waiting for
    a debugger) and yield (port, Popen). The process is killed on exit if still alive."""
    port = _free_port()
    full_env = dict(os.environ)
    full_env.update(env or {})
    log = open(log_path, "w+b") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(
        [qemu, "-g", str(port), *program],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=full_env,
    )
    try:
        deadline = time.monotonic() + wait
        while not _listening(port):
            if p.poll() is not None:
                raise RuntimeError(f"qemu exited ({p.returncode}) before its gdb stub listened")
            if time.monotonic() > deadline:
                raise RuntimeError(f"qemu's gdb stub did not listen on port {port}")
            time.sleep(0.02)
        yield port, p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        if log_path:
            log.close()


def remote_argv(
    debugger: str,
    commands: Sequence[str],
    executable: str,
    port: int,
    sysroot: str,
    binary: str | None = None,
    load: bool = True,
) -> list[str]:
    """GDB (gdb-multiarch for a foreign target) or LLDB attached to a gdb stub at
    127.0.0.1:port: continue to the first stop after the start, run `commands`, kill.

    In batch mode LLDB goes on with the -o list after the stop at the program's entry
    (SIGTRAP from the stub), but a later signal stop counts as a crash: the rest of the
    -o list is skipped and the -k list runs. So everything after `process continue` is
    given with -k only (unlike batch.lldb_argv, which gives both: a launched process
    stops differently)."""
    if debugger == "gdb":
        argv = [binary or shutil.which("gdb-multiarch") or "gdb-multiarch", *GDB_BATCH_OPTIONS]
        flag, late, end = "-ex", "-ex", "kill"
        setup = [f"set sysroot {sysroot}", f"file {executable}"]
        attach = [f"target remote 127.0.0.1:{port}", "continue"]
    else:
        argv = [binary or debugger_path("lldb") or "lldb", *LLDB_BATCH_OPTIONS]
        flag, late, end = "-o", "-k", "process kill"
        setup = [f"platform select remote-linux --sysroot {sysroot}", f"target create {executable}"]
        attach = [f"gdb-remote 127.0.0.1:{port}", "process continue"]
    for c in setup:
        argv += [flag, c]
    if load:
        argv += plugin_load(debugger)
    for c in attach:
        argv += [flag, c]
    for c in [*commands, end]:
        argv += [late, c]
    return argv


def run_remote(
    debugger: str,
    commands: Sequence[str],
    program: Sequence[str],
    qemu: str,
    sysroot: str,
    env: dict | None = None,
    debugger_binary: str | None = None,
    load: bool = True,
    timeout: float = TIMEOUT,
) -> RemoteResult:
    """Run `program` (a foreign-architecture executable and its arguments) under
    `qemu -g`, attach GDB (`target remote`) or LLDB (`gdb-remote`) with the plugin loaded,
    continue to the first signal stop and run `commands` there.

    `{qemu_pid}` in a command is replaced by qemu's pid on this host (where the
    guest's mappings show in /proc/PID/maps when qemu runs with guest_base 0)."""
    qenv = {"QEMU_LD_PREFIX": sysroot}
    qenv.update(env or {})
    with tempfile.NamedTemporaryFile(prefix="qemu-", suffix=".log") as logf:
        with qemu_gdb_stub(qemu, program, qenv, logf.name) as (port, proc):
            cmds = [c.replace("{qemu_pid}", str(proc.pid)) for c in commands]
            argv = remote_argv(debugger, cmds, program[0], port, sysroot, debugger_binary, load)
            t0 = time.monotonic()
            try:
                p = subprocess.run(
                    argv,
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    env=debugger_env(),
                    stdin=subprocess.DEVNULL,
                )
            finally:
                seconds = time.monotonic() - t0
                if proc.poll() is None:
                    try:
                        proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            qpid = proc.pid
        with open(logf.name, errors="replace") as f:
            target_output = f.read()
    return RemoteResult(
        p.stdout + "\n" + p.stderr, json_docs(p.stdout), p.returncode, target_output, qpid, seconds
    )
