"""The examples run as their READMEs say, and print what expected_output.txt shows.

Addresses differ from run to run, so every hex number of 9+ digits is
replaced by 0xADDR on both sides; everything else (functions, frame sizes,
slot offsets, i31 values, heap indices, trap names) must match exactly.
The same expected output holds for GDB and LLDB: both plugins render the
same report.
"""

import os
import re
import subprocess

import pytest

from tests.tooling import REPO

EXAMPLES = {
    "01-cli-trap": "run.sh",
    "02-python-embedder": "run.sh",
    "03-core-triage": "triage.sh",
}


def normalize(text: str) -> str:
    return re.sub(r"0x[0-9a-f]{9,}", "0xADDR", text).strip()


@pytest.mark.parametrize("debugger", ["gdb", "lldb"])
@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_example_output(example, debugger):
    d = REPO / "examples" / example
    p = subprocess.run(
        ["bash", str(d / EXAMPLES[example]), debugger],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    expected = normalize((d / "expected_output.txt").read_text())
    got = normalize(p.stdout)
    if debugger == "lldb":
        # LLDB reports the stop in its own words; everything from the plugin is identical.
        expected = "\n".join(x for x in expected.splitlines() if "received signal" not in x)
        got = "\n".join(x for x in got.splitlines() if "received signal" not in x)
    assert got == expected


def test_examples_have_readmes():
    for example, script in EXAMPLES.items():
        readme = (REPO / "examples" / example / "README.md").read_text()
        assert f"bash examples/{example}/{script}" in readme
        assert "expected_output.txt" in readme or "Expected output" in readme


def test_demo_shows_stack_maps_offline_in_gdb_and_in_lldb(tmp_path):
    """`bash dev.sh demo` ends in examples/demo.sh: all three parts must show the roots."""
    p = subprocess.run(
        ["bash", str(REPO / "examples" / "demo.sh")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    out = p.stdout
    offline, gdb_part = out.split("### 2.")[0], out.split("### 2.")[1].split("### 3.")[0]
    lldb_part = out.split("### 3.")[1]
    assert re.search(
        r"0x[0-9a-f]+\s+48\s+wasm\[0\]::function\[0\]::build\+0x[0-9a-f]+: \[0, 8\]", offline
    ), offline
    for part in (gdb_part, lldb_part):
        assert 'Thread 1 "wasmtime": 8 wasm frames in 1 activation' in part, part[-2000:]
        # At 80 columns a frame's slots go on indented continuation lines.
        assert "SP+0=i31 7, SP+8=heap" in re.sub(r"\n {6}", " ", part)
        # The debugger's own whole bt, its wasm frames named.
        assert re.search(
            r"^#7\s+0x[0-9a-f]+ in wasm\[0\]::array_to_wasm_trampoline\[1\]", part, re.M
        ) or re.search(
            r"frame #7: 0x[0-9a-f]+ \S+`wasm\[0\]::array_to_wasm_trampoline\[1\]", part
        ), part[:3000]
    lines = out.splitlines()
    assert sum(len(line) > 80 for line in lines if not _debugger_own(line)) == 0, [
        line for line in lines if len(line) > 80 and not _debugger_own(line)
    ]
    # The command lines it prints (`$ ...`, continued after a backslash) run as printed.
    printed = printed_commands(out)
    assert len(printed) == 2, printed
    for command in printed:
        _runs_and_shows_the_roots(command, tmp_path)


def printed_commands(out: str) -> list[str]:
    """The shell command lines in a script's output: from `$ ` while lines end in `\\`."""
    commands, current = [], None
    for line in out.splitlines():
        if current is not None:
            current.append(line)
        elif line.startswith("$ "):
            current = [line[2:]]
        if current is not None and not line.endswith("\\"):
            commands.append("\n".join(current))
            current = None
    return commands


def _runs_and_shows_the_roots(command: str, home) -> None:
    # A HOME of its own: no ~/.gdbinit or ~/.lldbinit of the machine's user.
    env = dict(os.environ, NO_COLOR="1", HOME=str(home))
    env.pop("PYTHONPATH", None)
    p = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    said = f"{command}\n--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}"
    assert p.returncode == 0, said
    assert 'Thread 1 "wasmtime": 8 wasm frames in 1 activation' in p.stdout, said


def _debugger_own(line: str) -> bool:
    """A line the debugger prints itself (a host frame's long Rust name, LLDB's paths)."""
    return bool(
        re.match(r"#\d+\s+0x[0-9a-f]+ in ", line)
        or re.match(r"\s*\*?\s*frame #\d+: ", line)
        or line.startswith(("Current executable set to", "Process ", "Backtrace stopped:"))
        or "site-packages/wasmtime_cli" in line
    )
