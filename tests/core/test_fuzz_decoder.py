"""Fuzzing the decoder with hypothesis: hostile bytes may only raise StackMapsError.

Inputs: arbitrary bytes, structured sections with corrupt fields, real sections
from the fixtures with mutations, and whole real images with mutations (ELF
header, section header table, the stack map section, symbols, engine info) and
with unreadable pages. Every API of StackMapSection and WasmtimeImage is
exercised on each input; a structured section is also checked against a small
reference decoder written here (when the reference accepts it the decoder must
give the same entries, when it rejects it validate() must raise CorruptSection).

Each hypothesis case has a deadline; cases run are counted and reported at the
end of the session. `--long` runs 20 times as many cases.
"""

import struct

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from wasmtime_stackmaps import (
    CorruptSection,
    MemorySource,
    ReadError,
    StackMapSection,
    StackMapsError,
    WasmtimeImage,
)
from wasmtime_stackmaps.stackmap import MAX_FRAME_SIZE, MAX_LIVE_SLOTS

INTERESTING_U32 = [
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    0x10,
    0x20,
    0xFF,
    0x100,
    0x7FFF,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFF0,
    0xFFFFFFFE,
    0xFFFFFFFF,
]
INTERESTING_U64 = [
    0,
    1,
    0x40,
    0x1000,
    0xFFFFFFFF,
    1 << 32,
    1 << 40,
    1 << 62,
    (1 << 63) - 1,
    (1 << 64) - 1,
]


def _call(fn, *args):
    """Run one API call; StackMapsError is the only acceptable failure."""
    try:
        return True, fn(*args)
    except StackMapsError as e:
        assert str(e), f"{type(e).__name__} without a message"
        return False, e


# -- the section decoder ----------------------------------------------------------------------


def exercise_section(data: bytes, probes=()):
    ok, sm = _call(StackMapSection, data, "fuzz")
    if not ok:
        assert isinstance(sm, CorruptSection)
        return None
    n = len(sm)
    assert 4 + 8 * n <= len(data)
    pcs = list(sm.pcs)
    assert len(pcs) == n
    entries = []
    for i in range(min(n, 4096)):
        ok, e = _call(sm.entry, i)
        if ok:
            assert e.pc == pcs[i]
            assert e.frame_size > 0
            assert all(0 <= o < e.frame_size and o % 4 == 0 for o in e.offsets)
            entries.append(e)
    ok_iter, listed = _call(lambda: list(sm))
    valid, _ = _call(sm.validate)
    _call(sm.distinct_maps)
    for pc in list(probes) + pcs[:64] + [-1, 0, 0xFFFFFFFF, 1 << 40]:
        _call(sm.lookup, pc)
        assert isinstance(sm.find(pc), int)
    _call(lambda: list(sm.entries_between(0, 0x1000)))
    if valid:
        # A section validate() accepts decodes completely and consistently.
        assert ok_iter, listed
        assert all(a < b for a, b in zip(pcs, pcs[1:], strict=False))
        assert len(listed) == n
        for e in listed[:256]:
            assert sm.lookup(e.pc) == e
        ok, d = _call(sm.distinct_maps)
        assert ok and 0 <= d <= n
    return sm


def reference_decode(data: bytes):
    """A deliberately naive reader of the format: a list of entries, or None if corrupt.

    The format as Wasmtime writes it: the maps one after another filling the data
    exactly, each used by some entry, frames of at most 1 GiB, at most MAX_LIVE_SLOTS
    live slots a map.
    """
    if len(data) < 4:
        return None
    n = int.from_bytes(data[:4], "little")
    header = 4 + 8 * n
    if header > len(data) or (len(data) - header) % 4:
        return None
    word = lambda pos: int.from_bytes(data[pos : pos + 4], "little")  # noqa: E731
    nwords = (len(data) - header) // 4
    maps, k = {}, 0
    while k < nwords:
        if k + 2 > nwords:
            return None
        fs, m = word(header + 4 * k), word(header + 4 * k + 4)
        if fs == 0 or fs > MAX_FRAME_SIZE or m == 0 or k + 2 + m > nwords:
            return None
        offsets = []
        for w in range(m):
            bits = word(header + 4 * (k + 2 + w))
            offsets += [4 * (32 * w + b) for b in range(32) if bits >> b & 1]
        if word(header + 4 * (k + 1 + m)) == 0:  # the last word holds the highest slot
            return None
        if offsets[-1] >= fs or len(offsets) > MAX_LIVE_SLOTS:
            return None
        maps[k] = (fs, tuple(offsets))
        k += 2 + m
    out, used = [], set()
    for i in range(n):
        pc, k = word(4 + 4 * i), word(4 + 4 * n + 4 * i)
        if i and pc <= out[-1][0]:
            return None
        if k not in maps:
            return None
        used.add(k)
        out.append((pc, *maps[k]))
    if used != set(maps):
        return None
    return out


