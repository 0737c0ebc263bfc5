"""What triage checks in a core file before any debugger sees it: that it is one, whole,
and whose program it is.

Read with `struct` and bounded reads only (the program header count and every
note are checked against the bytes present). The answers are the same whichever
debugger runs next, so triage fails the same way under GDB and LLDB.
"""

import os
import struct
from collections.abc import Iterator
from typing import NamedTuple

from .errors import NotAnImage, StackMapsError
from .source import check_input_file
from .text import safe

ET_CORE = 4
PT_LOAD, PT_NOTE = 1, 4
NT_PRPSINFO = 3
NT_FILE = 0x46494C45
_MAX_NOTES = 16 << 20  # bytes of notes read at most
_MAX_PHDRS = 1 << 20


class CoreInfo(NamedTuple):
    program: str | None  # NT_PRPSINFO pr_fname: the program's name (15 characters at most)
    args: str | None  # NT_PRPSINFO pr_psargs: the start of its command line
    files: list[str]  # NT_FILE: every mapped file


def inspect_core(path: str) -> CoreInfo:
    """CoreInfo of an ELF64 core file; StackMapsError (one line) if it is not a whole one."""
    st = check_input_file(path, "core file")
    shown = safe(path)
    size = st.st_size
    with open(path, "rb") as f:
        head = f.read(64)
        if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] not in (1, 2):
            raise NotAnImage(f"{shown}: not a core file (not a 64-bit ELF file)")
        e = "<" if head[5] == 1 else ">"
        (e_type,) = struct.unpack_from(e + "H", head, 16)
        if e_type != ET_CORE:
            raise NotAnImage(f"{shown}: not a core file (an ELF file of type {e_type})")
        (phoff,) = struct.unpack_from(e + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(e + "HH", head, 54)
        if phentsize != 56 or phnum == 0 or phnum > _MAX_PHDRS or phoff + 56 * phnum > size:
            raise NotAnImage(f"{shown}: truncated or damaged core file (program headers)")
        f.seek(phoff)
        table = f.read(56 * phnum)
        notes = []
        for i in range(phnum):
            p_type, _fl, off, vaddr, _pa, filesz, _memsz, _al = struct.unpack_from(
                e + "IIQQQQQQ", table, 56 * i
            )
            if p_type in (PT_LOAD, PT_NOTE) and off + filesz > size:
                raise NotAnImage(
                    f"{shown}: truncated core file: the segment at {vaddr:#x} needs "
                    f"{off + filesz} bytes, the file has {size}"
                )
            if p_type == PT_NOTE and filesz <= _MAX_NOTES:
                f.seek(off)
                notes.append(f.read(filesz))
    program = args = None
    files: list[str] = []
    for blob in notes:
        for ntype, desc in _notes(blob, e):
            if ntype == NT_PRPSINFO and len(desc) >= 136:
                program = _cstr(desc[40:56])
                args = _cstr(desc[56:136])
            elif ntype == NT_FILE:
                files = _nt_file(desc, e)
    return CoreInfo(program, args, files)


def _cstr(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def _notes(blob: bytes, e: str) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 12 <= len(blob):
        namesz, descsz, ntype = struct.unpack_from(e + "III", blob, pos)
        pos += 12 + (namesz + 3) // 4 * 4
        if pos + descsz > len(blob):
            return
        yield ntype, blob[pos : pos + descsz]
        pos += (descsz + 3) // 4 * 4


def _nt_file(desc: bytes, e: str) -> list[str]:
    if len(desc) < 16:
        return []
    (count,) = struct.unpack_from(e + "Q", desc, 0)
    names_at = 16 + 24 * count
    if names_at > len(desc):
        return []
    return [os.fsdecode(n) for n in desc[names_at:].split(b"\0")[:count]]


def exe_mismatch(core: CoreInfo, exe: str) -> str | None:
    """Why `exe` is not the program that dumped `core` (None when it may be, or the core
    does not say). The program is recognised by its path among the mapped files, or by
    its name (pr_fname, the first 15 characters; or argv[0] of pr_psargs)."""
    if not core.files and not core.program and not core.args:
        return None
    real = os.path.realpath(exe)
    if real in core.files or os.path.abspath(exe) in core.files:
        return None
    names = {os.path.basename(exe), os.path.basename(real)}
    if core.program and any(n[:15] == core.program for n in names):
        return None
    argv0 = (core.args or "").split(" ", 1)[0]
    if argv0 and os.path.basename(argv0) in names:
        return None
    said = core.program or os.path.basename(argv0) or "?"
    return (
        f"--exe {safe(exe)} is not the program that dumped this core (the core names "
        f"{safe(said)!r}{', ' + safe(argv0) if argv0 else ''}): give that program's path"
    )


def check_core(path: str, exe: str | None) -> None:
    """Raise StackMapsError (one line) unless `path` is a whole core file of `exe`."""
    info = inspect_core(path)
    if exe is not None:
        why = exe_mismatch(info, exe)
        if why:
            raise StackMapsError(why)
