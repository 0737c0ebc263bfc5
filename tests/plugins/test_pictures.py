"""`stackmap heap --dot` and `stackmap gcroot REF --dot/--svg` on heap_graph.wat, under GDB
and LLDB: Graphviz parses the output, and it names the program's types and fields, one
record per reachable object, the path to REF in red."""

import os
import re
import shutil
import subprocess

import pytest

from tests.plugins import driver
from tests.plugins.common import CLI_FLAGS, PROGRAMS
from tests.tooling import wasmtime_cli

GRAPH = PROGRAMS / "heap_graph.wat"
REACHABLE = 19  # 7 tree + 6 node + all + 2 cyc + refs + derived + bases (heap_graph.wat)
TYPES = ("tree", "node", "all", "cyc", "refs", "derived", "bases")
FIELDS = ("val", "next", "key", "left", "right", "id", "other", "p8", "f64", "tag", "extra")


def graphviz_ok(text: str) -> None:
    if shutil.which("dot") is None:
        if os.environ.get("CI"):
            pytest.fail("Graphviz is not installed on the CI machine: the set-up is broken")
        # Structural check only (other people's machines without Graphviz).
        assert text.startswith("digraph heap {") and text.rstrip().endswith("}")
        return
    p = subprocess.run(["dot", "-Tsvg"], input=text, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "<svg" in p.stdout, p.stderr


def test_heap_and_gcroot_pictures(dbg, tmp_path):
    wat = tmp_path / "graph_cli.wat"
    wat.write_text(GRAPH.read_text().replace(";;STOP", "(unreachable)"))
    prog = [wasmtime_cli(), "run", *CLI_FLAGS, str(wat)]
    # The list's second node: what the root `node` (the list head) points at.
    r = driver.run(dbg, ["stackmap bt --json"], prog)
    (hold,) = [
        f for t in r.docs[-1]["threads"] for f in t["frames"] if f["function"].endswith("hold")
    ]
    (slot,) = [s for s in hold["slots"] if s["object"]["type"]["name"] == "node"]
    head = slot["value"]
    ref = next(f["raw"] for f in slot["object"]["fields"] if f["name"] == "next")
    heap_dot, root_dot, root_svg = (tmp_path / n for n in ("heap.dot", "root.dot", "root.svg"))
    cmds = [
        f"stackmap heap --dot {heap_dot}",
        f"stackmap gcroot heap {ref:#x} --dot {root_dot} --svg {root_svg}",
    ]
    r = driver.run(dbg, cmds, prog)
    assert f"graph written to {heap_dot}" in r.output, r.output[-3000:]
    text = heap_dot.read_text()
    graphviz_ok(text)
    titles = re.findall(r'^  o[0-9a-f]+ \[shape=record, label="([^@]+?)(?:\[\d+\])? @', text, re.M)
    assert len(titles) == REACHABLE, titles
    assert set(titles) == set(TYPES), titles
    for field in FIELDS:
        assert re.search(rf"> {field}: ", text), field
    # One cluster, the $hold frame with its six roots.
    assert text.count("subgraph cluster_") == 1 and re.search(
        r'label="thread \d+ frame #\d+ \S+hold"', text
    )
    assert len(re.findall(r"^    r\d+ \[shape=box", text, re.M)) == 6
    # gcroot: root -> head -> REF, drawn in red; REF filled.
    text = root_dot.read_text()
    graphviz_ok(text)
    assert len(re.findall(r"\[color=red, penwidth=2\];$", text, re.M)) == 2, text
    assert re.search(rf"^  o{ref:x} \[.*fillcolor", text, re.M)
    assert re.search(rf"^  r\d+ -> o{head:x} \[color=red", text, re.M), text
    assert f"o{head:x}:f1 -> o{ref:x} [color=red" in text, text
    if shutil.which("dot"):
        assert root_svg.read_text().lstrip().startswith(("<?xml", "<svg"))
