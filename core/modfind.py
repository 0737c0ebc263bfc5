"""Finding the wasm module a process runs, and checking it matches the code image.

Where a user has the module: a path given with `stackmap module FILE`, or
the process's command line (`wasmtime run ... prog.wat`): `/proc/PID/cmdline`
for a live local process, the core file's NT_PRPSINFO `pr_psargs` (the
kernel keeps only its first 80 bytes) for a core. `.wat` text is compiled
with the `wasmtime` Python package's `wat2wasm` when it is importable.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from .wasmparse import WasmModule, WasmParseError, parse_module

MAX_MODULE_FILE = 256 << 20
WASM_SUFFIXES = (".wasm", ".wat", ".wast")


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
        import wasmtime  # type: ignore[import-not-found]
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


def core_psargs(core_path: str) -> str | None:
    """pr_psargs of the core's NT_PRPSINFO note (at most 80 bytes), or None."""
    try:
        from elftools.elf.elffile import ELFFile

        with open(core_path, "rb") as fh:
            elf = ELFFile(fh)
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_NOTE":
                    continue
                for note in seg.iter_notes():
                    if note["n_type"] == "NT_PRPSINFO":
                        raw = note["n_desc"]["pr_psargs"]
                        if isinstance(raw, bytes):
                            raw = raw.decode("utf-8", "replace")
                        return raw.split("\0", 1)[0]
    except Exception:
        return None
    return None


def command_line(process_info: dict) -> tuple[list[str] | None, str | None, str]:
    """(argv, cwd, where from) of the debugged process, as far as it can be read."""
    core = process_info.get("core_file")
    if core:
        args = core_psargs(core)
        if args is None:
            return None, None, f"the core file {core} has no readable NT_PRPSINFO"
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


def modules_from_command_line(process_info: dict) -> tuple[list[str], str]:
    """Existing .wasm/.wat files named on the command line, and a note on where from."""
    argv, cwd, where = command_line(process_info)
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


def check_against_images(module: WasmModule, images) -> tuple[bool, str]:
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
