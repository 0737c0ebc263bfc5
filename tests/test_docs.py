"""The docs' command lines run as printed: every ```sh block of README.md and examples/*/README.md.

Blocks run in order, one file at a time, with `bash -euo pipefail` from the repo
root after the README's set-up command (`bash dev.sh setup`, which `bash dev.sh
test` has just run), with HOME a fresh temporary directory: the README's install
goes there and `gdbinit --install` writes that HOME's ~/.gdbinit. Blocks of
session transcripts and output are ```text. A block marked ```sh no-run is shown
but not run; the docs say why next to it (`bash dev.sh test` would run this suite
again; `bash dev.sh demo` is tests/test_examples.py's).
"""

import os
import re
import subprocess

import pytest

from tests.tooling import REPO

DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in REPO.glob("examples/*/README.md"))]
_BLOCK = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
TIMEOUT = 600


def blocks(doc: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of `doc`."""
    return [(m.group(1).strip(), m.group(2)) for m in _BLOCK.finditer((REPO / doc).read_text())]


def runnable(doc: str) -> list[str]:
    return [
        body
        for info, body in blocks(doc)
        if info.split(" ")[0] == "sh" and "no-run" not in info.split()[1:]
    ]


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_line_runs_as_printed(doc, tmp_path):
    scripts = runnable(doc)
    assert scripts, f"{doc} has no runnable ```sh block"
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), NO_COLOR="1")
    env.pop("PYTHONPATH", None)
    for script in scripts:
        p = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert p.returncode == 0, (
            f"{doc}: this block exited {p.returncode}:\n{script}\n"
            f"--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}"
        )


def test_no_shell_block_is_left_unmarked():
    """A command block is either run (```sh) or says why not (```sh no-run); output is ```text."""
    for doc in DOCS:
        for info, body in blocks(doc):
            lang = info.split(" ")[0]
            assert lang in ("sh", "text", "json", "python", ""), (doc, info)
            assert lang != "", f"{doc}: a block without a language:\n{body[:200]}"


def test_readme_starts_with_install_then_two_commands_then_a_tour():
    text = (REPO / "README.md").read_text()
    heads = re.findall(r"^## (.+)$", text, re.M)
    assert heads[:3] == ["Install", "Two commands", "A 10-line tour"], heads[:3]
    install = text.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert "pip install" in install and "gdbinit --install" in install
    assert re.search(r"^source /\S+/wasmtime_stackmaps/gdb_plugin/stackmaps\.py$", install, re.M)
    tour = text.split("## A 10-line tour", 1)[1].split("\n## ", 1)[0]
    (session,) = [b for i, b in _BLOCK.findall(tour) if i.strip() == "text"]
    assert len(session.strip().splitlines()) <= 10
