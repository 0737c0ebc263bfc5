"""The wasm parser (hostile input), Wasmtime's GC layouts and type interning, no debugger."""

import random
import struct

import pytest
import wasmtime
from wasmtime_stackmaps import gctypes
from wasmtime_stackmaps.heapverify import verify
from wasmtime_stackmaps.heapview import HeapView
from wasmtime_stackmaps.typemap import read_type_map
from wasmtime_stackmaps.wasmparse import RefType, WasmParseError, parse_module

from tests.tooling import REPO

GRAPH = (REPO / "tests" / "programs" / "heap_graph.wat").read_text()


def wasm(text):
    return bytes(wasmtime.wat2wasm(text))


@pytest.fixture(scope="module")
def graph():
    return wasm(GRAPH.replace(";;STOP", "(unreachable)"))


def test_parse_graph(graph):
    m = parse_module(graph)
    names = {m.type_names[i]: i for i in m.type_names}
    assert set(names) >= {"node", "tree", "refs", "cyc", "all", "base", "derived", "bases"}
    node = m.types[names["node"]].composite
    assert node.kind == "struct" and node.fields[0].storage == "i32"
    assert node.fields[1].storage == RefType(True, names["node"]) and node.fields[1].mutable
    all_ = m.types[names["all"]].composite
    assert [f.storage for f in all_.fields][:7] == ["i8", "i16", "i32", "i64", "f32", "f64", "v128"]
    assert m.field_names[names["all"]][0] == "p8" and m.field_names[names["node"]][1] == "next"
    assert m.types[names["derived"]].supertypes == (names["base"],)
    assert not m.types[names["base"]].final and m.types[names["derived"]].final
    assert (names["base"], 2) in m.rec_groups
    assert m.imported_funcs == 0 and m.defined_funcs == 5 and m.func_names[2] == "hold"


def test_every_truncation_is_one_error(graph):
    for n in range(len(graph)):
        try:
            parse_module(graph[:n])
        except WasmParseError as e:
            assert "\n" not in str(e)


def test_mutations_never_crash(graph):
    rnd = random.Random(13)
    for _ in range(3000):
        data = bytearray(graph)
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(8, len(data))] = rnd.randrange(256)
        try:
            parse_module(bytes(data))
        except WasmParseError:
            pass


@pytest.mark.parametrize(
    "data, why",
    [
        (b"\0asm\x01\0\0\0\x01\xff\xff\xff\xff\x0f", "exceeds the data"),  # section size
        (b"\0asm\x01\0\0\0\x01\x05\xff\xff\xff\xff\x0f", "count"),  # 4G rec groups
        (b"\0asm\x0d\0\x01\0", "component"),
        (b"\x7fELF", "not a WebAssembly binary"),
    ],
)
def test_hostile_headers(data, why):
    with pytest.raises(WasmParseError, match=why):
        parse_module(data)


def test_struct_layouts_per_collector():
    """Offsets as Wasmtime's common_struct_layout computes them (header, natural alignment
    in declaration order, size rounded to the largest alignment; copying: 16, min 20)."""
    m = parse_module(wasm(GRAPH.replace(";;STOP", "")))
    idx = {v: k for k, v in m.type_names.items()}
    fields = m.types[idx["all"]].composite.fields
    drc = gctypes.header_layout("drc", 50)
    cop = gctypes.header_layout("copying", 49)
    assert gctypes.struct_layout(fields, drc) == (96, (24, 26, 28, 32, 40, 48, 64, 80, 84, 88))
    assert gctypes.struct_layout(fields, cop) == (80, (16, 18, 20, 24, 32, 40, 48, 64, 68, 72))
    empty = gctypes.struct_layout((), cop)
    assert empty.size == 32  # at least 20 (the forwarding ref), a multiple of 16
    assert (
        gctypes.header_layout("drc", 34).size == 16 and gctypes.header_layout("copying", 44) is None
    )
    arr = m.types[idx["refs"]].composite.fields[0]
    assert gctypes.array_layout(arr, drc) == (24, 28, 4)
    i64s = m.types[idx["all"]].composite.fields[3]
    assert gctypes.array_layout(i64s, cop) == (16, 24, 8)


def test_interning_dedups_rec_groups_and_adds_trampolines():
    m = parse_module(
        wasm(
            """(module
      (type $a (struct (field i32)))
      (type $f (func (param (ref $a))))
      (type $b (struct (field i32)))
      (type $g (func (param anyref)))
      (type $h (func (param (ref null $b)))))"""
        )
    )
    to_interned, count = gctypes.interned_map(m)
    # $b is $a again; $f gets a trampoline type (func (param anyref)) appended right after
    # it (2); $g is its own rec group (3) whose trampoline is that one; so is $h's (4).
    assert to_interned == [0, 1, 0, 3, 4]
    assert count == 5


