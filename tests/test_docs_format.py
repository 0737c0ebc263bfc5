"""docs/format.md agrees with the code's versioned tables, and every citation of it resolves.

The tables in the document were read from Wasmtime's source; the code's tables must say
the same thing, row by row, so that neither can change without the other.
"""

import re
from pathlib import Path

import pytest
from wasmtime_stackmaps import abi
from wasmtime_stackmaps.gcheap import layout_for
from wasmtime_stackmaps.runtime import store_layout_for

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "format.md").read_text()
SECTIONS = {int(n) for n in re.findall(r"^## (\d+)\. ", DOC, re.M)}
LAST_CHECKED = 48  # the newest Wasmtime tag the document was checked at


def section(n: int) -> str:
    m = re.search(rf"^## {n}\. .*?(?=^## \d+\. |\Z)", DOC, re.M | re.S)
    assert m, f"docs/format.md has no section {n}"
    return m.group(0)


def subsection(title: str) -> str:
    m = re.search(rf"^### {re.escape(title)}.*?(?=^##|\Z)", DOC, re.M | re.S)
    assert m, f"docs/format.md has no subsection {title!r}"
    return m.group(0)


def versions(cell: str) -> range:
    """'33–36' / '38–39' / '40' / '43–48, main' / '47–48, main' -> majors."""
    m = re.match(r"(\d+)(?:[–-](\d+))?", cell.strip())
    assert m, cell
    lo = int(m.group(1))
    return range(lo, int(m.group(2) or lo) + 1)


def rows(text: str, first_cell: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if re.match(rf"\|\s*{first_cell}", line)
    ]


def test_store_context_table_matches_runtime():
    table = rows(subsection("VMStoreContext"), r"\d\d(?:[–-]\d\d)?(?:, main)? \|")
    assert len(table) >= 5
    covered = set()
    for cells in table:
        offs = [int(x) for x in re.findall(r"\+(\d+)", " ".join(cells[2:5]))]
        for v in versions(cells[0]):
            row = store_layout_for(v)
            assert (row.exit_fp, row.exit_pc, row.entry_fp) == tuple(offs), v
            covered.add(v)
            heap = re.findall(r"\+(\d+)", cells[1])
            if heap:  # 33 on: gc_heap in the store context
                assert layout_for(v)[0].heap_offset == int(heap[0]), v
    assert covered == set(range(32, LAST_CHECKED + 1))


def test_trap_table_matches_abi():
    table = rows(section(5), r"\d\d(?:[–-]\d\d)?(?:, main)? \| \d+ \|")
    covered = set()
    for cells in table:
        for v in versions(cells[0]):
            assert len(abi.trap_names(v)) == int(cells[1]), v
            covered.add(v)
    assert covered == set(range(32, LAST_CHECKED + 1))


def test_kind_table_matches_abi():
    text = section(7)
    for name, value in ((v, k) for k, v in abi.GC_KINDS.items()):
        cells = rows(text, name + r" \|")
        assert cells, name
        assert f"`{value:#010X}`".replace("0X", "0x") in cells[0], name
    masks = rows(text, r"mask \|")[0]
    assert "`0xF8000000`" in masks[1] and "`0xFC000000`" in masks[2]
    assert layout_for(35)[0].kind_mask == 0xF8000000
    assert layout_for(36)[0].kind_mask == 0xFC000000


CITATION = re.compile(r"docs/format\.md((?:\s*§\s*\d+(?:\s*[-–,]\s*§?\s*\d+)*)?)")


def cited_files():
    for top in ("core", "gdb_plugin", "lldb_plugin", "tests", "benchmarks"):
        for path in (ROOT / top).rglob("*.py"):
            if "node_modules" not in path.parts and ".venvs" not in path.parts:
                yield path
    yield ROOT / "CONTRIBUTING.md"
    yield ROOT / "README.md"


@pytest.mark.parametrize("path", list(cited_files()), ids=lambda p: str(p.relative_to(ROOT)))
def test_citations_resolve(path):
    text = path.read_text(errors="replace")
    outside = "FORMAT" + ".md"  # the project's old notes, outside the repo
    assert outside not in text, "cite docs/format.md, not a file outside the repo"
    for m in CITATION.finditer(text):
        for n in re.findall(r"\d+", m.group(1)):
            assert int(n) in SECTIONS, f"{path.name}: docs/format.md §{n} does not exist"


def test_code_paths_named_in_the_document_exist():
    for rel in set(re.findall(r"`((?:core|tests|benchmarks)/[\w/]+\.py)`", DOC)):
        assert (ROOT / rel).exists(), rel


def test_vmctx_table_matches_gctypes():
    from wasmtime_stackmaps.gctypes import gc_heap_data_offset, type_ids_offset

    text = section(6)
    start = text.index("| versions | store context | builtins |")
    table = rows(text[start : text.index("\n\n", start)], r"\d\d(?:[–-]\d\d)?(?:, main)? \|")
    covered = set()
    for cells in table:
        data, ids = (int(c.lstrip("+")) for c in cells[6:8])
        for v in versions(cells[0]):
            assert (gc_heap_data_offset(v), type_ids_offset(v)) == (data, ids), v
            covered.add(v)
    assert covered == set(range(32, LAST_CHECKED + 1))
