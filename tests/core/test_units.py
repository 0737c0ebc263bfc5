"""Explicit unit tests: each corruption named in the issue, encode() round trips, decode_gcref."""

import re
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wasmtime_stackmaps import (
    CorruptSection,
    NotAnImage,
    StackMapSection,
    StackMapsError,
    WasmtimeImage,
    decode_gcref,
    encode,
    parse_elf_header,
)
from wasmtime_stackmaps.image import parse_engine
from wasmtime_stackmaps.render import describe_slot


def u32s(*words) -> bytes:
    return struct.pack(f"<{len(words)}I", *words)


# Two entries sharing nothing: pcs 0x10, 0x20; maps at data[0] and data[3].
GOOD = u32s(
    2,
    0x10,
    0x20,
    0,
    3,
    32,
    1,
    0b11,  # frame 32, slots 0 and 4
    64,
    2,
    0,
    1 << 3,
)  # frame 64, slot 4*(32+3) = 140 > 64: see OFFSET_BEYOND
GOOD_OK = u32s(2, 0x10, 0x20, 0, 3, 32, 1, 0b11, 160, 2, 0, 1 << 3)  # slot 140 < 160


def everything(sm: StackMapSection):
    """Touch every API the decoder offers for a section."""
    list(sm)
    sm.validate()
    sm.distinct_maps()
    for pc in list(sm.pcs):
        sm.lookup(pc)


def test_good_section_decodes():
    sm = StackMapSection(GOOD_OK)
    assert len(sm) == 2
    e0, e1 = list(sm)
    assert (e0.pc, e0.frame_size, e0.offsets, e0.map_index) == (0x10, 32, (0, 4), 0)
    assert (e1.pc, e1.frame_size, e1.offsets, e1.map_index) == (0x20, 160, (140,), 3)
    assert sm.lookup(0x20) == e1 and sm.lookup(0x1F) is None and sm.lookup(0x21) is None
    assert sm.find(0x10) == 0 and sm.find(0) == -1
    assert list(sm.entries_between(0x11, 0x100)) == [e1]
    assert sm.distinct_maps() == 2
    sm.validate()


def test_empty_section():
    sm = StackMapSection(u32s(0))
    assert len(sm) == 0 and list(sm) == [] and sm.lookup(0) is None
    sm.validate()
    assert sm.distinct_maps() == 0


