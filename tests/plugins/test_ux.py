"""Help, width and the context on stop: the same behaviour under GDB and LLDB."""

import argparse
import os
import re
import shlex
import subprocess

import pytest
from wasmtime_stackmaps.batch import GDB_BATCH_OPTIONS, GDB_PLUGIN, LLDB_PLUGIN, debugger_path
from wasmtime_stackmaps.commands import HANDLERS, SUBCOMMANDS, build_parser, subcommand_help

from tests.plugins import driver
from tests.plugins.common import CLI_DEPTH, cli_program

TIMEOUT = 240
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def session(dbg: str, before: list[str], after: list[str], program=None) -> str:
    """The debugger's output for: load the plugin, `before`, run the program to its stop
    (when one is given), `after`."""
    if dbg == "gdb":
        argv = [debugger_path("gdb"), *GDB_BATCH_OPTIONS, "-ex", f"source {GDB_PLUGIN}"]
        for c in [*before, *(["run"] if program else []), *after]:
            argv += ["-ex", c]
        if program:
            argv += ["--args", *program]
    else:
        argv = [debugger_path("lldb"), "--no-lldbinit", "-b", "-o", "settings set use-color false"]
        argv += ["-o", f"command script import {LLDB_PLUGIN}"]
        for c in before:
            argv += ["-o", c]
        if program:
            # After the trap (a "crash" to LLDB's batch mode) only the -k list runs.
            argv += ["-o", "process launch", *[x for c in after for x in ("-k", c)]]
            argv += ["--", *program]
        else:
            for c in after:
                argv += ["-o", c]
    env = dict(os.environ, NO_COLOR="1")
    env.pop("PYTHONPATH", None)
    p = subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT, env=env, stdin=subprocess.DEVNULL
    )
    return p.stdout + p.stderr


def _block(text: str, start: str, end_line: str | None = None) -> str:
    """From the line that starts with `start` to the first empty line (or `end_line`)."""
    lines = text.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    out = []
    for line in lines[i:]:
        if (end_line is None and not line.strip()) or (end_line and line.startswith(end_line)):
            break
        out.append(line.rstrip())
    return "\n".join(out)


def _helps(dbg: str, cmds: list[str]) -> list[str]:
    """The debugger's output of each of `cmds` (separated by marker lines)."""
    mark = "echo =={}==\\n" if dbg == "gdb" else "script print('=={}==')"
    steps = [x for i, c in enumerate(cmds) for x in (mark.format(i), c)]
    out = session(dbg, [], [*steps, mark.format(len(cmds))])
    parts = re.split(r"^==(\d+)==\n", out, flags=re.M)
    texts = {int(parts[i]): parts[i + 1] for i in range(1, len(parts) - 1, 2)}
    assert sorted(texts) == list(range(len(cmds) + 1)), out[-3000:]
    # LLDB echoes each command (and the marker's `script` line) before its output.
    return [
        "\n".join(x for x in texts[i].splitlines() if not x.startswith("(lldb) ")).rstrip()
        for i in range(len(cmds))
    ]


def test_help_is_the_same_in_both_debuggers():
    for dbg in driver.DEBUGGERS:
        if debugger_path(dbg) is None:
            pytest.skip(f"{dbg} is not installed here")
    # Every subcommand that runs (a new one cannot escape this test), in `help` order.
    subs = list(SUBCOMMANDS)
    assert sorted(subs) == sorted(HANDLERS)
    cmds = ["help stackmap", *(f"help stackmap {s}" for s in subs)]
    outs = {dbg: _helps(dbg, cmds) for dbg in driver.DEBUGGERS}
    gdb, lldb = outs["gdb"], outs["lldb"]
    # `help stackmap`: every subcommand on one line, the same lines in both.
    lists = {dbg: _block(out[0], "Subcommands:") for dbg, out in outs.items()}
    assert lists["gdb"] == lists["lldb"], lists
    rows = lists["gdb"].splitlines()[1:]
    assert [r.split()[0] for r in rows] == subs
    assert all(re.fullmatch(r"  \S+ +\S.*", r) and len(r) <= 80 for r in rows), rows
    # Each debugger then adds its own list of the subcommands: LLDB's says nothing of raw
    # input (the subcommands are parsed commands that leave the words to argparse).
    assert "Syntax: stackmap SUBCOMMAND [OPTIONS] [ARGS]" in lldb[0]
    assert "raw" not in "\n".join(lldb), lldb[0]
    parser = build_parser()
    sub_parsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for s, g, ll in zip(subs, gdb[1:], lldb[1:], strict=True):
        # The same text, but for the one line LLDB adds after the summary.
        assert g == subcommand_help(s), (s, g)
        lines = ll.splitlines()
        assert lines[2] == f"Syntax: {s} [<value> [<value> [...]]]" and lines[3] == "", (s, ll)
        assert "\n".join(lines[:2] + lines[4:]) == g, (s, ll)
        assert g.startswith(SUBCOMMANDS[s] + ".\n\nusage: stackmap " + s), (s, g)
        # Every option and argument is in it, each with what it does.
        for action in sub_parsers.choices[s]._actions:
            assert action.help, (s, action.option_strings or action.dest)
            for opt in action.option_strings:
                assert re.search(rf"(^|[\s\[,]){re.escape(opt)}\b", g), (s, opt)
        # At least one example, each one a command line the parser takes.
        examples = g.split("\nexamples:\n", 1)[1].splitlines()
        assert examples, s
        for ex in examples:
            argv = shlex.split(ex.strip())
            assert argv[:2] == ["stackmap", s], (s, ex)
            assert parser.parse_args(argv[1:]).sub == s, (s, ex)


