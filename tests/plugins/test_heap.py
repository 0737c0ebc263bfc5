"""Typed GC objects, the live heap, gcroot and verify on a known graph (heap_graph.wat).

The program builds a linked list, a binary tree, an array of refs, a cycle, a
struct with every field type and a subtype held in its supertype's array, and
holds them in one frame ($hold) across a call that stops the process. Every
check compares with what the program stored. Each scenario runs under GDB and
LLDB (`dbg`), on the CLI 49 (copying collector; the module found from the
process's command line) and the Python package 50 (DRC), live and from core
files (there the module is given with `stackmap module FILE`).

Refs (heap indices) are read from a first debugger run's `bt --json`; a
second run of the same deterministic program (or core) uses them: the
allocators are bump/free-list allocators fed the same sequence, and the
second run checks that the roots are the same before it uses them.
"""

import math
import os
import shutil

import pytest

from tests.plugins import driver
from tests.plugins.common import CLI_FLAGS, PROGRAMS, PY
from tests.tooling import wasmtime_cli

GRAPH = PROGRAMS / "heap_graph.wat"
COUNTS = {"tree": 7, "node": 6, "all": 1, "cyc": 2, "refs": 1, "derived": 1, "bases": 1}
ROOT_TYPES = {"bases", "all", "cyc", "refs", "tree", "node"}


def cli_wat(tmp_path):
    p = tmp_path / "graph_cli.wat"
    p.write_text(GRAPH.read_text().replace(";;STOP", "(unreachable)"))
    return p


def py_wat(tmp_path):
    p = tmp_path / "graph_py.wat"
    src = GRAPH.read_text().replace(";;IMPORT", '(import "host" "stop" (func $host_stop))')
    p.write_text(src.replace(";;STOP", "(call $host_stop)"))
    return p


def program(kind, wat):
    if kind == "cli":
        return [wasmtime_cli(), "run", *CLI_FLAGS, str(wat)]
    if kind == "null":  # the CLI with the null collector (the Python package cannot pick one)
        return [wasmtime_cli(), "run", *CLI_FLAGS, "-C", "collector=null", str(wat)]
    return [PY, str(PROGRAMS / "heap_host.py"), str(wat)]


COLLECTOR = {"cli": "copying", "py": "drc", "null": "null"}
KINDS = list(COLLECTOR)


def hold_roots(doc):
    """{type name: (slot, object)} of the $hold frame's six roots."""
    (hold,) = [
        f for th in doc["threads"] for f in th["frames"] if (f["function"] or "").endswith("hold")
    ]
    out = {}
    for s in hold["slots"]:
        obj = s.get("object")
        assert obj and obj.get("type"), (s, hold.get("heap_note"))
        out[obj["type"]["name"]] = (s, obj)
    assert set(out) == ROOT_TYPES, out.keys()
    return hold, out


def fields(obj):
    return {f["name"]: f for f in obj["fields"]}


def check_all_struct(obj):
    f = fields(obj)
    assert [x["name"] for x in obj["fields"]] == [
        "p8", "p16", "i32", "i64", "f32", "f64", "v128", "ref", "i31", "any"
    ]  # fmt: skip
    assert f["p8"]["value"] == -5 and f["p8"]["unsigned"] == 0xFB and f["p8"]["type"] == "mut i8"
    assert f["p16"]["unsigned"] == 0xBEEF and f["p16"]["type"] == "mut i16"
    assert f["i32"]["value"] == -123456
    assert f["i64"]["unsigned"] == 0x8000000000000001
    assert f["f32"]["value"] == 1.5
    assert math.isclose(f["f64"]["value"], -2.5e300) and f["f64"]["bits"] >> 63 == 1
    assert (
        bytes.fromhex(f["v128"]["value"])
        == (1).to_bytes(4, "little")
        + (2).to_bytes(4, "little")
        + (3).to_bytes(4, "little")
        + b"\xff" * 4
    )
    assert f["ref"]["type"] == "(ref null $node)" and f["ref"]["ref_kind"] == "heap"
    assert f["i31"]["value"] == "i31 77"
    assert f["any"]["ref_kind"] == "heap"


def check_bt(doc, collector):
    hold, roots = hold_roots(doc)
    assert all(o["collector"] == collector for _, o in roots.values())
    check_all_struct(roots["all"][1])
    head = fields(roots["node"][1])
    assert head["val"]["value"] == 10 and head["next"]["type"] == "mut (ref null $node)"
    assert fields(roots["tree"][1])["key"]["value"] == 4
    assert fields(roots["cyc"][1])["id"]["value"] == 1
    assert roots["refs"][1]["element_type"] == "mut (ref null $node)"
    return hold, roots


