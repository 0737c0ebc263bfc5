"""A Wasmtime code image (the ELF that Wasmtime compiles to and maps to run).

Read from any ByteSource: a `.cwasm` file, bytes, or a debugger's memory. The
ELF header and the section header table are core/elf.py's; the big tables (.symtab, the stack map section) are read as raw bytes in one
read each and indexed, so opening a large image stays cheap. Nothing is read
before it is asked for.
"""

import re
from enum import StrEnum
from typing import NamedTuple

from .elf import EM_NAMES, MAX_SECTION_READ, SHT_NOBITS, parse_elf_header, section_table
from .errors import CorruptSection, NotAnImage
from .source import ByteSource, BytesSource, FileSource
from .stackmap import SECTION_NAME, StackMapEntry, StackMapSection
from .symbols import Function, FunctionTable

__all__ = ["Function", "WasmtimeImage", "parse_elf_header", "parse_engine"]

EF_WASMTIME_MODULE = 1 << 0
EF_WASMTIME_COMPONENT = 1 << 1
EF_WASMTIME_PULLEY32 = 1 << 2
EF_WASMTIME_PULLEY64 = 1 << 3


class EngineInfo(NamedTuple):
    version: str  # as Wasmtime wrote it: "49" (38 on), "37.0.2" (32-37); docs/format.md §1
    target: str | None  # target triple

    @property
    def major(self) -> int | None:
        m = re.match(r"([0-9]{1,9})", self.version)
        return int(m.group(1)) if m else None


class ImageOrigin(StrEnum):
    """Where an image's bytes come from (the JSON `loaded_from` of an image is its value)."""

    FILE = "file"  # a file opened by path
    MEMORY = "memory"  # the inferior's memory, through the debugger
    BYTES = "bytes"  # bytes in hand (tests, tools)
    USER = "user"  # a file named by `stackmap load FILE ADDR`


