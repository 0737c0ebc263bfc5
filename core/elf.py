"""The ELF container of a Wasmtime image: its header and its section header table.

The section header table is read with `struct` in two reads (the table,
`.shstrtab`); pyelftools decides, with its own error messages, whenever the
table is not plainly well formed. Every read is bounded by the image's size.
"""

import io
import struct
from typing import IO, TYPE_CHECKING, NamedTuple, cast

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

from .abi import ELF_MAGIC, ELFOSABI_WASMTIME
from .errors import NotAnImage, StackMapsError
from .source import ByteSource

EM_NAMES = {62: "x86_64", 183: "aarch64", 243: "riscv64", 22: "s390x"}

# A section table larger than this is corrupt (a real image is far below it).
MAX_SECTION_READ = 1 << 30
# Bytes from the ELF header to the end of the section header table, at most.
MAX_IMAGE_SIZE = 1 << 32

# Elf64_Shdr: name, type, flags, addr, offset, size, link, info, addralign, entsize.
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SHDR_BE = struct.Struct(">IIQQQQIIQQ")
SHT_NOBITS = 8


# name -> (file offset, size, sh_type: a number, or pyelftools' name for it)
SectionTable = dict[str, tuple[int, int, int | str]]


class ElfHeader(NamedTuple):
    little_endian: bool
    osabi: int
    machine: int
    flags: int
    shoff: int
    shentsize: int
    shnum: int
    shstrndx: int

    @property
    def image_size(self) -> int:
        """Bytes from the ELF header to the end of the section header table."""
        return self.shoff + self.shnum * self.shentsize


def parse_elf_header(data: bytes, where: str = "image") -> ElfHeader:
    """Check the 64-byte ELF header of a Wasmtime image; raise NotAnImage if it is not one."""
    if len(data) < 64 or data[:4] != ELF_MAGIC:
        raise NotAnImage(f"{where}: not an ELF file")
    if data[4] != 2:
        raise NotAnImage(f"{where}: not a 64-bit ELF (EI_CLASS={data[4]})")
    if data[5] not in (1, 2):
        raise NotAnImage(f"{where}: bad ELF byte order (EI_DATA={data[5]})")
    if data[7] != ELFOSABI_WASMTIME:
        raise NotAnImage(f"{where}: ELF OS/ABI is {data[7]}, not Wasmtime's {ELFOSABI_WASMTIME}")
    e = "<" if data[5] == 1 else ">"
    (machine,) = struct.unpack_from(e + "H", data, 18)
    shoff, flags = struct.unpack_from(e + "QI", data, 40)
    shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 58)
    hdr = ElfHeader(data[5] == 1, data[7], machine, flags, shoff, shentsize, shnum, shstrndx)
    if shentsize != 64 or shnum == 0 or shoff < 64 or hdr.image_size > MAX_IMAGE_SIZE:
        raise NotAnImage(
            f"{where}: implausible section header table (e_shoff={shoff:#x}, e_shnum={shnum}, "
            f"e_shentsize={shentsize})"
        )
    return hdr


class _SourceStream(io.RawIOBase):
    """A seekable read-only stream over a ByteSource, for pyelftools."""

    def __init__(self, source: ByteSource, size: int):
        self._src = source
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = pos
        elif whence == io.SEEK_CUR:
            self._pos += pos
        else:
            self._pos = self._size + pos
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self._size - self._pos
        n = max(0, min(n, self._size - self._pos))
        data = self._src.read(self._pos, n) if n else b""
        self._pos += len(data)
        return data

    def readinto(self, b: "WriteableBuffer") -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


def section_table(source: ByteSource, header: ElfHeader, size: int, name: str) -> SectionTable:
    """name -> (file offset, size, type) of every section (struct; pyelftools for anything
    unusual)."""
    secs = _section_table_fast(source, header, size)
    return secs if secs is not None else _section_table_elftools(source, size, name)


def _section_table_fast(source: ByteSource, h: ElfHeader, size: int) -> SectionTable | None:
    """The section table in two reads (the table, .shstrtab) with `struct`.

    Only for a table that is wholly readable and plainly well formed (every
    name NUL-terminated inside .shstrtab); anything else returns None and
    the pyelftools path below decides, with its own error messages. Both
    paths give the same names, offsets and sizes for a well-formed table.
    """
    if h.shstrndx >= h.shnum or h.shentsize != _SHDR.size:
        return None
    try:
        table = source.read(h.shoff, h.shnum * h.shentsize)
    except StackMapsError:
        return None
    if len(table) != h.shnum * h.shentsize:
        return None
    shdr = _SHDR if h.little_endian else _SHDR_BE
    rows = list(shdr.iter_unpack(table))
    str_off, str_size = rows[h.shstrndx][4], rows[h.shstrndx][5]
    if str_off + str_size > size or str_size > MAX_SECTION_READ:
        return None
    try:
        strtab = source.read(str_off, str_size) if str_size else b""
    except StackMapsError:
        return None
    secs = {}
    find = strtab.find
    for name_off, typ, _flags, _addr, off, size, _link, _info, _align, _ent in rows:
        end = find(b"\0", name_off) if name_off < str_size else -1
        if end < 0:
            return None
        secs[strtab[name_off:end].decode("utf-8", "replace")] = (off, size, typ)
    return secs


def _section_table_elftools(source: ByteSource, size: int, name: str) -> SectionTable:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(cast(IO[bytes], _SourceStream(source, size)))
        secs: SectionTable = {}
        for i in range(elf.num_sections()):
            sh = elf._get_section_header(i)
            name = elf._get_section_name(sh)
            secs[name] = (sh["sh_offset"], sh["sh_size"], sh["sh_type"])
    except StackMapsError:
        raise
    except (ELFError, Exception) as e:  # pyelftools raises many types on garbage
        raise NotAnImage(f"{name}: bad ELF section headers: {e}") from None
    return secs
