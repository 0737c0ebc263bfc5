"""`wasmtime-stackmaps triage`: a crash report from a core file or a process, no session needed.

Runs GDB or LLDB in batch mode with the plugin, `stackmap report --json` in it,
and writes the report (text or JSON). Exit codes:
    0 report made, 1 no Wasmtime frames found, 2 usage/input error, 3 debugger failed.
"""

import argparse
import os
import sys

# The debugger machinery is imported when triage runs, not when the CLI starts.

EXIT_OK, EXIT_NO_FRAMES, EXIT_USAGE, EXIT_DEBUGGER = 0, 1, 2, 3


def add_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    s = sub.add_parser(
        "triage",
        help="crash report of GC roots from a core file or a process (batch debugger)",
        description="Run GDB or LLDB in batch mode on a core file, a running process (attach) "
        "or a program (run until it stops), and report the stop signal, trap and "
        "the live GC references of every wasm frame of every thread. Exit codes: "
        "0 report made, 1 no Wasmtime frames found, 2 usage/input error, "
        "3 debugger failed.",
    )
    s.add_argument("--core", help="core file (give the executable with --exe)")
    s.add_argument("--pid", type=int, help="attach to this running process")
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
    s.add_argument("--timeout", type=float, default=300, help="seconds (default 300)")
    s.set_defaults(func=cmd_triage)


def _fail(code: int, message: str) -> int:
    print(f"wasmtime-stackmaps triage: {message}", file=sys.stderr)
    return code


def cmd_triage(args: argparse.Namespace) -> int:
    from .batch import debugger_path, run_batch
    from .render import Style, report_lines
    from .report import to_json

    if sum(x is not None and x != [] for x in (args.core, args.pid, args.run)) != 1:
        return _fail(EXIT_USAGE, "give exactly one of --core CORE, --pid PID, --run PROGRAM...")
    if debugger_path(args.debugger) is None:
        return _fail(EXIT_DEBUGGER, f"{args.debugger} is not installed")
    if args.core and not os.path.isfile(args.core):
        return _fail(EXIT_USAGE, f"no such core file: {args.core}")
    if args.exe and not os.path.isfile(args.exe):
        return _fail(EXIT_USAGE, f"no such executable: {args.exe}")
    try:
        r = run_batch(
            args.debugger,
            ["stackmap report --json"],
            program=args.run,
            core=args.core,
            executable=args.exe,
            pid=args.pid,
            timeout=args.timeout,
        )
    except OSError as e:
        return _fail(EXIT_DEBUGGER, f"cannot run {args.debugger}: {e}")
    except Exception as e:  # subprocess.TimeoutExpired
        return _fail(EXIT_DEBUGGER, f"{args.debugger} did not finish: {e}")
    reports = [d for d in r.docs if "threads" in d and "stop" in d]
    if not reports:
        # The report command's JSON error document says why (core/report.py error_document).
        errors = {
            d["error"]["kind"]: d["error"]["message"]
            for d in r.docs
            if isinstance(d.get("error"), dict)
        }
        if "no-images" in errors:
            return _fail(EXIT_NO_FRAMES, "stackmap: " + errors["no-images"])
        if "no-process" in errors:
            return _fail(
                EXIT_USAGE, "stackmap: " + errors["no-process"] + " (is the core file/pid right?)"
            )
        tail = "\n".join(r.output.strip().splitlines()[-8:])
        return _fail(EXIT_DEBUGGER, f"{args.debugger} gave no report:\n{tail}")
    doc = reports[-1]
    doc["triage"] = {
        "debugger": args.debugger,
        "source": "core" if args.core else "pid" if args.pid else "run",
    }
    text = to_json(doc) if args.json else "\n".join(report_lines(doc, Style(False)))
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    frames = sum(len(t["frames"]) for t in doc["threads"])
    if frames == 0:
        return _fail(EXIT_NO_FRAMES, "no Wasmtime frames found on any thread")
    return EXIT_OK