def test_type_map_and_decoding_on_synthetic_heap():
    m = parse_module(wasm(GRAPH.replace(";;STOP", "")))
    to_interned, count = gctypes.interned_map(m)
    ids = [100 + i for i in range(count)]
    mem = {
        0x1000: b"core" + b"\0" * 36 + struct.pack("<Q", 0x2000),
        0x2000: struct.pack(f"<{count}I", *ids),
    }

    def read(addr, n):
        for base, data in mem.items():
            if base <= addr and addr + n <= base + len(data):
                return data[addr - base : addr - base + n]
        from wasmtime_stackmaps.errors import ReadError

        raise ReadError("unmapped", addr)

    tm, why = read_type_map(read, 0x1000, 50, m, "x.wasm")
    assert tm is not None, why
    node = {v: k for k, v in m.type_names.items()}["node"]
    assert tm.shared_to_wasm[100 + to_interned[node]] == node
    heap = bytearray(0x100)
    struct.pack_into("<IIQII", heap, 0x20, 0xB0000000, 100 + to_interned[node], 1, 0, 32)
    struct.pack_into("<iI", heap, 0x38, -7, 0x40)
    struct.pack_into("<IIQII", heap, 0x40, 0xB0000000, 100 + to_interned[node], 1, 0, 32)
    struct.pack_into("<iI", heap, 0x58, 8, 0)

    class T:
        little_endian = True

        def read_memory(self, a, n):
            return bytes(heap[a - 0x9000 : a - 0x9000 + n])

    v = HeapView(T(), 0x9000, len(heap), "drc", gctypes.header_layout("drc", 50), 0xFC000000, tm)
    o = v.describe(0x20, depth=1)
    assert o["type"] == {"module_index": node, "name": "node"}
    assert [f["value"] for f in o["fields"]] == [-7, "heap 0x40"]
    assert o["fields"][1]["object"]["fields"][0]["value"] == 8


# -- verify on a synthetic copying heap ----------------------------------------------------


def _synthetic(m, objects, length=0x400):
    """A copying-collector heap holding `objects`: {ref: (kind, shared, size, body bytes)}."""
    heap = bytearray(length)
    for r, (kind, shared, size, body) in objects.items():
        struct.pack_into("<IIII", heap, r, kind, shared, size, 0)
        heap[r + 16 : r + 16 + len(body)] = body

    class T:
        little_endian = True

        def read_memory(self, a, n):
            if a < 0x9000 or a + n > 0x9000 + len(heap):
                from wasmtime_stackmaps.errors import ReadError

                raise ReadError("unmapped", a)
            return bytes(heap[a - 0x9000 : a - 0x9000 + n])

    idx = {v: k for k, v in m.type_names.items()}
    tm = gctypes_typemap(m, {100 + i: i for i in range(len(m.types))})
    hl = gctypes.header_layout("copying", 49)
    return HeapView(T(), 0x9000, length, "copying", hl, 0xFC000000, tm), idx, heap


def gctypes_typemap(m, shared_to_wasm):
    from wasmtime_stackmaps.typemap import TypeMap

    return TypeMap(m, shared_to_wasm, "synthetic", None)


def test_verify_finds_each_kind_of_damage():
    from wasmtime_stackmaps import heapgraph

    m = parse_module(wasm(GRAPH.replace(";;STOP", "")))
    idx = {v: k for k, v in m.type_names.items()}
    S, A = 0xB0000000, 0xA8000000
    node, tree, refs = 100 + idx["node"], 100 + idx["tree"], 100 + idx["refs"]
    objs = {
        0x20: (S, node, 32, struct.pack("<iI", 1, 0x40)),  # -> a $tree: wrong type
        0x40: (S, tree, 32, struct.pack("<iII", 2, 0, 0)),
        0x60: (S | 1, node, 32, struct.pack("<I", 0x80)),  # forwarded outside a collection
        0x80: (A, refs, 32, struct.pack("<IIII", 9, 0x20, 0xA0, 0x3000)),  # length 9 > size
        0xA0: (0x0C000000, 0, 32, b""),  # not a GC header
        0xC0: (A, refs, 48, struct.pack("<IIII", 3, 0xA0, 0x20, 0x3000)),  # 0x3000: outside
    }
    v, _, _ = _synthetic(m, objs)
    roots = [heapgraph.Root(f"root{r:#x}", r) for r in (0x20, 0x60, 0x80, 0xC0)]
    res = verify(v, roots)
    probs = [(x["ref"], x["problem"]) for x in res["violations"]]
    text = "\n".join(f"{r:#x} {p}" for r, p in probs)
    assert any(r == 0x40 and "$tree, not a subtype of the field's $node" in p for r, p in probs), (
        text
    )
    assert any(r == 0x60 and "forwarding header" in p for r, p in probs), text
    assert any(r == 0x80 and "array length 9" in p for r, p in probs), text
    assert any(r == 0xA0 and "not a GC object header" in p for r, p in probs), text
    assert any(r == 0x3000 and "outside the heap" in p for r, p in probs), text
    bad = next(x for x in res["violations"] if x["ref"] == 0x40)
    assert bad["path"] == ["root0x20", "node.next"]


def test_walk_is_bounded_on_a_cycle_and_by_max_objects():
    from wasmtime_stackmaps import heapgraph

    m = parse_module(wasm(GRAPH.replace(";;STOP", "")))
    idx = {v: k for k, v in m.type_names.items()}
    node = 100 + idx["node"]
    objs = {
        0x20 * i: (0xB0000000, node, 32, struct.pack("<iI", i, 0x20 * (i % 8 + 1)))
        for i in range(1, 9)
    }
    v, _, _ = _synthetic(m, objs)
    w = heapgraph.walk(v, [heapgraph.Root("r", 0x20)])
    assert len(w.headers) == 8 and not w.truncated  # a ring of 8: each once
    w = heapgraph.walk(v, [heapgraph.Root("r", 0x20)], max_objects=3)
    assert len(w.headers) == 3 and w.truncated
    paths, _ = heapgraph.root_paths(v, [heapgraph.Root("r", 0x20)], 0x80)
    assert paths == [["r", "node.next", "node.next", "node.next"]]
