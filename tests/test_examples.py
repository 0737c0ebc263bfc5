"""The examples run as their READMEs say, and print what expected_output.txt shows.

Addresses differ from run to run, so every hex number of 9+ digits is
replaced by 0xADDR on both sides; everything else (functions, frame sizes,
slot offsets, i31 values, heap indices, trap names) must match exactly.
The same expected output holds for GDB and LLDB: both plugins render the
same report.
"""

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
    p = subprocess.run(["bash", str(d / EXAMPLES[example]), debugger], capture_output=True,
                       text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr[-2000:]
    expected = normalize((d / "expected_output.txt").read_text())
    got = normalize(p.stdout)
    if debugger == "lldb":
        # LLDB reports the stop in its own words; everything from the plugin is identical.
        expected = "\n".join(l for l in expected.splitlines() if "received signal" not in l)
        got = "\n".join(l for l in got.splitlines() if "received signal" not in l)
    assert got == expected


def test_examples_have_readmes():
    for example, script in EXAMPLES.items():
        readme = (REPO / "examples" / example / "README.md").read_text()
        assert f"bash examples/{example}/{script}" in readme
        assert "expected_output.txt" in readme or "Expected output" in readme