def check_against_reference(data: bytes):
    ref = reference_decode(data)
    sm = exercise_section(data)
    if ref is None:
        with pytest.raises(CorruptSection):
            StackMapSection(data).validate()
    else:
        assert sm is not None
        sm.validate()
        assert [(e.pc, e.frame_size, e.offsets) for e in sm] == ref


u32 = st.one_of(st.sampled_from(INTERESTING_U32), st.integers(0, 0xFFFFFFFF), st.integers(0, 64))


@st.composite
def structured_sections(draw):
    """Sections with a believable shape and corrupt fields here and there."""
    n = draw(st.integers(0, 12))
    pcs = sorted(draw(st.lists(st.integers(0, 0x10000), min_size=n, max_size=n)))
    if draw(st.integers(0, 4)) == 0:
        pcs = draw(st.permutations(pcs))
    data = []
    maps = []
    for _ in range(draw(st.integers(0, 6))):
        k = len(data)
        fs = draw(st.one_of(st.sampled_from([0, 4, 8, 16, 32, 48, 64, 184, 256]), u32))
        m = draw(st.integers(1, 3))
        words = draw(st.lists(st.one_of(st.integers(0, 0xFF), u32), min_size=m, max_size=m))
        if draw(st.integers(0, 6)) == 0:
            m = draw(u32)  # a lying word count
        data += [fs, m, *words]
        maps.append(k)
    index = [draw(st.one_of(st.sampled_from(maps), u32)) if maps else draw(u32) for _ in range(n)]
    count = n if draw(st.integers(0, 6)) else draw(u32)
    words = [count, *pcs, *index, *data]
    raw = struct.pack(f"<{len(words)}I", *words)
    cut = draw(st.integers(0, 8))
    if cut and draw(st.integers(0, 5)) == 0:
        raw = raw[: max(0, len(raw) - cut)]
    return raw


def test_fuzz_arbitrary_section_bytes(fuzz):
    @fuzz.settings(examples=1000)
    @given(st.binary(max_size=600))
    @example(b"")
    @example(b"\x00\x00\x00\x00")
    @example(b"\xff\xff\xff\xff")
    def case(data):
        fuzz.count("section: arbitrary bytes")
        check_against_reference(data)

    case()


def test_fuzz_structured_sections(fuzz):
    @fuzz.settings(examples=1500)
    @given(structured_sections())
    def case(data):
        fuzz.count("section: structured, corrupt fields")
        check_against_reference(data)

    case()


# -- mutations of real bytes -----------------------------------------------------------------

EDITS = ["byte", "u32", "u64", "zero", "truncate", "insert", "delete", "copy"]
# Whole images: mostly edits in place (a size change moves the section header table off
# the end, which is caught at once and says little about the rest of the decoder).
IMAGE_EDITS = (
    ["byte"] * 8
    + ["u32"] * 8
    + ["u64"] * 6
    + ["zero"] * 2
    + ["copy"] * 4
    + ["truncate", "insert", "delete"]
)


@st.composite
def mutations(draw, size: int, regions=(), kinds=EDITS):
    """A list of edits to a buffer of `size` bytes, biased towards `regions` [(start, end)]."""

    def position():
        if regions and draw(st.integers(0, 3)):
            lo, hi = draw(st.sampled_from(regions))
            return draw(st.integers(lo, max(lo, hi - 1)))
        # (hypothesis favours small numbers: keep most edits off the first bytes)
        lo = 0 if draw(st.integers(0, 15)) == 7 else min(8, max(0, size - 1))
        return draw(st.integers(lo, max(lo, size - 1)))

    edits = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(kinds))
        pos = position()
        if kind == "byte":
            edits.append((kind, pos, draw(st.integers(0, 255))))
        elif kind == "u32":
            edits.append((kind, pos, draw(u32)))
        elif kind == "u64":
            edits.append((kind, pos, draw(st.sampled_from(INTERESTING_U64))))
        elif kind in ("zero", "delete", "insert"):
            edits.append((kind, pos, draw(st.integers(1, 64))))
        elif kind == "truncate":
            edits.append((kind, pos, 0))
        else:
            edits.append((kind, pos, position()))
    return edits


