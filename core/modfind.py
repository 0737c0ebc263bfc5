"""Finding the wasm module a process runs, and checking it matches the code image.

Where a user has the module: a path given with `stackmap module FILE`, or
the process's command line (`wasmtime run ... prog.wat`): `/proc/PID/cmdline`
for a live local process; for a core, the argument strings on the process's
initial stack (found below NT_AUXV's AT_EXECFN by the first argument of
NT_PRPSINFO's `pr_psargs`), else `pr_psargs` itself (the kernel keeps only
its first 80 bytes). Relative paths of a core's command line are taken from
the debugger's working directory (a core does not record the process's).
`.wat` text is compiled with the `wasmtime` Python package's `wat2wasm` when
it is importable.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from .target import ByteOrder
from .wasmparse import WasmModule, WasmParseError, parse_module

if TYPE_CHECKING:
    from .image import WasmtimeImage

Read = Callable[[int, int], bytes]

MAX_MODULE_FILE = 256 << 20
WASM_SUFFIXES = (".wasm", ".wat", ".wast")
AT_EXECFN = 31
ARGV_SCAN = 256 * 1024  # argument + environment strings the kernel copies: 2 MiB at most
MAX_ARGS = 4096
_ENV = re.compile(r"[A-Z_][A-Z0-9_]*=")


class LoadedModule(NamedTuple):
    path: str
    module: WasmModule
    source: str  # "user" | "command line"


class ModuleError(Exception):
    pass


def load_module(path: str, source: str) -> LoadedModule:
    """Read and parse a .wasm (or compile a .wat) file; ModuleError with one line."""
    try:
        size = os.path.getsize(path)
        if size > MAX_MODULE_FILE:
            raise ModuleError(f"{path}: {size} bytes, larger than {MAX_MODULE_FILE} allowed")
        with open(path, "rb") as fh:
            data = fh.read(MAX_MODULE_FILE + 1)
    except OSError as e:
        raise ModuleError(f"cannot read {path}: {e.strerror or e}") from None
    if not data.startswith(b"\0asm"):
        data = wat_to_wasm(path, data)
    try:
        return LoadedModule(path, parse_module(data), source)
    except WasmParseError as e:
        raise ModuleError(f"{path}: {e}") from None


def wat_to_wasm(path: str, data: bytes) -> bytes:
    try:
        import wasmtime  # type: ignore[import-not-found,unused-ignore]
    except Exception:
        raise ModuleError(
            f"{path} is WebAssembly text and the wasmtime Python package is not importable "
            f"here to compile it: give the .wasm (e.g. `wasm-tools parse {os.path.basename(path)}"
            f" -o out.wasm`) to 'stackmap module'"
        ) from None
    try:
        return bytes(wasmtime.wat2wasm(data.decode("utf-8", "replace")))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModuleError(f"{path}: not a wasm binary, and not valid text: {first[:200]}") from None


def core_notes(core_path: str) -> tuple[str | None, int | None]:
    """(pr_psargs of NT_PRPSINFO, at most 80 bytes; AT_EXECFN of NT_AUXV) of a core."""
    psargs = execfn = None
    try:
        from elftools.elf.elffile import ELFFile

        with open(core_path, "rb") as fh:
            elf = ELFFile(fh)
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_NOTE":
                    continue
                for note in seg.iter_notes():  # type: ignore[attr-defined]
                    if note["n_type"] == "NT_PRPSINFO":
                        raw = note["n_desc"]["pr_psargs"]
                        if isinstance(raw, bytes):
                            raw = raw.decode("utf-8", "replace")
                        psargs = raw.split("\0", 1)[0]
                    elif note["n_type"] == "NT_AUXV" and isinstance(note["n_desc"], bytes):
                        d = note["n_desc"]
                        order = ByteOrder(elf.little_endian)  # the core's own byte order
                        for i in range(0, len(d) - 15, 16):
                            if order.u64(d, i) == AT_EXECFN:
                                execfn = order.u64(d, i + 8)
    except Exception:
        return psargs, execfn
    return psargs, execfn


def argv_from_stack(read: Read, execfn: int, psargs: str) -> list[str] | None:
    """The full argv from the process's initial stack, where the kernel put the argument
    strings (then the environment, then the AT_EXECFN string): found by the first argument
    as psargs shows it; the strings after it up to the first NAME=value one (upper-case
    NAME) past what psargs shows. A program argument looking like an environment string
    past those 80 bytes ends the list early (a .wasm named before it is still found)."""
    first = psargs.split(" ", 1)[0].encode()
    if not first:
        return None
    # Page by page down from AT_EXECFN: the stack mapping may start within the scan.
    pages = []
    end = execfn
    while execfn - end < ARGV_SCAN and end > 0:
        lo = max(0, (end - 1) // 4096 * 4096)
        try:
            pages.append(read(lo, end - lo))
        except Exception:
            break
        end = lo
    block = b"".join(reversed(pages))
    at = block.find(first + b"\0")
    while at >= 0:
        strings = block[at:].split(b"\0")
        args: list[str] = []
        covered = 0
        for s in strings[:MAX_ARGS]:
            text = s.decode("utf-8", "replace")
            # psargs is a prefix of the arguments: an argument may look like NAME=value
            # (gc=y) before that prefix is covered, an environment string only after it.
            if covered >= len(psargs) and _ENV.match(text):
                break
            args.append(text)
            covered += len(text) + 1
        if " ".join(args).startswith(psargs.rstrip()):
            return args
        at = block.find(first + b"\0", at + 1)
    return None


def command_line(
    process_info: dict[str, Any], read: Read | None = None
) -> tuple[list[str] | None, str | None, str]:
    """(argv, cwd, where from) of the debugged process, as far as it can be read."""
    core = process_info.get("core_file")
    if core:
        args, execfn = core_notes(core)
        if args is None:
            return None, None, f"the core file {core} has no readable NT_PRPSINFO"
        if read is not None and execfn:
            full = argv_from_stack(read, execfn, args)
            if full:
                return full, None, "the argument strings on the core's initial stack"
        return args.split(), None, "the core file's NT_PRPSINFO (first 80 bytes)"
    pid = process_info.get("pid")
    if not pid:
        return None, None, "no process id"
    try:
        with open(f"/proc/{int(pid)}/cmdline", "rb") as fh:
            raw = fh.read(1 << 20)
        cwd = os.readlink(f"/proc/{int(pid)}/cwd")
    except (OSError, ValueError) as e:
        return None, None, f"/proc/{pid} is not readable here ({e.__class__.__name__})"
    argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    return argv, cwd, f"/proc/{pid}/cmdline"


def modules_from_command_line(
    process_info: dict[str, Any], read: Read | None = None
) -> tuple[list[str], str]:
    """Existing .wasm/.wat files named on the command line, and a note on where from."""
    argv, cwd, where = command_line(process_info, read)
    if argv is None:
        return [], where
    found = []
    for a in argv[1:]:
        if not a.lower().endswith(WASM_SUFFIXES):
            continue
        path = a if os.path.isabs(a) or cwd is None else os.path.join(cwd, a)
        if os.path.isfile(path):
            found.append(path)
    if not found:
        return [], f"no .wasm/.wat file named on the command line ({where})"
    return found, where


def check_against_images(module: WasmModule, images: Iterable[WasmtimeImage]) -> tuple[bool, str]:
    """Does some `wasm[M]` of the images have exactly the module's defined functions (by
    index, and by name where both have one)?"""
    seen = []
    for img in images:
        try:
            funcs = img.functions
        except Exception:
            continue
        by_module: dict[int, list] = {}
        for f in funcs:
            if f.module is not None and f.index is not None:
                by_module.setdefault(f.module, []).append(f)
        for m, fs in sorted(by_module.items()):
            idx = {f.index for f in fs}
            seen.append(f"wasm[{m}] has {len(idx)} functions")
            lo, hi = module.imported_funcs, module.total_funcs
            if len(idx) != module.defined_funcs or not all(lo <= i < hi for i in idx):
                continue
            bad = [f for f in fs if not _names_agree(f.name, module.func_names.get(f.index))]
            if bad:
                seen[-1] += f" (name of function {bad[0].index} differs)"
                continue
            return True, f"matches wasm[{m}] ({len(idx)} functions)"
    return False, (
        f"module has {module.defined_funcs} defined functions "
        f"({module.imported_funcs} imported); "
        + ("; ".join(seen) if seen else "no wasm functions in the images")
    )


def _names_agree(symbol: str, name: str | None) -> bool:
    if not name or "::" not in symbol:
        return True
    parts = symbol.split("::", 2)
    if len(parts) < 3:
        return True  # the image has no name for it: nothing to compare
    tail = parts[2]
    return tail == name or name.startswith(tail) or tail.startswith(name[:8])