def check_heap_stat(doc):
    by_name = {s["type"]["name"]: s for s in doc["stat"] if s["type"]}
    assert {k: v["count"] for k, v in by_name.items()} == COUNTS
    assert doc["objects"] == sum(COUNTS.values()) and not doc["truncated"]
    assert doc["bytes"] == sum(s["bytes"] for s in doc["stat"])
    # which root sets were read: the stacks, and the instance's globals and tables (none here)
    assert any("0 GC global(s), 0 GC table(s)" in s for s in doc["root_sets"]["read"]), doc
    assert doc["notes"][0].startswith("root sets read: wasm stacks")


def first_run(dbg, prog=None, core=None, exe=None, pre=()):
    cmds = [*pre, "stackmap bt", "stackmap bt --json", "stackmap heap --stat --json"]
    cmds.append("stackmap verify --json")
    r = driver.run(dbg, cmds, prog, core=core, executable=exe)
    assert len(r.docs) == 3, r.output[-4000:]
    return r


def second_run(dbg, roots, prog=None, core=None, exe=None, pre=(), plant=None):
    """obj of every root (deep), gcroot of the list's tail; optionally plant a bad ref."""
    refs = {name: s["value"] for name, (s, _) in roots.items()}
    cmds = [*pre, "stackmap bt --json"]
    cmds += [f"stackmap obj {refs[n]:#x} --depth 8 --elements 8 --json" for n in sorted(refs)]
    tail = fields(roots["all"][1])["ref"]["raw"]
    cmds.append(f"stackmap gcroot {tail:#x} --json")
    if plant:
        cmds += [plant, "stackmap verify --json"]
    r = driver.run(dbg, cmds, prog, core=core, executable=exe)
    assert len(r.docs) == 2 + len(refs) + bool(plant), r.output[-4000:]
    _, again = hold_roots(r.docs[0])
    assert {n: s["value"] for n, (s, _) in again.items()} == refs  # same roots as run 1
    objs = dict(zip(sorted(refs), (d["object"] for d in r.docs[1 : 1 + len(refs)]), strict=True))
    return r, objs, tail


def chain(obj, name):
    out = []
    while obj is not None:
        f = fields(obj)
        out.append(f["val"]["value"] if "val" in f else f["id"]["value"])
        obj = f[name].get("object")
        if len(out) > 10:
            break
    return out


def inorder(obj):
    if obj is None:
        return []
    f = fields(obj)
    return (
        inorder(f["left"].get("object")) + [f["key"]["value"]] + inorder(f["right"].get("object"))
    )


def check_objects(objs, tail, gcroot, hold):
    assert chain(objs["node"], "next") == [10, 20, 30, 40, 50]
    assert fields(objs["node"])["next"]["object"]["type"]["name"] == "node"
    assert inorder(objs["tree"]) == [1, 2, 3, 4, 5, 6, 7]
    arr = objs["refs"]
    assert arr["length"] == 4 and arr["type"]["name"] == "refs"
    el = arr["elements"]
    assert el[0]["raw"] == objs["node"]["ref"] and el[1]["value"] == "null"
    assert fields(el[2]["object"])["val"]["value"] == 99 and el[3]["raw"] == tail
    c1 = objs["cyc"]
    c2 = fields(c1)["other"]["object"]
    assert fields(c2)["id"]["value"] == 2 and fields(c2)["other"]["raw"] == c1["ref"]
    check_all_struct(objs["all"])
    (d,) = objs["bases"]["elements"]
    assert d["object"]["type"]["name"] == "derived"
    assert [f["value"] for f in d["object"]["fields"]] == [7, -1]
    # gcroot: shortest first; the list path is the one the program built.
    paths = gcroot["paths"]
    slot = {n: s for n, s in ((o["type"]["name"], None) for o in objs.values())}
    assert slot and len(paths) == 3, paths
    assert [len(p) for p in paths] == sorted(len(p) for p in paths)
    lst = [p for p in paths if p[-1] == "node.next"]
    assert lst and lst[0][1:] == ["node.next"] * 4, paths
    assert lst[0][0].endswith(f"frame #{hold['level']} SP+{_slot_of(hold, objs['node']['ref'])}")
    assert ["all.ref"] in [p[1:] for p in paths] and ["refs[3]"] in [p[1:] for p in paths]


def _slot_of(frame, ref):
    return next(s["offset"] for s in frame["slots"] if s["value"] == ref)


def plant_command(dbg, heap_index, value):
    """Write the u32 `value` at `heap_index` with the debugger's own memory-write command.
    The heap's base moves between runs (compiler threads map memory in a racy order), so
    the one-liner asks the plugin for this run's base first."""
    base = 'd["heap"]["base"]'
    return write_u32_command(dbg, "stackmap heap --stat --json", f"{base} + {heap_index}", value)


def write_u32_command(dbg, get, address_expr, value):
    """A debugger one-liner: run the plugin's `get` (a --json command), evaluate the Python
    `address_expr` over its document `d`, write the u32 `value` there with the debugger's
    own memory-write command."""
    if dbg == "gdb":
        return (
            f"python import json; d = json.loads(gdb.execute({get!r}, to_string=True)); "
            f'gdb.execute("set {{int}}%#x = %#x" % ({address_expr}, {value}))'
        )
    return (
        "script import json, lldb; r = lldb.SBCommandReturnObject(); "
        f"lldb.debugger.GetCommandInterpreter().HandleCommand({get!r}, r); "
        'd = json.loads(r.GetOutput()[r.GetOutput().index("{"):]); '
        f'lldb.debugger.HandleCommand("memory write -s 4 %#x %#x" % ({address_expr}, {value}))'
    )


