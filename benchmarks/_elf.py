"""Write a minimal but valid Wasmtime-style ELF image around a stack-map section.

Same shape as what Wasmtime writes (docs/format.md §1): ELF64 little-endian,
EI_OSABI 200, e_flags bit 0 (module), sections with sh_addr 0, a page-aligned
`.text`, `.wasmtime.engine`, `.symtab` with one STT_FUNC symbol per function
(`wasm[0]::function[N]`), `.strtab`, `.wasmtime.stackmap`, `.shstrtab`, and the
section header table last.
"""

import struct

EM_X86_64 = 62


def _align(buf: bytearray, a: int) -> None:
    buf.extend(b"\0" * (-len(buf) % a))


def engine_section(version: str = "50", target: str = "x86_64-unknown-linux-gnu") -> bytes:
    v = version.encode()
    t = target.encode()
    return bytes([0, len(v)]) + v + bytes([len(t)]) + t


def build_image(text_size: int, functions, stackmap: bytes, version: str = "50") -> bytes:
    """`functions`: (start, size, name) in .text; `stackmap`: the section bytes."""
    strtab = bytearray(b"\0")
    syms = bytearray(b"\0" * 24)  # null symbol
    for start, size, name in functions:
        off = len(strtab)
        strtab += name.encode() + b"\0"
        # st_name, st_info (STB_LOCAL<<4 | STT_FUNC), st_other, st_shndx (.text = 2), value, size
        syms += struct.pack("<IBBHQQ", off, 2, 0, 2, start, size)
    sections = [  # name, type, data, align, entsize, link
        (".wasmtime.engine", 1, engine_section(version), 1, 0, 0),
        (".text", 1, None, 4096, 0, 0),
        (".symtab", 2, bytes(syms), 8, 24, 4),
        (".strtab", 3, bytes(strtab), 1, 0, 0),
        (".wasmtime.stackmap", 1, stackmap, 1, 0, 0),
        (".shstrtab", 3, None, 1, 0, 0),
    ]
    shstr = bytearray(b"\0")
    name_off = {}
    for name, *_ in sections:
        name_off[name] = len(shstr)
        shstr += name.encode() + b"\0"
    out = bytearray(64)
    placed = []
    for name, typ, data, align, entsize, link in sections:
        if name == ".text":
            data_len = text_size
        elif name == ".shstrtab":
            data = bytes(shstr)
            data_len = len(data)
        else:
            data_len = len(data)
        _align(out, align)
        off = len(out)
        if name == ".text":
            out += b"\xcc" * text_size  # int3: never executed
        else:
            out += data
        placed.append((name, typ, off, data_len, align, entsize, link))
    _align(out, 8)
    shoff = len(out)
    out += b"\0" * 64  # SHN_UNDEF
    for name, typ, off, size, align, entsize, link in placed:
        info = 1 if typ == 2 else 0  # .symtab: index of first non-local symbol
        if typ == 2:
            info = len(functions) + 1
        flags = 6 if name == ".text" else 0  # ALLOC|EXECINSTR
        out += struct.pack(
            "<IIQQQQIIQQ", name_off[name], typ, flags, 0, off, size, link, info, align, entsize
        )
    shnum = len(placed) + 1
    ident = b"\x7fELF" + bytes([2, 1, 1, 200]) + b"\0" * 8
    hdr = ident + struct.pack(
        "<HHIQQQIHHHHHH", 1, EM_X86_64, 1, 0, 0, shoff, 1, 64, 0, 0, 64, shnum, shnum - 1
    )
    out[:64] = hdr
    return bytes(out)
