"""The docs' command lines run as printed: every ```sh block of README.md and examples/*/README.md.

Blocks run in order, one file at a time, with `bash -euo pipefail` from the repo
root after the README's set-up command (`bash dev.sh setup`, which `bash dev.sh
test` has just run), with HOME a fresh temporary directory: the README's install
goes there and `gdbinit --install` writes that HOME's ~/.gdbinit. Output is
```text. A block marked ```sh no-run is shown but not run; the docs say why next to
it (`bash dev.sh test` would run this suite again; `bash dev.sh demo` is
tests/test_examples.py's).

A debugger session shown in a ```text block (lines at a `(gdb) ` or `(lldb) ` prompt)
starts with the `$ ` line that starts the debugger, and runs too, in the same order:
GDB reads the typed lines on its standard input; LLDB, whose commands do not wait for a
stop when they come from a pipe, gets them as a batch (`-b -o`, and `-k` for those
after a stop on a signal), which waits as a user does. What follows two spaces and `#`
on a prompt line is a comment, not typed.
"""

import os
import re
import shlex
import subprocess

import pytest

from tests.tooling import REPO

DOCS = [
    "README.md",
    "lldb_plugin/README.md",
    *sorted(str(p.relative_to(REPO)) for p in REPO.glob("examples/*/README.md")),
]
_BLOCK = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.M | re.S)
TIMEOUT = 600


def blocks(doc: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced block of `doc`."""
    return [(m.group(1).strip(), m.group(2)) for m in _BLOCK.finditer((REPO / doc).read_text())]


_PROMPT = re.compile(r"^\((gdb|lldb)\) (.*?)(?:\s{2,}#.*)?$")
# What a failed debugger command prints (the plugin's errors start with "stackmap: ").
_FAILED = re.compile(
    r"^(?:\((?:gdb|lldb)\) )?(?:stackmap: |error: |Undefined command|Traceback|Python Exception)",
    re.M,
)


def session(body: str) -> tuple[str, str, list[str]] | None:
    """(debugger, the `$ ` line that starts it, the commands typed) of a debugger session
    shown in a ```text block, or None when the block has no prompt line."""
    lines = body.splitlines()
    typed = [m for m in map(_PROMPT.match, lines) if m]
    if not typed:
        return None
    assert lines[0].startswith("$ "), f"a session without the `$ ` line that starts it:\n{body}"
    (debugger,) = {m.group(1) for m in typed}
    return debugger, lines[0][2:], [m.group(2) for m in typed]


def steps(doc: str) -> list[tuple[str, str | None, bool]]:
    """(bash script, its standard input, whether it is a debugger session) for every
    runnable block of `doc`, in order."""
    out: list[tuple[str, str | None, bool]] = []
    for info, body in blocks(doc):
        words = info.split()
        if words[:1] == ["sh"] and "no-run" not in words:
            out.append((body, None, False))
        elif words[:1] == ["text"] and (s := session(body)) is not None:
            debugger, start, typed = s
            if debugger == "gdb":
                out.append((start, "".join(c + "\n" for c in typed), True))
            else:
                launched = next(
                    (i for i, c in enumerate(typed) if c.split()[:2] == ["process", "launch"]),
                    len(typed),
                )
                opts = [x for c in typed for x in ("-o", c)]
                opts += [x for c in typed[launched + 1 :] for x in ("-k", c)]
                prog, rest = start.split(" ", 1)
                out.append((f"{prog} -b {shlex.join(opts)} {rest}", None, True))
    return out


@pytest.mark.parametrize("doc", DOCS)
def test_every_command_line_runs_as_printed(doc, tmp_path):
    todo = steps(doc)
    assert todo, f"{doc} has no runnable ```sh block"
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ, HOME=str(home), NO_COLOR="1")
    env.pop("PYTHONPATH", None)
    for script, typed, is_session in todo:
        p = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            **({"input": typed} if typed is not None else {"stdin": subprocess.DEVNULL}),
        )
        said = f"{doc}: this block exited {p.returncode}:\n{script}\n{typed or ''}\n"
        said += f"--- stdout\n{p.stdout[-3000:]}\n--- stderr\n{p.stderr[-3000:]}"
        assert p.returncode == 0, said
        if is_session:
            # A debugger session: every command it was given ran without an error.
            assert not _FAILED.search(p.stdout + p.stderr), said


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
