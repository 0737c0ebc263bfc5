"""`wasmtime-stackmaps triage`: a crash report from a core file or a process, no session needed.

Runs GDB or LLDB in batch mode with the plugin, `stackmap report --json` in it,
and writes the report (text or JSON). Everything that can be checked before a
debugger starts is checked here (so both debuggers fail the same way), and
what a debugger says afterwards is mapped to the same outcomes. Exit codes
(README, "Scripted crash triage"):
    0 report made, 1 no Wasmtime frames found, 2 usage or input error,
    3 the debugger failed or timed out, 4 the program exited without stopping.
Every failure is one line on stderr.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from .errors import StackMapsError
from .text import safe

# The debugger machinery is imported when triage runs, not when the CLI starts.

EXIT_OK, EXIT_NO_FRAMES, EXIT_USAGE, EXIT_DEBUGGER, EXIT_EXITED = 0, 1, 2, 3, 4


class TriageFailure(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


def add_parser(sub: "argparse._SubParsersAction[Any]") -> None:
    s = sub.add_parser(
        "triage",
        help="crash report of GC roots from a core file or a process (batch debugger)",
        description="Run GDB or LLDB in batch mode on a core file, a running process (attach) "
        "or a program (run until it stops), and report the stop signal, trap and "
        "the live GC references of every wasm frame of every thread. Exit codes: "
        "0 report made, 1 no Wasmtime frames found, 2 usage or input error, "
        "3 the debugger failed or timed out, 4 the program exited without stopping.",
    )
    s.add_argument("--core", help="core file (give the executable with --exe)")
    s.add_argument("--pid", type=_pid, help="attach to this running process")
    s.add_argument(
        "--run",
        nargs=argparse.REMAINDER,
        metavar="PROGRAM",
        help="run PROGRAM [ARGS...] until it stops (must come last)",
    )
    s.add_argument("--exe", help="the executable the core file or process belongs to")
    s.add_argument("--debugger", choices=("gdb", "lldb"), default="gdb")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument("-o", "--output", help="write the report here instead of stdout")
    s.add_argument("--timeout", type=_seconds, default=300, help="seconds (default 300)")
    s.set_defaults(func=cmd_triage)


def _pid(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if not 0 < n < 1 << 22:
        raise argparse.ArgumentTypeError(f"not a process id: {text}")
    return n


def _seconds(text: str) -> float:
    try:
        t = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < t <= 86400:
        raise argparse.ArgumentTypeError(f"the timeout must be in (0, 86400] seconds: {text}")
    return t


def _fail(code: int, message: str) -> int:
    print(f"wasmtime-stackmaps triage: {safe(message)}", file=sys.stderr)
    return code


def _preflight(args: argparse.Namespace) -> None:
    """Refuse what no debugger should be started for (TriageFailure), the same for both."""
    from .batch import debugger_path
    from .corefile import check_core
    from .outfile import check_writable
    from .source import check_input_file

    given = [x for x in (args.core, args.pid, args.run) if x is not None and x != []]
    if len(given) != 1:
        raise TriageFailure(
            EXIT_USAGE, "give exactly one of --core CORE, --pid PID, --run PROGRAM..."
        )
    try:
        if args.output:
            check_writable(args.output, "report")
        if args.exe:
            check_input_file(args.exe, "program")
        if args.core:
            check_core(args.core, args.exe)
        if args.pid and not os.path.exists(f"/proc/{args.pid}"):
            raise StackMapsError(f"no such process: {args.pid}")
        if args.run:
            prog = args.run[0]
            found = shutil.which(prog) if os.sep not in prog else prog
            if not found or not os.path.isfile(found) or not os.access(found, os.X_OK):
                raise StackMapsError(f"no such program: {prog} (not found or not executable)")
    except StackMapsError as e:
        raise TriageFailure(EXIT_USAGE, str(e)) from None
    if debugger_path(args.debugger) is None:
        raise TriageFailure(EXIT_DEBUGGER, f"{args.debugger} is not installed")


# What each debugger prints when the program ran to its end, when attaching failed.
_EXITED: list[tuple[re.Pattern[str], Callable[[re.Match[str]], int]]] = [
    (re.compile(r"\[Inferior \d+ \(process \d+\) exited normally\]"), lambda m: 0),
    (
        re.compile(r"\[Inferior \d+ \(process \d+\) exited with code (\d+)\]"),
        lambda m: int(m[1], 8),
    ),
    (re.compile(r"Process \d+ exited with status = (-?\d+)"), lambda m: int(m[1])),
]
_KILLED = re.compile(
    r"Program terminated with signal (\w+)|Process \d+ exited with status = -1 \((\w+)"
)
_ATTACH = re.compile(
    r"(ptrace: .*|Could not attach to process.*|error: attach failed: .*|"
    r"Unable to attach.*|error: attach .*)"
)


def _outcome(
    output: str, docs: list[dict[str, Any]], debugger: str, pid: int | None
) -> TriageFailure:
    """What went wrong when the debugger printed no report, as one line and an exit code.

    The report command's JSON error document says why (core/report.py error_document);
    what the debugger itself printed tells an exited program or a failed attach apart.
    """
    kinds = {
        str(d["error"].get("kind")): str(d["error"].get("message"))
        for d in docs
        if isinstance(d.get("error"), dict)
    }
    if "no-images" in kinds:
        return TriageFailure(EXIT_NO_FRAMES, kinds["no-images"])
    errors = [line.strip() for line in output.splitlines() if "stackmap:" in line]
    if any("no Wasmtime images" in e for e in errors):
        return TriageFailure(EXIT_NO_FRAMES, errors[-1].split("stackmap: ", 1)[-1])
    if pid is not None:
        m = _ATTACH.search(output)
        if m:
            return TriageFailure(EXIT_USAGE, f"cannot attach to process {pid}: {m[1].strip()}")
    for pattern, status in _EXITED:
        m = pattern.search(output)
        if m:
            return TriageFailure(
                EXIT_EXITED, f"the program exited without stopping (exit status {status(m)})"
            )
    killed = _KILLED.search(output)
    if killed:
        return TriageFailure(
            EXIT_EXITED, f"the program was killed without stopping ({killed[1] or killed[2]})"
        )
    if "no-process" in kinds:
        return TriageFailure(EXIT_USAGE, kinds["no-process"] + " (is the core file/pid right?)")
    if kinds:
        return TriageFailure(EXIT_DEBUGGER, next(iter(kinds.values())))
    if errors:
        return TriageFailure(EXIT_DEBUGGER, errors[-1].split("stackmap: ", 1)[-1])
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    said = next((ln for ln in reversed(lines) if "rror" in ln), lines[-1] if lines else "")
    return TriageFailure(EXIT_DEBUGGER, f"{debugger} gave no report: {said[:300]}")


def cmd_triage(args: argparse.Namespace) -> int:
    try:
        return _triage(args)
    except TriageFailure as f:
        return _fail(f.code, str(f))


def _triage(args: argparse.Namespace) -> int:
    from .batch import Launch, run_batch
    from .outfile import write_atomic
    from .render import Style
    from .report import to_json
    from .reportrender import report_lines

    _preflight(args)
    try:
        r = run_batch(
            args.debugger,
            ["stackmap report --json"],
            Launch(program=args.run, core=args.core, executable=args.exe, pid=args.pid),
            timeout=args.timeout,
        )
    except subprocess.TimeoutExpired:
        raise TriageFailure(
            EXIT_DEBUGGER,
            f"{args.debugger} did not finish within {args.timeout:g} s "
            "(it and the program it ran were killed)",
        ) from None
    except OSError as e:
        raise TriageFailure(EXIT_DEBUGGER, f"cannot run {args.debugger}: {e}") from None
    reports = [d for d in r.docs if "threads" in d and "stop" in d]
    if not reports:
        raise _outcome(r.output, r.docs, args.debugger, args.pid)
    doc = reports[-1]
    doc["triage"] = {
        "debugger": args.debugger,
        "source": "core" if args.core else "pid" if args.pid else "run",
    }
    text = to_json(doc) if args.json else "\n".join(report_lines(doc, Style(False)))
    if args.output:
        try:
            write_atomic(args.output, text + "\n", "report")
        except StackMapsError as e:  # checked before the debugger ran; keep the report anyway
            print(text)
            raise TriageFailure(EXIT_USAGE, f"{e} (the report is on stdout)") from None
    else:
        print(text)
    frames = sum(len(t["frames"]) for t in doc["threads"])
    if frames == 0:
        return _fail(EXIT_NO_FRAMES, "no Wasmtime frames found on any thread")
    return EXIT_OK
