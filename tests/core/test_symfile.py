"""The symbol files the plugins give the debuggers (core/symfile.py), read back with pyelftools."""

import io
import os
import struct
import subprocess
import sys
import tempfile

import pytest
from elftools.elf.elffile import ELFFile
from wasmtime_stackmaps import WasmtimeImage
from wasmtime_stackmaps.symfile import SymbolFiles, combined_symbol_elf, symbol_elf

NATIVE = ["x86_64-unknown-linux-gnu", "aarch64-unknown-linux-gnu", "s390x-unknown-linux-gnu"]


@pytest.mark.parametrize("target", NATIVE)
def test_symbols_are_the_images_functions(fixture_store, target):
    img = WasmtimeImage.from_file(str(fixture_store.get(("structs", "cli", target)).path))
    img.base = 0x7F0000000000
    data, n = symbol_elf(img)
    elf = ELFFile(io.BytesIO(data))
    assert elf.little_endian == img.header.little_endian
    assert (
        elf["e_machine"]
        == {
            "x86_64-unknown-linux-gnu": "EM_X86_64",
            "aarch64-unknown-linux-gnu": "EM_AARCH64",
            "s390x-unknown-linux-gnu": "EM_S390",
        }[target]
    )
    text = elf.get_section_by_name(".text")
    assert text["sh_type"] == "SHT_NOBITS" and text["sh_addr"] == 0
    assert text["sh_size"] == img.text_range[1]
    syms = [
        (s["st_value"], s["st_size"], s.name)
        for s in elf.get_section_by_name(".symtab").iter_symbols()
        if s["st_info"]["type"] == "STT_FUNC"
    ]
    assert n == len(syms) == len(img.functions) > 0
    assert sorted(syms) == sorted((f.start, f.size, f.name) for f in img.functions)
    assert all(
        s["st_shndx"] == 1
        for s in elf.get_section_by_name(".symtab").iter_symbols()
        if s["st_info"]["type"] == "STT_FUNC"
    )


def _with_symtab(img_bytes: bytes, mutate) -> WasmtimeImage:
    img = WasmtimeImage.from_bytes(img_bytes)
    data = bytearray(img_bytes)
    mutate(img, data)
    out = WasmtimeImage.from_bytes(bytes(data))
    out.base = 0x10000
    return out


def test_damaged_symbols_are_left_out_and_names_made_printable(fixture_store):
    path = fixture_store.get(("structs", "cli", "x86_64-unknown-linux-gnu")).path
    raw = path.read_bytes()

    def mutate(img, data):
        off, size = img.sections[".symtab"]
        soff, _ = img.sections[".strtab"]
        st = struct.Struct("<IBBHQQ")
        funcs = [i for i in range(size // 24) if st.unpack_from(data, off + 24 * i)[1] & 0xF == 2]
        # First function: a name with an escape sequence; second: past the end of .text.
        name_off = st.unpack_from(data, off + 24 * funcs[0])[0]
        data[soff + name_off : soff + name_off + 2] = b"\x1b["
        e = list(st.unpack_from(data, off + 24 * funcs[1]))
        e[4] = 1 << 40
        st.pack_into(data, off + 24 * funcs[1], *e)

    img = _with_symtab(raw, mutate)
    data, n = symbol_elf(img)
    elf = ELFFile(io.BytesIO(data))
    names = [s.name for s in elf.get_section_by_name(".symtab").iter_symbols()][1:]
    assert n == len(names) == len(img.functions) - 1
    assert not any(c < " " or c == "\x7f" for nm in names for c in nm)
    assert any(nm.startswith("?[") for nm in names), names


def test_symbol_files_follow_the_images(fixture_store):
    path = str(fixture_store.get(("structs", "cli", "x86_64-unknown-linux-gnu")).path)
    a = WasmtimeImage.from_file(path)
    a.base = 0x10000
    b = WasmtimeImage.from_file(path)
    b.base = 0x90000
    pulley = WasmtimeImage.from_file(str(fixture_store.get(("structs", "cli", "pulley64")).path))
    pulley.base = 0x200000
    files = SymbolFiles()
    add, drop = files.changes([a, b, pulley])
    assert [img.base for _, img in add] == [0x10000, 0x90000] and drop == []  # no Pulley
    written = [files.write(k, img) for k, img in add]
    top = os.path.dirname(os.path.dirname(written[0].path))
    assert os.stat(top).st_mode & 0o777 == 0o700
    assert [os.path.basename(s.path) for s in written] == [os.path.basename(path)] * 2
    assert [s.text_address for s in written] == [a.text_start, b.text_start]
    # b goes away: its file is to be dropped, a's stays.
    add, drop = files.changes([a])
    assert add == [] and [s for _, s in drop] == [written[1]]
    files.forget(drop[0][0])
    assert not os.path.exists(written[1].path) and os.path.exists(written[0].path)
    files.close()
    assert not os.path.exists(top) and files.loaded == {}


def test_orphaned_directories_of_dead_debuggers_are_removed():
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    orphan = tempfile.mkdtemp(prefix=f"wasmtime-stackmaps-symbols-{pid}-")
    live = tempfile.mkdtemp(prefix=f"wasmtime-stackmaps-symbols-{os.getppid()}-")
    try:
        files = SymbolFiles()
        files._directory()
        assert not os.path.exists(orphan)
        assert os.path.exists(live)
        files.close()
    finally:
        for d in (orphan, live):
            if os.path.exists(d):
                os.rmdir(d)


def test_combined_file_places_every_image_at_its_address(fixture_store):
    """GDB's one file for all images: a .text.N per image at its runtime address."""
    path = str(fixture_store.get(("structs", "cli", "x86_64-unknown-linux-gnu")).path)
    images = []
    for base in (0x7F0000000000, 0x7F0000100000, 0x550000000000):
        img = WasmtimeImage.from_file(path)
        img.base = base
        images.append(img)
    data, n = combined_symbol_elf(images)
    elf = ELFFile(io.BytesIO(data))
    texts = [s for s in elf.iter_sections() if s.name.startswith(".text")]
    assert [(s["sh_addr"], s["sh_size"]) for s in texts] == [
        (img.text_start, img.text_range[1]) for img in images
    ]
    syms = [
        (s["st_shndx"], s["st_value"], s.name)
        for s in elf.get_section_by_name(".symtab").iter_symbols()
        if s["st_info"]["type"] == "STT_FUNC"
    ]
    assert n == len(syms) == 3 * len(images[0].functions)
    want = [
        (1 + k, img.text_start + f.start, f.name)
        for k, img in enumerate(images)
        for f in img.functions
    ]
    assert sorted(syms) == sorted(want)
    files = SymbolFiles()
    s = files.write_combined(files.wanted(images))
    assert files.combined == s and set(files.loaded.values()) == {s} and len(files.loaded) == 3
    files.discard(s)
    assert not os.path.exists(s.path) and files.loaded == {} and files.combined is None
    files.close()