class WasmtimeImage:
    """One Wasmtime code image. `base` is its load address when read from a process."""

    def __init__(self, source: ByteSource, base: int | None = None, path: str | None = None):
        self.source = source
        self.base = base
        self.path = path
        self.name = path or source.name
        self.loaded_from = (
            ImageOrigin.FILE
            if isinstance(source, FileSource)
            else (ImageOrigin.BYTES if isinstance(source, BytesSource) else ImageOrigin.MEMORY)
        )
        head = source.read(0, 64) if source.size is None or source.size >= 64 else b""
        self.header = parse_elf_header(head, self.name)
        self.size = self.header.image_size
        if source.size is not None and source.size < self.size:
            raise NotAnImage(
                f"{self.name}: section header table ends at {self.size:#x}, past the end of the "
                f"data ({source.size:#x} bytes): truncated image"
            )
        if source.size is None:
            source.size = self.size
        self._sections: dict[str, tuple[int, int]] | None = None
        # Sections whose declared bytes lie past the end of the image: left out of `sections`.
        self.outside: dict[str, tuple[int, int]] = {}
        self._engine: EngineInfo | None = None
        self._functions: FunctionTable | None = None
        self._stackmaps: StackMapSection | None = None
        self._stackmaps_loaded = False

    @classmethod
    def from_file(cls, path: str) -> "WasmtimeImage":
        return cls(FileSource(path), path=path)

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "<bytes>") -> "WasmtimeImage":
        return cls(BytesSource(data, name))

    # -- header facts ---------------------------------------------------------
    @property
    def flags(self) -> int:
        return self.header.flags

    @property
    def kind(self) -> str:
        return "component" if self.flags & EF_WASMTIME_COMPONENT else "module"

    @property
    def pulley(self) -> int | None:
        """32 or 64 for Pulley bytecode images, None for native code."""
        if self.flags & EF_WASMTIME_PULLEY64:
            return 64
        if self.flags & EF_WASMTIME_PULLEY32:
            return 32
        return None

    @property
    def arch(self) -> str:
        """x86_64, aarch64, riscv64, s390x, pulley32 or pulley64 (Pulley bits first)."""
        if self.pulley:
            return f"pulley{self.pulley}"
        return EM_NAMES.get(self.header.machine, f"e_machine={self.header.machine}")

    # -- sections -------------------------------------------------------------
    @property
    def sections(self) -> dict[str, tuple[int, int]]:
        """name -> (file offset, size), from the section header table (struct; pyelftools
        for anything unusual)."""
        if self._sections is None:
            secs = section_table(self.source, self.header, self.size, self.name)
            sections: dict[str, tuple[int, int]] = {}
            for name, (off, size, typ) in secs.items():
                if typ == "SHT_NOBITS" or typ == SHT_NOBITS:
                    continue
                if off + size > self.size:
                    # Ignore what lies outside the image rather than read past it; a needed
                    # section that is missing gives its own error below (validate_image names it).
                    self.outside[name] = (off, size)
                    continue
                sections[name] = (off, size)
            self._sections = sections
        return self._sections

    def _section_bounds(self, name: str) -> tuple[int, int] | None:
        """(offset, size) of section `name`, or None; CorruptSection when it claims more
        than MAX_SECTION_READ bytes."""
        sec = self.sections.get(name)
        if sec is not None and sec[1] > MAX_SECTION_READ:
            raise CorruptSection(f"{self.name}: section {name} claims {sec[1]} bytes")
        return sec

    def section_data(self, name: str) -> bytes | None:
        sec = self._section_bounds(name)
        return None if sec is None else self.source.read(*sec)

    def section_view(self, name: str) -> memoryview | None:
        """Like section_data, without a copy where the source allows (a file: mmap pages)."""
        sec = self._section_bounds(name)
        return None if sec is None else self.source.view(*sec)

    @property
    def text_range(self) -> tuple[int, int]:
        """(file offset, size) of .text."""
        sec = self.sections.get(".text")
        if sec is None:
            raise NotAnImage(f"{self.name}: no .text section")
        return sec

    @property
    def text_start(self) -> int | None:
        """Runtime address of .text (None when the image has no load address)."""
        return None if self.base is None else self.base + self.text_range[0]

    def text_offset(self, address: int) -> int | None:
        """Text offset of a runtime address, or None if it is not in .text."""
        if self.base is None:
            return None
        off, size = self.text_range
        rel = address - self.base - off
        return rel if 0 <= rel < size else None

    # -- engine ---------------------------------------------------------------
    @property
    def engine(self) -> EngineInfo:
        if self._engine is None:
            data = self.section_data(".wasmtime.engine")
            if data is None:
                self._engine = EngineInfo("unknown", None)
            else:
                self._engine = parse_engine(data, self.name)
        return self._engine

    # -- functions ------------------------------------------------------------
    @property
    def functions(self) -> FunctionTable:
        """STT_FUNC symbols sorted by text offset (a compact sequence; Functions made lazily)."""
        if self._functions is None:
            symtab = self.section_view(".symtab")
            if symtab is None:
                self._functions = FunctionTable(b"", b"", True, self.name)
            else:
                self._functions = FunctionTable(
                    symtab,
                    self.section_data(".strtab") or b"",
                    self.header.little_endian,
                    self.name,
                )
        return self._functions

    def function_at(self, text_offset: int) -> Function | None:
        """The function whose [start, end) contains `text_offset` (binary search)."""
        return self.functions.at(text_offset)

    def find_function(self, spec: str) -> list[Function]:
        """Functions matching a name, a name suffix (`::build`) or a wasm index."""
        return self.functions.find(spec)

    # -- stack maps -----------------------------------------------------------
    @property
    def stackmaps(self) -> StackMapSection | None:
        """The indexed `.wasmtime.stackmap` section, or None when the image has none."""
        if not self._stackmaps_loaded:
            data = self.section_view(SECTION_NAME)
            self._stackmaps = (
                None if data is None else StackMapSection(data, f"{self.name}: {SECTION_NAME}")
            )
            self._stackmaps_loaded = True
        return self._stackmaps

    def no_stackmaps_reason(self) -> str:
        """Why an image has no stack map section (call when `stackmaps` is None)."""
        major = self.engine.major
        if major is not None and major <= 31:
            return (
                f"stack maps are stored in .wasmtime.info in Wasmtime <= 31 "
                f"(this image is from {self.engine.version}), not supported"
            )
        return "no call site in this image has live GC references (no .wasmtime.stackmap section)"

    def lookup(self, text_offset: int) -> StackMapEntry | None:
        sm = self.stackmaps
        return sm.lookup(text_offset) if sm is not None else None

    def describe_no_map(self, text_offset: int) -> str:
        """Why there is no stack map at `text_offset`."""
        off, size = self.text_range
        if not 0 <= text_offset < size:
            return f"outside .text (size {size:#x})"
        if self.stackmaps is None:
            return self.no_stackmaps_reason()
        return "not a safepoint: not the return address of a call with live GC references"

    def identity(self) -> tuple[object, ...]:
        """What identifies this image's contents cheaply (for caches keyed by base)."""
        return (self.header, self.engine.version)


def parse_engine(data: bytes, where: str = "image") -> EngineInfo:
    """`.wasmtime.engine`: u8 format version, u8 len, version string, postcard record."""
    if len(data) < 2:
        raise CorruptSection(f"{where}: .wasmtime.engine is {len(data)} bytes")
    n = data[1]
    if 2 + n > len(data):
        raise CorruptSection(f"{where}: .wasmtime.engine version string runs past the section")
    version = data[2 : 2 + n].decode("utf-8", "replace")
    pos = 2 + n
    length, shift = 0, 0
    target = None
    while pos < len(data) and shift < 35:
        b = data[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if pos + length <= len(data) and length <= 256:
                target = data[pos : pos + length].decode("utf-8", "replace")
            break
    return EngineInfo(version, target)
