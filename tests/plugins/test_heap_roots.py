"""Roots beyond the stack: GC refs in globals and tables (heap_roots.wat).

The program keeps objects alive only through a global and two tables, and one
through $hold's stack slot. `heap --stat` counts every one of them, `gcroot`
shows the path the program built (`global 0 -> node.next`, `table 0[3] ->
node.next`), and `verify` reports a global planted wrong from the debugger
with the global as its path. On the CLI 49 (copying collector) and the
Python package 50 (DRC, with one imported function), GDB and LLDB, live and
core file, and the CLI with the null collector. Refs come from a first run's
`heap --json`; a second run of the same deterministic program (or core)
checks they are the same objects.
"""

import pytest

from tests.plugins import driver
from tests.plugins.common import CLI_FLAGS, PROGRAMS, PY
from tests.plugins.test_heap import write_u32_command
from tests.tooling import wasmtime_cli

SOURCE = PROGRAMS / "heap_roots.wat"
KINDS = ["cli", "py", "null"]  # CLI 49 (copying), Python 50 (DRC), CLI 49 -C collector=null
# val -> the path gcroot must print (root label, then the slots), "" = the stack slot
PATHS = {
    1: "",
    100: ["global 0"],
    101: ["global 0", "node.next"],
    200: ["table 0[3]"],
    201: ["table 0[3]", "node.next"],
    300: ["table 0[5]"],
    400: ["table 2[1]"],
}


def program(kind, d):
    src = SOURCE.read_text()
    if kind in ("cli", "null"):
        p = d / "roots_cli.wat"
        p.write_text(src.replace(";;STOP", "(unreachable)"))
        null = ["-C", "collector=null"] if kind == "null" else []
        return [wasmtime_cli(), "run", *CLI_FLAGS, *null, str(p)]
    p = d / "roots_py.wat"
    src = src.replace(";;IMPORT", '(import "host" "stop" (func $host_stop))')
    p.write_text(src.replace(";;STOP", "(call $host_stop)"))
    return [PY, str(PROGRAMS / "heap_host.py"), str(p)]


@pytest.fixture(scope="module")
def root_cores(tmp_path_factory):
    d = tmp_path_factory.mktemp("rootcores")
    out = {}
    for kind in KINDS:
        prog = program(kind, d)
        out[kind] = (driver.gcore(prog, str(d / f"{kind}.core")), prog)
    return out


def check(dbg, kind, prog=None, core=None):
    exe = prog[0] if core else None
    args = dict(core=core, executable=exe) if core else {}
    r = driver.run(dbg, ["stackmap heap --json"], None if core else prog, **args)
    assert len(r.docs) == 1, r.output[-4000:]
    (doc,) = r.docs
    assert doc["objects"] == len(PATHS) and not doc["truncated"], doc
    (stat,) = doc["stat"]
    assert stat["type"]["name"] == "node" and stat["count"] == len(PATHS)
    sets = doc["root_sets"]
    assert any("2 GC global(s), 2 GC table(s) with 12 element(s)" in s for s in sets["read"]), sets
    assert "globals, tables" not in sets["not_read"]
    labels = sorted(x["label"] for x in doc["root_list"] if "frame" not in x["label"])
    assert labels == ["global 0", "table 0[3]", "table 0[5]", "table 2[1]"], labels
    if kind != "py":  # the garbage node is still in the bump-allocated space, unreachable
        assert doc["unreachable"]["objects"] == 1
    refs = [o["ref"] for o in doc["object_list"]]
    cmds = [f"stackmap obj {r:#x} --json" for r in refs]
    cmds += [f"stackmap gcroot {r:#x} --json" for r in refs]
    if not core:  # a non-object planted in global 0: verify names the global
        cmds += [_plant(dbg, "global 0"), "stackmap verify --json"]
    r2 = driver.run(dbg, cmds, None if core else prog, **args)
    n = len(refs)
    assert len(r2.docs) == 2 * n + (not core), r2.output[-4000:]
    vals = [
        next(f["value"] for f in d["object"]["fields"] if f["name"] == "val") for d in r2.docs[:n]
    ]
    assert sorted(vals) == sorted(PATHS)
    for val, ref, g in zip(vals, refs, r2.docs[n : 2 * n], strict=True):
        want = PATHS[val]
        assert g["ref"] == ref and g["paths"], (val, g)
        if want:
            assert g["paths"][0] == want, (val, g["paths"])
        else:
            assert "frame #" in g["paths"][0][0] and len(g["paths"][0]) == 1, g["paths"]
    if not core:
        bad = [v for v in r2.docs[-1]["violations"] if v["path"] == ["global 0"]]
        assert bad == [bad[0]] and bad[0]["ref"] == 12, r2.docs[-1]["violations"]


def _plant(dbg, label):
    """Write 12 (no object: misaligned) into the root `label`, at the address this run's
    `heap --json` gives (globals and tables move between runs of the Python host)."""
    pick = f'[x["address"] for x in d["root_list"] if x["label"] == {label!r}][0]'
    return write_u32_command(dbg, "stackmap heap --json", pick, 12)


@pytest.mark.parametrize("kind", KINDS)
def test_live_roots(dbg, kind, tmp_path):
    check(dbg, kind, prog=program(kind, tmp_path))


@pytest.mark.parametrize("kind", KINDS)
def test_core_roots(dbg, kind, root_cores):
    core, prog = root_cores[kind]
    check(dbg, kind, prog=prog, core=core)
