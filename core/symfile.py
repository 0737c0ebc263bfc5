"""Symbol files for the debuggers: each image's function symbols as a tiny ELF.

GDB and LLDB name a pc only from a symbol table they were given. A Wasmtime
image in memory (compiled in-process, or a `.cwasm` mapped from a file) is no
module to them, so their stop line, `frame`, `x/i`, `disassemble` and LLDB's
`bt` show `??` for wasm code. `symbol_elf` writes, for one image, an ELF with
an empty (SHT_NOBITS) `.text` of the image's `.text` size at address 0 and a
`.symtab` with every function of the image; the debugger places it at the
image's `.text` address (`add-symbol-file FILE ADDR`, `target modules load
--slide ADDR`). The bytes of the code stay the inferior's.

`SymbolFiles` keeps one private directory of those files for the images a
debugger was told about, says which to add and which to drop when the images
change, and removes the files it no longer needs (and all of them at exit).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterable
from typing import NamedTuple

from .errors import StackMapsError
from .image import WasmtimeImage

_SHT_PROGBITS, _SHT_SYMTAB, _SHT_STRTAB, _SHT_NOBITS = 1, 2, 3, 8
_SHF_WRITE, _SHF_ALLOC, _SHF_EXECINSTR = 0x1, 0x2, 0x4
_STB_GLOBAL, _STT_FUNC = 1, 2
_ET_EXEC = 2
_SYM_SIZE = 24
_SAFE_FILE = re.compile(r"[^A-Za-z0-9._+-]")
_SHDR_SIZE = 64
# Control characters (not NUL, the terminator) become '?' in symbol names: the
# debugger prints them as they are.
_NAME_SAFE = bytes(c if c == 0 or (0x20 <= c < 0x7F or c >= 0x80) else ord("?") for c in range(256))


class Symbols(NamedTuple):
    """A symbol file written for one image, and where the debugger is to place it."""

    path: str
    text_address: int  # runtime address of the image's .text (the file's .text is at 0)
    functions: int


def symbol_elf(image: WasmtimeImage) -> tuple[bytes, int]:
    """An ELF64 with just `.text` (NOBITS, at 0) and the image's function symbols;
    and how many symbols it has (LLDB places it with a slide)."""
    return _elf([(image, 0)])


def combined_symbol_elf(images: list[WasmtimeImage]) -> tuple[bytes, int]:
    """One ELF64 for many images: a `.text.N` section at each image's runtime `.text`
    address and every function at its runtime address. GDB takes it as one objfile:
    adding 200 files one by one costs it seconds, one file with 200 sections does not."""
    placed = [(img, img.text_start) for img in images if img.text_start is not None]
    return _elf([(img, addr) for img, addr in placed if addr is not None])


def _elf(entries: list[tuple[WasmtimeImage, int]]) -> tuple[bytes, int]:
    """The ELF of `entries` (image, address of its .text section); and its symbol count."""
    e = "<" if not entries or entries[0][0].header.little_endian else ">"
    sym = struct.Struct(e + "IBBHQQ")
    info = (_STB_GLOBAL << 4) | _STT_FUNC
    syms = bytearray(_SYM_SIZE)  # symbol 0: the null symbol
    strtab = bytearray(b"\0")
    texts = []  # (name offset in .shstrtab, address, size)
    shstrtab = bytearray(b"\0")
    n = 0
    for k, (image, address) in enumerate(entries):
        _, text_size = image.text_range
        table = image.functions
        raw, names = table.symbols(), table.strtab
        base = len(strtab)
        strtab += (names or b"\0").translate(_NAME_SAFE)
        if not strtab.endswith(b"\0"):
            strtab += b"\0"
        for value, size, st_name in raw:
            # Only symbols inside .text, named in .strtab (the image may be damaged).
            if value >= text_size or size > text_size - value or base + st_name >= len(strtab):
                continue
            syms += sym.pack(base + st_name, info, 0, 1 + k, address + value, size)
            n += 1
        texts.append((len(shstrtab), address, text_size))
        shstrtab += (b".text" if len(entries) == 1 else f".text.{k}".encode()) + b"\0"
    names_at = {}
    for name in (".symtab", ".strtab", ".shstrtab"):
        names_at[name] = len(shstrtab)
        shstrtab += name.encode() + b"\0"

    body = bytearray(64)
    sym_off = len(body)
    body += syms
    str_off = len(body)
    body += strtab
    shstr_off = len(body)
    body += shstrtab
    body += b"\0" * (-len(body) % 8)
    shoff = len(body)
    shdr = struct.Struct(e + "IIQQQQIIQQ")
    body += bytes(_SHDR_SIZE)  # section 0: null
    # Writable, so that LLDB reads the code from the inferior: it reads a read-only
    # section from the file, and this one's bytes would be zeros (its unwinder then
    # misreads every wasm function's prologue).
    flags = _SHF_WRITE | _SHF_ALLOC | _SHF_EXECINSTR
    for name_at, address, size in texts:
        body += shdr.pack(name_at, _SHT_NOBITS, flags, address, sym_off, size, 0, 0, 16, 0)
    strtab_index = len(texts) + 2
    body += shdr.pack(
        names_at[".symtab"], _SHT_SYMTAB, 0, 0, sym_off, len(syms), strtab_index, 1, 8, _SYM_SIZE
    )
    body += shdr.pack(names_at[".strtab"], _SHT_STRTAB, 0, 0, str_off, len(strtab), 0, 0, 1, 0)
    body += shdr.pack(
        names_at[".shstrtab"], _SHT_STRTAB, 0, 0, shstr_off, len(shstrtab), 0, 0, 1, 0
    )
    ident = b"\x7fELF" + bytes([2, 1 if e == "<" else 2, 1, 0]) + bytes(8)
    machine = entries[0][0].header.machine if entries else 0
    header = struct.pack(
        e + "16sHHIQQQIHHHHHH",
        ident,
        _ET_EXEC,
        machine,
        1,  # EV_CURRENT
        0,  # entry
        0,  # no program headers
        shoff,
        0,
        64,
        0,
        0,
        _SHDR_SIZE,
        len(texts) + 4,
        len(texts) + 3,  # .shstrtab
    )
    body[:64] = header
    return bytes(body), n


_PREFIX = "wasmtime-stackmaps-symbols-"


def _remove_orphans() -> None:
    """Remove the symbol directories of debuggers that are gone (LLDB runs no atexit)."""
    tmp = tempfile.gettempdir()
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(_PREFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(_PREFIX) :].split("-", 1)[0]
        path = os.path.join(tmp, name)
        try:
            if not pid.isdigit() or os.stat(path).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _key(image: WasmtimeImage) -> tuple:
    return (image.base, image.identity())


class SymbolFiles:
    """The symbol files of the images a debugger knows, in one private directory."""

    def __init__(self) -> None:
        self._dir: str | None = None
        self.loaded: dict[tuple, Symbols] = {}
        self.combined: Symbols | None = None  # GDB: the one file of every image

    def _directory(self) -> str:
        if self._dir is None or not os.path.isdir(self._dir):
            _remove_orphans()
            # Mode 0700; the debugger's pid in the name tells orphans from live ones.
            self._dir = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
            atexit.register(shutil.rmtree, self._dir, True)
        return self._dir

    def close(self) -> None:
        """Remove every file (the debugger is going away)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self.loaded.clear()
        self.combined = None

    def changes(
        self, images: Iterable[WasmtimeImage]
    ) -> tuple[list[tuple[tuple, WasmtimeImage]], list[tuple[tuple, Symbols]]]:
        """(images to add, symbol files to drop) to match `images`.

        Pulley images are left out (their code is bytecode: the pcs are the
        interpreter's), and so are images without a load address.
        """
        want = self.wanted(images)
        add = [(k, img) for k, img in want.items() if k not in self.loaded]
        drop = [(k, s) for k, s in self.loaded.items() if k not in want]
        return add, drop

    def wanted(self, images: Iterable[WasmtimeImage]) -> dict[tuple, WasmtimeImage]:
        """The images that get symbols (native code with a load address), by key."""
        return {_key(img): img for img in images if img.base is not None and not img.pulley}

    def write_combined(self, wanted: dict[tuple, WasmtimeImage]) -> Symbols:
        """One file for all of `wanted` (combined_symbol_elf), now the loaded one; the
        caller drops the previous one (`combined` before the call) and `discard`s it."""
        data, n = combined_symbol_elf(list(wanted.values()))
        path = os.path.join(tempfile.mkdtemp(prefix="all-", dir=self._directory()), "wasm-images")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        s = Symbols(path, 0, n)
        self.combined = s
        self.loaded = dict.fromkeys(wanted, s)
        return s

    def discard(self, s: Symbols) -> None:
        """Remove a combined file the debugger no longer has."""
        shutil.rmtree(os.path.dirname(s.path), ignore_errors=True)
        if self.combined == s:
            self.combined = None
            self.loaded = {}

    def write(self, key: tuple, image: WasmtimeImage) -> Symbols:
        """Write the symbol file of `image`; the caller hands it to the debugger."""
        text_start = image.text_start
        if text_start is None:
            raise StackMapsError(f"{image.name}: no load address")
        data, n = symbol_elf(image)
        # The debuggers show the file's name as the module's (LLDB: `deep_trap.cwasm`name`):
        # the image's own file name, or where it is mapped; one directory per file.
        base = image.base or 0
        name = _SAFE_FILE.sub("_", os.path.basename(image.path))[:64] if image.path else ""
        if name.strip(".") == "":
            name = ""
        path = os.path.join(
            tempfile.mkdtemp(prefix=f"{base:x}-", dir=self._directory()),
            name or f"wasm-image-{base:x}",
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        s = Symbols(path, text_start, n)
        self.loaded[key] = s
        return s

    def forget(self, key: tuple) -> None:
        """The debugger dropped this file: remove it."""
        s = self.loaded.pop(key, None)
        if s is not None:
            shutil.rmtree(os.path.dirname(s.path), ignore_errors=True)

    def all(self) -> list[tuple[tuple, Symbols]]:
        """Every file (the inferior exited): the caller drops each, then `forget`s it."""
        return list(self.loaded.items())