# Every corruption: (section bytes, where it is detected, pattern the message must contain).
CORRUPTIONS = {
    "truncated-below-count": (b"\x02\x00", "open", r"2 bytes, too short for the entry count"),
    "truncated-mid-word": (GOOD_OK[:-2], "open", r"not a whole number of u32 words"),
    "truncated-bitmap": (GOOD_OK[:-4], "entry", r"bitmap of 2 words .* runs past the end"),
    "truncated-header": (GOOD_OK[:12], "open", r"entry count N=2 needs 20 bytes .* has 12"),
    "n-too-large": (u32s(1000) + GOOD_OK[4:], "open", r"entry count N=1000 needs 8004 bytes"),
    "n-huge": (u32s(0xFFFFFFFF, 0, 0), "open", r"entry count N=4294967295"),
    "index-past-end": (
        u32s(1, 0x10, 7, 32, 1, 1),
        "entry",
        r"entry 0 \(pc 0x10\): map index 7 is past the end of the map data",
    ),
    "index-at-last-word": (u32s(1, 0x10, 2, 32, 1, 1), "entry", r"map index 2 is past the end"),
    "m-past-end": (
        u32s(1, 0x10, 0, 32, 5, 1),
        "entry",
        r"bitmap of 5 words at data\[2\] runs past the end of the map data \(3 words\)",
    ),
    "m-huge": (u32s(1, 0x10, 0, 32, 0xFFFFFFFF, 1), "entry", r"bitmap of 4294967295 words"),
    "m-zero": (u32s(1, 0x10, 0, 32, 0), "entry", r"bitmap has 0 words"),
    "unsorted-pcs": (
        u32s(2, 0x20, 0x10, 0, 0, 32, 1, 1),
        "validate",
        r"pcs not strictly ascending at entry 1: 0x10 after 0x20",
    ),
    "duplicate-pcs": (
        u32s(2, 0x20, 0x20, 0, 0, 32, 1, 1),
        "validate",
        r"not strictly ascending at entry 1",
    ),
    "frame-size-0": (u32s(1, 0x10, 0, 0, 1, 1), "entry", r"entry 0 \(pc 0x10\): frame_size is 0"),
    "offset-beyond-frame": (
        GOOD,
        "entry",
        r"entry 1 \(pc 0x20\): slot at SP\+140 is beyond "
        r"frame_size 64",
    ),
    "offset-at-frame-size": (
        u32s(1, 0x10, 0, 8, 1, 0b100),
        "entry",
        r"slot at SP\+8 is beyond frame_size 8",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_is_named(name):
    data, where, pattern = CORRUPTIONS[name]
    if where == "open":
        with pytest.raises(CorruptSection, match=pattern) as ei:
            StackMapSection(data, "SEC")
        assert str(ei.value).startswith("SEC: ")
        return
    sm = StackMapSection(data, "SEC")  # opening only reads the header
    with pytest.raises(CorruptSection, match=pattern) as ei:
        if where == "entry":
            list(sm)
        else:
            sm.validate()
    assert str(ei.value).startswith("SEC: ")
    # validate() finds the same problem, and so does everything else that touches it.
    with pytest.raises(CorruptSection, match=pattern):
        sm.validate()
    if where == "entry":
        bad = [i for i in range(len(sm)) if _raises(lambda i=i: sm.entry(i))]
        assert bad
        with pytest.raises(CorruptSection):
            sm.lookup(sm.pcs[bad[0]])


def _raises(fn) -> bool:
    try:
        fn()
    except CorruptSection:
        return True
    return False


def test_distinct_maps_checks_bounds():
    with pytest.raises(CorruptSection, match="past the end"):
        StackMapSection(CORRUPTIONS["index-past-end"][0]).distinct_maps()
    with pytest.raises(CorruptSection, match="frame_size is 0"):
        StackMapSection(CORRUPTIONS["frame-size-0"][0]).distinct_maps()


def test_entry_index_out_of_range():
    sm = StackMapSection(GOOD_OK)
    for i in (-1, 2, 1 << 40):
        with pytest.raises(CorruptSection, match="out of range"):
            sm.entry(i)


def test_unaligned_section_bytes():
    """The section has alignment 1: decoding from an odd offset must work."""
    buf = b"\x00" + GOOD_OK
    sm = StackMapSection(memoryview(buf)[1:].tobytes())
    assert [e.offsets for e in sm] == [(0, 4), (140,)]
    sm2 = StackMapSection(bytes(memoryview(buf)[1:]))
    assert list(sm2) == list(sm)


def test_shared_maps_decode_once_each():
    data = u32s(3, 4, 8, 12, 0, 0, 0, 16, 1, 0b1)
    sm = StackMapSection(data)
    assert [e.offsets for e in sm] == [(0,)] * 3
    assert sm.distinct_maps() == 1
    sm.validate()


# -- garbage ELF ------------------------------------------------------------------------------


def elf_header(**kw) -> bytearray:
    h = bytearray(64)
    h[:4] = b"\x7fELF"
    h[4] = kw.get("cls", 2)
    h[5] = kw.get("data", 1)
    h[6] = 1
    h[7] = kw.get("osabi", 200)
    struct.pack_into("<HHI", h, 16, 1, kw.get("machine", 62), 1)
    struct.pack_into("<Q", h, 40, kw.get("shoff", 64))
    struct.pack_into("<I", h, 48, kw.get("flags", 1))
    struct.pack_into(
        "<HHHHHH",
        h,
        52,
        64,
        0,
        0,
        kw.get("shentsize", 64),
        kw.get("shnum", 1),
        kw.get("shstrndx", 0),
    )
    return h


@pytest.mark.parametrize(
    "data,pattern",
    [
        (b"", r"not an ELF file"),
        (b"\x7fELF", r"not an ELF file"),
        (b"MZ" + bytes(200), r"not an ELF file"),
        (bytes(elf_header(cls=1)), r"not a 64-bit ELF \(EI_CLASS=1\)"),
        (bytes(elf_header(data=3)), r"bad ELF byte order \(EI_DATA=3\)"),
        (bytes(elf_header(osabi=0)), r"ELF OS/ABI is 0, not Wasmtime's 200"),
        (bytes(elf_header(shentsize=40)), r"implausible section header table"),
        (bytes(elf_header(shnum=0)), r"implausible section header table .*e_shnum=0"),
        (bytes(elf_header(shoff=8)), r"implausible section header table \(e_shoff=0x8"),
        (bytes(elf_header(shoff=1 << 40)), r"implausible section header table"),
        (bytes(elf_header(shnum=4)), r"past the end of the data .*truncated image"),
    ],
)
def test_garbage_elf(data, pattern):
    with pytest.raises(NotAnImage, match=pattern):
        WasmtimeImage.from_bytes(data, "junk")


def test_garbage_section_headers():
    """A plausible header over a section table of garbage: NotAnImage, named."""
    data = bytes(elf_header(shoff=64, shnum=3, shstrndx=2)) + bytes(range(256)) * 1
    img = WasmtimeImage.from_bytes(data[: 64 + 3 * 64], "junk")
    with pytest.raises(StackMapsError) as ei:
        _ = img.sections, img.stackmaps, img.functions, img.text_range
    assert "junk" in str(ei.value)


def test_header_facts():
    h = parse_elf_header(bytes(elf_header(flags=2 | 8, machine=243)))
    assert h.little_endian and h.flags == 10 and h.machine == 243
    img = WasmtimeImage.from_bytes(bytes(elf_header(flags=2 | 8, machine=243)) + bytes(64))
    assert img.kind == "component" and img.pulley == 64 and img.arch == "pulley64"
    img = WasmtimeImage.from_bytes(bytes(elf_header(flags=1 | 4, machine=243)) + bytes(64))
    assert img.kind == "module" and img.pulley == 32 and img.arch == "pulley32"
    img = WasmtimeImage.from_bytes(bytes(elf_header(flags=1, machine=183)) + bytes(64))
    assert img.pulley is None and img.arch == "aarch64"
    img = WasmtimeImage.from_bytes(bytes(elf_header(flags=1, machine=9999)) + bytes(64))
    assert img.arch == "e_machine=9999"


def test_engine_section():
    ver = b"49.0.3"
    triple = b"x86_64-unknown-linux-gnu"
    data = bytes([0, len(ver)]) + ver + bytes([len(triple)]) + triple + b"\x01\x02"
    e = parse_engine(data)
    assert e.version == "49.0.3" and e.major == 49 and e.target == triple.decode()
    assert parse_engine(bytes([0, 2]) + b"50").target is None
    with pytest.raises(CorruptSection, match="engine is 1 bytes"):
        parse_engine(b"\x00")
    with pytest.raises(CorruptSection, match="version string runs past"):
        parse_engine(b"\x00\x10abc")


def test_corrupt_section_inside_a_real_image(fixture_store):
    """A broken stack map section inside a real image is named with the image."""
    b = fixture_store.get(("arrays", "cli", "x86_64-unknown-linux-gnu"))
    data = bytearray(b.path.read_bytes())
    off, size = WasmtimeImage.from_bytes(bytes(data)).sections[".wasmtime.stackmap"]
    struct.pack_into("<I", data, off, size)  # N too large
    img = WasmtimeImage.from_bytes(bytes(data), "broken.cwasm")
    with pytest.raises(CorruptSection, match=r"broken.cwasm: \.wasmtime\.stackmap: entry count"):
        _ = img.stackmaps
    assert len(img.functions) > 0 and img.engine.major == 49  # the rest still reads


# -- encode() --------------------------------------------------------------------------------


@st.composite
def entry_lists(draw):
    pcs = draw(st.lists(st.integers(0, 0xFFFFFFFF), unique=True, max_size=40))
    out = []
    for pc in pcs:
        frame_words = draw(st.integers(1, 600))
        frame_size = 4 * frame_words
        offs = draw(st.lists(st.integers(0, frame_words - 1), unique=True, min_size=1, max_size=20))
        out.append((pc, frame_size, tuple(sorted(4 * o for o in offs))))
    # Reuse some maps verbatim, as Wasmtime images often do.
    if out and draw(st.booleans()):
        pc = draw(st.integers(0, 0xFFFFFFFF).filter(lambda p: p not in set(pcs)))
        out.append((pc,) + out[0][1:])
    return out


@given(entry_lists())
def test_encode_round_trip(entries):
    data = encode(entries)
    sm = StackMapSection(data)
    sm.validate()
    assert [(e.pc, e.frame_size, e.offsets) for e in sm] == sorted(entries)
    assert sm.distinct_maps() == len({(fs, offs) for _, fs, offs in entries})
    for pc, fs, offs in entries:
        assert sm.lookup(pc) == (pc, fs, offs, sm.lookup(pc).map_index)
    assert encode([(e.pc, e.frame_size, e.offsets) for e in sm]) == data


def test_encode_layout():
    assert encode([]) == u32s(0)
    assert encode([(0x20, 16, (0, 8)), (0x10, 16, (0, 8))]) == u32s(
        2, 0x10, 0x20, 0, 0, 16, 1, 0b101
    )
    assert encode([(4, 256, (128,))]) == u32s(1, 4, 0, 256, 2, 0, 1)
    with pytest.raises(ValueError, match="not a multiple of 4"):
        encode([(4, 32, (2,))])


def test_encode_round_trips_real_sections(fixture_store):
    """Re-encoding what the decoder read from real images gives the same entries."""
    n = 0
    for b in fixture_store.all():
        sm = WasmtimeImage.from_file(str(b.path)).stackmaps
        entries = [(e.pc, e.frame_size, e.offsets) for e in sm]
        again = StackMapSection(encode(entries))
        assert [(e.pc, e.frame_size, e.offsets) for e in again] == entries
        unique = len({(fs, offs) for _, fs, offs in entries})
        assert again.distinct_maps() == unique <= sm.distinct_maps() <= len(sm)
        n += len(entries)
    assert n > 100


def _describe(r):
    return describe_slot({"kind": r.kind, "value": r.value})


# -- decode_gcref ----------------------------------------------------------------------------


def test_gcref_null():
    r = decode_gcref(0)
    assert (r.kind, r.value, r.i31_unsigned) == ("null", None, None)
    assert _describe(r) == "null"


@pytest.mark.parametrize("value", [0, 1, -1, 5, -7, 0x3FFFFFFF, -0x40000000, 12345, -12345])
def test_gcref_i31(value):
    raw = ((value << 1) | 1) & 0xFFFFFFFF
    r = decode_gcref(raw)
    assert r.kind == "i31"
    assert r.value == value  # i31.get_s
    assert r.i31_unsigned == value & 0x7FFFFFFF  # i31.get_u
    assert _describe(r) == f"i31 {value}"


def test_gcref_i31_edges():
    assert decode_gcref(0xFFFFFFFF).value == -1
    assert decode_gcref(0xFFFFFFFF).i31_unsigned == 0x7FFFFFFF
    assert decode_gcref(0x7FFFFFFF).value == 0x3FFFFFFF
    assert decode_gcref(0x80000001).value == -0x40000000
    assert decode_gcref(0x80000001).i31_unsigned == 0x40000000
    assert decode_gcref(1).value == 0


@given(st.integers(-(1 << 30), (1 << 30) - 1))
def test_gcref_i31_any(value):
    r = decode_gcref(((value << 1) | 1) & 0xFFFFFFFF)
    assert r.kind == "i31" and r.value == value and r.i31_unsigned == value & 0x7FFFFFFF


@pytest.mark.parametrize("raw", [2, 8, 0x10, 0x1000, 0xFFFFFFF0, 0x80000000])
def test_gcref_heap(raw):
    r = decode_gcref(raw)
    assert (r.kind, r.value, r.raw, r.i31_unsigned) == ("heap", raw, raw, None)
    assert _describe(r) == f"heap {raw:#x}"


def test_gcref_masks_to_32_bits():
    assert decode_gcref(1 << 32).kind == "null"
    assert decode_gcref((1 << 32) | 8) == decode_gcref(8)
    assert decode_gcref(-1).value == -1  # a sign-extended register value
    assert re.fullmatch(r"heap 0x[0-9a-f]+", _describe(decode_gcref(0x40)))