@pytest.mark.parametrize("kind", KINDS)
def test_live_graph(dbg, kind, tmp_path):
    """Every field and name; heap --stat counts; verify clean; gcroot of the tail; then a
    ref planted wrong from the debugger (head.next := the tree root) is reported."""
    prog = program(kind, py_wat(tmp_path) if kind == "py" else cli_wat(tmp_path))
    r = first_run(dbg, prog)
    bt, stat, ver = r.docs
    hold, roots = check_bt(bt, COLLECTOR[kind])
    check_heap_stat(stat)
    un = stat["unreachable"]
    if kind != "py":  # the bump-allocated space, walked linearly: the 2 garbage $nodes
        size = {"cli": 32, "null": 16}[kind]  # copying: 16-byte header, sizes rounded to 16
        assert un["walked"] and un["objects"] == 2 and un["bytes"] == 2 * size, un
    else:
        assert not un["walked"] and "copying" in un["note"]
    assert ver["violations"] == [] and ver["objects"] == sum(COUNTS.values()), ver
    assert "next=heap 0x" in r.output and "node{val=10, next=heap" in r.output  # bt text brief
    head = roots["node"][1]
    nxt = fields(head)["next"]
    tree = roots["tree"][0]["value"]
    plant = plant_command(dbg, nxt["offset"], tree)
    r2, objs, tail = second_run(dbg, roots, prog, plant=plant)
    check_objects(objs, tail, r2.docs[1 + len(roots)], hold)
    (bad,) = r2.docs[-1]["violations"]
    assert bad["ref"] == tree and "$tree" in bad["problem"] and "$node" in bad["problem"], bad
    assert bad["path"][1:] == ["node.next"] and f"SP+{roots['node'][0]['offset']}" in bad["path"][0]


@pytest.fixture(scope="module")
def graph_cores(tmp_path_factory):
    d = tmp_path_factory.mktemp("heapcores")
    out = {}
    for kind in KINDS:
        wat = py_wat(d) if kind == "py" else cli_wat(d)
        prog = program(kind, wat)
        out[kind] = (driver.gcore(prog, str(d / f"{kind}.core")), prog, wat)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_core_graph(dbg, kind, graph_cores, tmp_path):
    """From a core file: the module given with `stackmap module`; the same graph."""
    core, prog, wat = graph_cores[kind]
    # A copy elsewhere: the core's (truncated) command line must not be what finds it.
    given = tmp_path / "given.wat"
    shutil.copy(wat, given)
    pre = [f"stackmap module {given}"]
    r = first_run(dbg, core=core, exe=prog[0], pre=pre)
    bt, stat, ver = r.docs
    hold, roots = check_bt(bt, COLLECTOR[kind])
    check_heap_stat(stat)
    assert ver["violations"] == []
    r2, objs, tail = second_run(dbg, roots, core=core, exe=prog[0], pre=pre)
    check_objects(objs, tail, r2.docs[1 + len(roots)], hold)


def test_no_module(dbg, graph_cores, tmp_path):
    """No module anywhere (the core's command line names none that exists): raw header and
    payload as before, and a one-line reason."""
    core, prog, wat = graph_cores["py"]
    moved = tmp_path / "elsewhere.wat"
    shutil.copy(wat, moved)
    os.unlink(wat)
    try:
        r = driver.run(dbg, ["stackmap bt --json", "stackmap bt"], core=core, executable=prog[0])
    finally:
        shutil.copy(moved, wat)
    (hold,) = [
        f for f in r.docs[0]["threads"][0]["frames"] if (f["function"] or "").endswith("hold")
    ]
    for s in hold["slots"]:
        obj = s["object"]
        assert obj["type"] is None and obj["payload"] and obj["header"]
        assert "no module" in obj["type_note"] and "\n" not in obj["type_note"], obj
    assert "node{" not in r.output


def test_core_module_from_command_line(dbg, graph_cores):
    """A core's pr_psargs keeps 80 bytes; the full command line (and the .wat on it) is
    read back from the argument strings on the core's initial stack."""
    core, prog, wat = graph_cores["cli"]
    assert len(" ".join(prog)) > 80  # psargs alone would not name the file
    r = driver.run(dbg, ["stackmap obj 0x10 --json"], core=core, executable=prog[0])
    doc = r.docs[-1] if r.docs else None
    assert doc, r.output[-3000:]
    assert any(str(wat) in n and "command line" in n for n in doc["notes"]), doc["notes"]
    assert doc["object"]["type"]["name"] == "node"  # garbage allocated first, still there