def _frame_lines(out: str) -> list[str]:
    """The `stackmap bt` lines: from its header to the next command's output."""
    text = _ANSI.sub("", out)
    start = text.index('Thread 1 "wasmtime": 8 wasm frames in 1 activation')
    lines = []
    for line in text[start:].splitlines()[1:]:
        if not (line.startswith("#") or line.startswith("      ")):
            break
        lines.append(line)
    return lines


WIDTH = {"gdb": "set width {}", "lldb": "settings set term-width {}"}


@pytest.mark.parametrize("columns", [80, 200])
def test_bt_follows_the_terminal_width(dbg, columns):
    out = session(
        dbg,
        [WIDTH[dbg].format(columns)],
        [
            "stackmap bt",
            "echo ==WIDE==\\n" if dbg == "gdb" else "script print('==WIDE==')",
            "stackmap bt --wide",
        ],
        cli_program(),
    )
    narrow, wide = re.split(r"^==WIDE==$", out, flags=re.M)[-2:]
    lines = _frame_lines(narrow)
    frames = [line for line in lines if line.startswith("#")]
    assert len(frames) == CLI_DEPTH + 3, lines
    assert all(len(line) <= columns for line in lines), [len(x) for x in lines]
    # --wide: one line per frame whatever the width.
    wide_lines = _frame_lines(wide)
    assert len(wide_lines) == CLI_DEPTH + 3 and all(x.startswith("#") for x in wide_lines)
    assert max(len(x) for x in wide_lines) > 80
    # Each frame's lines: its wide line cut at the width, items whole, continuation
    # lines indented; a frame that fits stays on one line.
    groups: list[list[str]] = []
    for line in lines:
        if line.startswith("#"):
            groups.append([line])
        else:
            assert line.startswith("      ") and not line[6].isspace(), line
            groups[-1].append(line)
    for group, wide_line in zip(groups, wide_lines, strict=True):
        if len(wide_line) <= columns:
            assert group == [wide_line]
        else:
            assert len(group) > 1
            assert re.sub(r"\s+", " ", " ".join(group)) == re.sub(r"\s+", " ", wide_line)
    if columns == 80:
        cont = [line for line in lines if line.startswith("      ")]
        assert any(line.lstrip().startswith("SP+") for line in cont), lines
    else:
        assert any(len(g) == 1 for g in groups)  # frames that fit keep one line


def test_bt_n_says_how_many_it_shows(dbg):
    r = driver.run(dbg, ["stackmap bt -n 2 --wide"], cli_program())
    assert 'Thread 1 "wasmtime": showing 2 of 8 wasm frames in 1 activation' in r.output
    doc_r = driver.run(dbg, ["stackmap bt -n 2 --json"], cli_program())
    th = doc_r.docs[-1]["threads"][0]
    assert len(th["frames"]) == 2 and th["frames_total"] == 8


def test_context_after_each_stop(dbg):
    on = session(dbg, ["stackmap context on"], ["stackmap context off"], cli_program())
    summary = re.search(r"^── wasm roots: thread 1, 8 wasm frames, 10 live refs ─+$", on, re.M)
    assert summary, on[-3000:]
    joined = re.sub(r"\n {6}", " ", on)  # continuation lines, at LLDB's 80 columns
    rows = re.findall(
        r"^#(\d)\s+build\+0xb4 SP\+0=i31 (-?\d+), SP\+8=heap 0x[0-9a-f]+", joined, re.M
    )
    assert [(int(n), int(v)) for n, v in rows] == [(1, 7), (2, 10), (3, 13), (4, 16), (5, -7)]
    assert "stackmap context is off" in on
    off = session(dbg, [], ["stackmap bt --wide"], cli_program())
    assert "wasm roots" not in off and "8 wasm frames" in off  # off by default