def apply(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for kind, pos, arg in edits:
        pos = min(pos, len(b))
        if kind == "byte" and pos < len(b):
            b[pos] = arg
        elif kind == "u32":
            b[pos : pos + 4] = struct.pack("<I", arg)
        elif kind == "u64":
            b[pos : pos + 8] = struct.pack("<Q", arg)
        elif kind == "zero":
            b[pos : pos + arg] = bytes(len(b[pos : pos + arg]))
        elif kind == "truncate":
            del b[pos:]
        elif kind == "insert":
            b[pos:pos] = bytes([0xA5]) * arg
        elif kind == "delete":
            del b[pos : pos + arg]
        elif kind == "copy":
            b[pos : pos + 16] = b[arg : arg + 16]
    return bytes(b)


@pytest.fixture(scope="module")
def real_sections(fixture_store):
    out = []
    for b in fixture_store.all():
        data = WasmtimeImage.from_file(str(b.path)).section_data(".wasmtime.stackmap")
        if data not in out:
            out.append(data)
    return out


def test_fuzz_mutated_real_sections(fuzz, real_sections):
    @fuzz.settings(examples=1500)
    @given(st.data())
    def case(data):
        fuzz.count("section: mutated real sections")
        sec = data.draw(st.sampled_from(real_sections))
        n = int.from_bytes(sec[:4], "little")
        regions = [(0, 4), (4, 4 + 4 * n), (4 + 4 * n, 4 + 8 * n), (4 + 8 * n, len(sec))]
        mutated = apply(sec, data.draw(mutations(len(sec), regions)))
        check_against_reference(mutated)

    case()


# -- whole images ----------------------------------------------------------------------------

IMAGE_KEYS = [
    ("structs", "cli", "x86_64-unknown-linux-gnu"),
    ("externref", "cli", "s390x-unknown-linux-gnu"),  # big-endian ELF
    ("tailcall", "cli", "riscv64gc-unknown-linux-gnu"),
    ("component", "cli", "pulley64be"),  # big-endian, Pulley, component
    ("component", "py", "host"),  # Wasmtime 50
    ("i31", "py", "pulley64"),
]


def exercise_image(img_or_bytes):
    ok, img = (
        _call(WasmtimeImage.from_bytes, img_or_bytes, "fuzz.cwasm")
        if isinstance(img_or_bytes, bytes)
        else (True, img_or_bytes)
    )
    if not ok:
        return
    _ = img.kind, img.arch, img.pulley, img.flags
    _call(lambda: img.sections)
    _call(lambda: img.engine)
    _call(lambda: img.engine.major)
    _call(lambda: img.text_range)
    ok, funcs = _call(lambda: img.functions)
    if ok:
        for f in funcs[:50]:
            _call(img.function_at, f.start)
            _call(img.function_at, f.end)
        _call(img.function_at, -1)
        _call(img.find_function, "build")
        _call(img.find_function, "3")
    ok, sm = _call(lambda: img.stackmaps)
    if ok and sm is not None:
        exercise_section(sm._raw)
        for pc in list(sm.pcs)[:32]:
            _call(img.lookup, pc)
            _call(img.describe_no_map, pc + 1)
    elif ok:
        _call(img.no_stackmaps_reason)
    _call(img.lookup, 0x40)
    _call(img.describe_no_map, 0x40)
    _call(img.identity)
    _call(img.section_data, ".symtab")


@pytest.fixture(scope="module")
def real_images(fixture_store):
    out = []
    for key in IMAGE_KEYS:
        data = fixture_store.get(key).path.read_bytes()
        img = WasmtimeImage.from_bytes(data)
        e = "<" if img.header.little_endian else ">"
        regions = [(8, 64), (img.header.shoff, img.size)]
        for name in (".wasmtime.stackmap", ".symtab", ".strtab", ".wasmtime.engine", ".shstrtab"):
            off, size = img.sections[name]
            regions.append((off, off + min(size, 4096)))
        # Each section header's offset/size fields.
        for i in range(img.header.shnum):
            base = img.header.shoff + 64 * i
            regions.append((base + 24, base + 40))
        assert e
        out.append((data, regions))
    return out


def test_fuzz_mutated_images(fuzz, real_images):
    @fuzz.settings(examples=1500, deadline_ms=2000)
    @given(st.data())
    def case(data):
        fuzz.count("image: mutated real images")
        raw, regions = data.draw(st.sampled_from(real_images))
        exercise_image(apply(raw, data.draw(mutations(len(raw), regions, IMAGE_EDITS))))

    case()


def test_fuzz_images_with_unreadable_pages(fuzz, real_images):
    """A debugger's memory: some pages of the image cannot be read (ReadError)."""

    @fuzz.settings(examples=500, deadline_ms=2000)
    @given(st.data())
    def case(data):
        fuzz.count("image: unreadable pages in memory")
        raw, _ = data.draw(st.sampled_from(real_images))
        pages = (len(raw) + 4095) // 4096
        holes = set(data.draw(st.lists(st.integers(0, pages - 1), max_size=4)))
        short = data.draw(st.booleans())  # short reads instead of ReadError
        base = 0x7F0000000000

        def read_memory(addr, size):
            off = addr - base
            out = bytearray()
            while len(out) < size:
                p = (off + len(out)) // 4096
                if p in holes:
                    if short:
                        break
                    raise ReadError(
                        f"cannot access memory at {addr + len(out):#x}", addr + len(out)
                    )
                n = min(size - len(out), 4096 - (off + len(out)) % 4096)
                out += raw[off + len(out) : off + len(out) + n]
                if off + len(out) >= len(raw):
                    break
            return bytes(out)

        sized = data.draw(st.booleans())
        src = MemorySource(read_memory, base, len(raw) if sized else None)
        ok, img = _call(WasmtimeImage, src, base)
        if ok:
            exercise_image(img)
        else:
            assume(True)

    case()
