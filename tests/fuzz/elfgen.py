"""Build Wasmtime-shaped ELF images from parts, with every size and place under control.

The structure-aware fuzzer and the crafted regression cases use this: an
image is a list of Section records; each may declare a size other than the
bytes it holds, sit at a chosen offset (far out: a sparse file), or be left
out. Headers are written the way Wasmtime writes them (ELF64, EI_OSABI 200,
e_flags for module/component/Pulley), in either byte order.
"""

import struct
from dataclasses import dataclass, field

EM = {"x86_64": 62, "aarch64": 183, "riscv64": 243, "s390x": 22}
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 1, 2, 3, 8


@dataclass
class Section:
    name: str
    data: bytes = b""
    typ: int = SHT_PROGBITS
    declared_size: int | None = None  # sh_size if not len(data)
    offset: int | None = None  # sh_offset if not placed after the previous section
    align: int = 8
    entsize: int = 0
    link: int = 0


@dataclass
class Image:
    sections: list[Section] = field(default_factory=list)
    little_endian: bool = True
    machine: str = "x86_64"
    flags: int = 1  # EF_WASMTIME_MODULE
    shoff: int | None = None  # where the section header table goes (default: after the data)

    def section(self, name: str) -> Section:
        return next(s for s in self.sections if s.name == name)


def u32s(words, little_endian: bool = True) -> bytes:
    return struct.pack(("<" if little_endian else ">") + f"{len(words)}I", *words)


def engine(version: str = "49", target: str = "x86_64-unknown-linux-gnu") -> bytes:
    """`.wasmtime.engine`: format 0, u8 length + version, then postcard: varint length + target."""
    v, t = version.encode(), target.encode()
    out = bytearray([0, len(v)]) + v
    n = len(t)
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            break
    return bytes(out + t)


def symbols(functions, little_endian: bool = True) -> tuple[bytes, bytes]:
    """(.symtab, .strtab) for (start, size, name) functions (names: str or raw bytes)."""
    e = "<" if little_endian else ">"
    strtab = bytearray(b"\0")
    syms = bytearray(24)
    for start, size, name in functions:
        off = len(strtab)
        strtab += (name if isinstance(name, bytes) else name.encode()) + b"\0"
        syms += struct.pack(e + "IBBHQQ", off, 2, 0, 2, start, size)
    return bytes(syms), bytes(strtab)


def stackmap(entries) -> bytes:
    """A section laid out as Wasmtime writes it: one map per entry, in order, no sharing.

    `entries`: (pc, frame_size, bitmap words)."""
    entries = list(entries)
    pcs = [pc for pc, _, _ in entries]
    index, data = [], []
    for _, fs, words in entries:
        index.append(len(data))
        data += [fs, len(words), *words]
    return u32s([len(entries), *pcs, *index, *data])


def standard(
    functions=((0, 0x40, "wasm[0]::function[0]::f"), (0x40, 0x40, "wasm[0]::function[1]")),
    entries=((0x10, 32, [0b11]), (0x50, 48, [0b100])),
    text_size: int = 0x80,
    version: str = "49",
    target: str = "x86_64-unknown-linux-gnu",
) -> Image:
    """A small, valid image: two functions, two safepoints."""
    symtab, strtab = symbols(functions)
    return Image(
        [
            Section(".wasmtime.engine", engine(version, target), align=1),
            Section(".text", b"\xcc" * text_size, align=16),
            Section(".symtab", symtab, SHT_SYMTAB, entsize=24, link=3),
            Section(".strtab", strtab, SHT_STRTAB, align=1),
            Section(".wasmtime.stackmap", stackmap(entries), align=4),
        ]
    )


def _parts(img: Image) -> tuple[bytearray, bytes, int]:
    """(the header-less body, the section header table, e_shnum)."""
    e = "<" if img.little_endian else ">"
    secs = [*img.sections, Section(".shstrtab", b"", SHT_STRTAB, align=1)]
    shstr = bytearray(b"\0")
    names = []
    for s in secs:
        names.append(len(shstr))
        shstr += s.name.encode("utf-8", "surrogateescape") + b"\0"
    secs[-1].data = bytes(shstr)
    out = bytearray(64)
    table = bytearray(64)
    for i, s in enumerate(secs):
        off = s.offset
        if off is None:
            out += b"\0" * (-len(out) % max(1, s.align))
            off = len(out)
        if off + len(s.data) > len(out):
            out += b"\0" * (off + len(s.data) - len(out))
        out[off : off + len(s.data)] = s.data
        size = len(s.data) if s.declared_size is None else s.declared_size
        flags = 6 if s.name == ".text" else 0
        table += struct.pack(
            e + "IIQQQQIIQQ", names[i], s.typ, flags, 0, off, size, s.link, 0, s.align, s.entsize
        )
    out += b"\0" * (-len(out) % 8)
    return out, bytes(table), len(secs) + 1


def _header(img: Image, shoff: int, shnum: int) -> bytes:
    e = "<" if img.little_endian else ">"
    ident = b"\x7fELF" + bytes([2, 1 if img.little_endian else 2, 1, 200]) + b"\0" * 8
    return ident + struct.pack(
        e + "HHIQQQIHHHHHH",
        *(1, EM[img.machine], 1, 0, 0, shoff, img.flags, 64, 0, 0, 64, shnum, shnum - 1),
    )


def build(img: Image) -> bytes:
    """The ELF bytes."""
    body, table, shnum = _parts(img)
    shoff = len(body) if img.shoff is None else img.shoff
    if shoff + len(table) > len(body):
        body += b"\0" * (shoff + len(table) - len(body))
    body[shoff : shoff + len(table)] = table
    body[:64] = _header(img, shoff, shnum)
    return bytes(body)


def write_sparse(path, img: Image, far: int) -> None:
    """Write `img` with its section header table at offset `far`, leaving a hole (sparse file):
    a few KB on disk, `far` bytes long."""
    body, table, shnum = _parts(img)
    body[:64] = _header(img, far, shnum)
    with open(path, "wb") as f:
        f.write(body)
        f.seek(far)
        f.write(table)
