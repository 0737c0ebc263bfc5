"""Walking wasm frames by frame pointer, and finding every wasm activation of a thread.

Frame record layout (x86_64, aarch64, riscv64; docs/format.md §4): at FP the
caller's FP, at FP+8 the return address; the caller's SP is FP+16. A call
from a frame whose SP is S pushes a record at S-16, so for a callee of a
frame at a safepoint `callee_fp + 16 == fp - frame_size` exactly: the walk
checks it and the stack scan uses it to validate candidates.
"""

import struct
import weakref
from typing import NamedTuple

from .discover import ImageRegistry
from .errors import ReadError, StackMapsError
from .gcref import GcRef, decode_gcref
from .image import Function, WasmtimeImage
from .stackmap import StackMapEntry
from .target import MemoryCache, Region, Target, ThreadState
from .traps import WasmOffsets

DEFAULT_MAX_DEPTH = 100_000
MAX_FRAME_BYTES = 64 * 1024 * 1024  # a single step of the FP chain larger than this is junk
MAX_STACK_SCAN = 8 * 1024 * 1024

# User-space addresses on aarch64 Linux fit in 48 bits; the bits above carry a
# pointer-authentication code on return addresses signed with PAC.
_PAC_MASK = (1 << 48) - 1


class Slot(NamedTuple):
    offset: int  # from SP
    address: int
    raw: int | None  # None when unreadable
    ref: GcRef | None


class WasmFrame:
    """One frame whose pc lies in a Wasmtime image's .text."""

    __slots__ = (
        "pc",
        "fp",
        "image",
        "function",
        "text_offset",
        "innermost",
        "entry",
        "slots",
        "error",
        "note",
        "level",
        "thread",
        "activation",
        "debugger_level",
    )

    def __init__(self, pc: int, fp: int, image: WasmtimeImage, innermost: bool):
        self.pc = pc
        self.fp = fp
        self.image = image
        self.text_offset = image.text_offset(pc)
        self.function: Function | None = image.function_at(self.text_offset)
        self.innermost = innermost  # pc came from registers: not a return address
        self.entry: StackMapEntry | None = None
        self.slots: list[Slot] = []
        self.error: str | None = None  # something wrong with this frame (walk goes on)
        self.note: str | None = None
        self.level = 0
        self.thread: int | None = None
        self.activation = 0
        self.debugger_level: int | None = None

    @property
    def is_wasm_function(self) -> bool:
        return self.function is not None and self.function.is_wasm

    @property
    def function_name(self) -> str | None:
        return self.function.name if self.function else None

    @property
    def frame_size(self) -> int | None:
        return self.entry.frame_size if self.entry else None

    @property
    def sp(self) -> int | None:
        return self.fp - self.entry.frame_size if self.entry else None

    @property
    def safepoint(self) -> bool:
        return self.entry is not None

    @property
    def reason(self) -> str | None:
        """Why this frame has no stack map (None when it has one)."""
        if self.entry is not None:
            return None
        if self.innermost:
            return "innermost frame: pc is at a trap or breakpoint, not a call site"
        if self.error and self.is_wasm_function:
            return "stack map unusable here (see error)"
        if self.function is None:
            return "not in any function of the image"
        if not self.function.is_wasm:
            return "not wasm code: Wasmtime trampoline/builtin (no GC roots)"
        if self.image.stackmaps is None:
            return self.image.no_stackmaps_reason()
        return "call site with no live GC references"


_ADDRMAPS: "weakref.WeakKeyDictionary[WasmtimeImage, WasmOffsets | None]" = (
    weakref.WeakKeyDictionary()
)


def wasm_offset(frame: "WasmFrame") -> int | None:
    """The wasm bytecode offset Wasmtime's own backtrace prints for this frame.

    As Wasmtime's `WasmBacktrace` does: a return address is looked up at pc - 1 (the
    call instruction), the pc of a frame stopped where it is (a trap) at pc itself;
    trampolines and images without `.wasmtime.addrmap` have none (None).
    """
    if not frame.is_wasm_function or frame.text_offset is None:
        return None
    img = frame.image
    if img not in _ADDRMAPS:
        try:
            data = img.section_data(".wasmtime.addrmap")
            _ADDRMAPS[img] = WasmOffsets(data, img.engine.major) if data else None
        except StackMapsError:
            _ADDRMAPS[img] = None
    index = _ADDRMAPS[img]
    if index is None:
        return None
    try:
        return index.lookup(frame.text_offset if frame.innermost else frame.text_offset - 1)
    except StackMapsError:
        return None


class Activation(NamedTuple):
    frames: list[WasmFrame]
    source: str  # "registers" | "debugger" | "scan"
    end: str  # why the walk stopped


def strip_pac(arch: str, address: int) -> int:
    return address & _PAC_MASK if arch == "aarch64" else address


_RET = {"aarch64": (0xD65F03C0, 0xD65F0BFF), "riscv64": (0x00008067,)}


def caller_of(
    arch: str,
    read_u64,
    read_code,
    image: WasmtimeImage,
    pc: int,
    fp: int,
    sp: int,
    lr: int | None,
    innermost: bool,
):
    """One unwind step from a frame in an image: (return address, caller FP, caller SP, how).

    Normally the frame record at FP gives the caller. An innermost frame stopped
    before its record is pushed (first instruction) or after it is popped (at
    `ret`) still/again has the caller's FP in the FP register and the return
    address at SP (x86_64) or in the link register (aarch64, riscv64).
    `read_u64(addr)` and `read_code(addr, n)` read target memory (ReadError).
    """
    if innermost:
        off = image.text_offset(pc)
        f = image.function_at(off) if off is not None else None
        at_start = f is not None and off == f.start
        if arch == "x86_64" and f is not None:
            if at_start or read_code(pc, 1) == b"\xc3":  # first instruction or `ret`
                return read_u64(sp), fp, sp + 8, "prologue/epilogue"
            if off == f.start + 1 and read_code(pc - 1, 1) == b"\x55":  # after `push rbp`
                return read_u64(sp + 8), read_u64(sp), sp + 16, "prologue"
        elif arch in _RET and f is not None and lr is not None:
            code = int.from_bytes(read_code(pc, 4), "little")
            if at_start or code in _RET[arch]:
                return strip_pac(arch, lr), fp, sp, "prologue/epilogue"
    return strip_pac(arch, read_u64(fp + 8)), read_u64(fp), fp + 16, None


def walk_chain(
    mem: MemoryCache,
    target: Target,
    registry: ImageRegistry,
    pc: int,
    fp: int,
    innermost: bool,
    thread: ThreadState | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    seen: set[int] | None = None,
) -> Activation:
    """Frames from (pc, fp) outwards while the pc stays in an image's .text."""
    arch = target.arch
    frames: list[WasmFrame] = []
    seen = set() if seen is None else seen
    end = "left wasm code"
    callee_fp: int | None = None
    while True:
        img = registry.image_at(pc)
        if img is None:
            break
        frame = WasmFrame(pc, fp, img, innermost and not frames)
        frames.append(frame)
        if not frame.innermost and frame.text_offset is not None:
            try:
                frame.entry = img.lookup(frame.text_offset)
            except StackMapsError as e:  # a corrupt map is shown on the frame
                frame.error = str(e)
        if (
            frame.entry is not None
            and callee_fp is not None
            and callee_fp + 16 != fp - frame.entry.frame_size
        ):
            frame.note = (
                f"callee frame record at {callee_fp:#x} does not sit at SP-16 "
                f"(SP={fp - frame.entry.frame_size:#x}): frame pointer suspect"
            )
        if len(frames) >= max_depth:
            end = f"depth limit ({max_depth} frames) reached"
            break
        inner = frame.innermost and thread is not None
        if not inner and fp in seen:
            frame.error = f"frame pointer loop: {fp:#x} seen before"
            end = "frame pointer loop"
            break
        seen.add(fp)
        try:
            ra, next_fp, _sp, how = caller_of(
                arch,
                mem.u64,
                mem.read,
                img,
                pc,
                fp,
                thread.sp if inner else fp,
                thread.lr if inner else None,
                inner,
            )
        except ReadError as e:
            frame.error = f"frame record at fp {fp:#x} is unreadable ({e})"
            end = "unreadable frame record"
            break
        if how is not None:
            frame.note = f"frame record not set up ({how}): caller found from SP"
        callee_fp = fp if how is None else None
        if (
            how is None
            and not fp < next_fp <= fp + MAX_FRAME_BYTES
            and registry.image_at(ra) is not None
        ):
            frame.error = f"caller frame pointer {next_fp:#x} is not above {fp:#x}: corrupt chain"
            end = "non-monotonic frame pointer"
            break
        pc, fp = ra, next_fp
    _read_slots(mem, frames)
    return Activation(frames, "registers" if innermost else "debugger", end)


def _read_slots(mem: MemoryCache, frames: list[WasmFrame]) -> None:
    for f in frames:
        e = f.entry
        if e is None:
            continue
        sp = f.fp - e.frame_size
        try:
            block = mem.read(sp, e.frame_size)  # one read per frame, served from the cache
        except ReadError:
            block = None
        for off in e.offsets:
            if block is not None:
                raw = int.from_bytes(block[off : off + 4], "little")
                f.slots.append(Slot(off, sp + off, raw, decode_gcref(raw)))
            else:
                f.slots.append(Slot(off, sp + off, None, None))
        if block is None:
            f.error = f"stack memory {sp:#x}..{f.fp:#x} is unreadable"


def _stack_bounds(target: Target, regions: list[Region] | None, sp: int):
    if regions:
        for r in regions:
            if r.start <= sp < r.end:
                return sp, r.end
    return sp, sp + MAX_STACK_SCAN


def has_wasm_frames(
    mem: MemoryCache,
    target: Target,
    registry: ImageRegistry,
    thread: ThreadState,
    limit: int = 256 * 1024,
) -> bool:
    """Cheap test at a stop: is the pc in wasm code, or does the top `limit` bytes of
    the stack hold a clean chain of wasm frames (the stack scan's own validation)?

    Used to switch the debugger's frame naming on only where it can matter.
    """
    if registry.image_at(thread.pc) is not None:
        return True
    if not registry.hi:
        return False
    return bool(
        scan_stack(mem, target, registry, thread, None, set(), [], max_depth=1000, limit=limit)
    )


def scan_stack(
    mem: MemoryCache,
    target: Target,
    registry: ImageRegistry,
    thread: ThreadState,
    regions: list[Region] | None,
    covered: set[int],
    covered_spans: list,
    max_depth: int = DEFAULT_MAX_DEPTH,
    limit: int = MAX_STACK_SCAN,
) -> list[Activation]:
    """Find activations the debugger did not reach by scanning the stack for frame records.

    A candidate is a word pair (saved FP, return address into an image) at an
    8-aligned address A above SP. It is accepted when the chain from it is
    clean: increasing FPs, an exact `A + 16 == FP - frame_size` where the
    return address has a map, and an end where control leaves the image from
    a trampoline. Chains already found (`covered` FPs) are skipped.
    """
    lo, hi = _stack_bounds(target, regions, thread.sp)
    hi = min(hi, lo + limit)
    lo -= lo % 8
    # Read up to the end of readable memory, page by page from the chunked cache.
    pos = lo
    parts = []
    while pos < hi:
        n = min(MemoryCache.PAGE - pos % MemoryCache.PAGE, hi - pos)
        try:
            parts.append(mem.read(pos, n))
        except ReadError:
            break
        pos += n
    data = b"".join(parts)
    if len(data) < 16:
        return []
    hi = lo + len(data)
    words = struct.unpack(
        ("<" if target.little_endian else ">") + f"{len(data) // 8}Q",
        data[: len(data) - len(data) % 8],
    )
    out: list[Activation] = []
    tlo, thi = registry.lo, registry.hi
    arch = target.arch
    for i in range(len(words) - 1):
        ra = strip_pac(arch, words[i + 1])
        if not tlo <= ra < thi:
            continue
        fp = words[i]
        a = lo + 8 * i
        if fp in covered or not a < fp < hi:
            continue
        img = registry.image_at(ra)
        if img is None:
            continue
        try:
            entry = img.lookup(img.text_offset(ra))
        except StackMapsError:  # a corrupt map: the walk shows it on the frame
            entry = None
        if entry is not None and a + 16 != fp - entry.frame_size:
            continue
        act = walk_chain(mem, target, registry, ra, fp, False, max_depth=max_depth)
        if not _clean(act, registry):
            continue
        fps = {f.fp for f in act.frames}
        if fps & covered or any(lo_fp < fp < hi_fp for lo_fp, hi_fp in covered_spans):
            continue
        covered |= fps
        covered_spans.append((act.frames[0].fp, act.frames[-1].fp))
        out.append(Activation(act.frames, "scan", act.end))
    return out


def _clean(act: Activation, registry: ImageRegistry) -> bool:
    if not act.frames or act.end != "left wasm code":
        return False
    # Chain faults end the walk early (checked above); a frame's own error (a corrupt
    # map, unreadable slots) does not make the chain doubtful.
    if not any(f.is_wasm_function for f in act.frames):
        return False
    last = act.frames[-1]
    return last.function is not None and not last.function.is_wasm


def thread_activations(
    target: Target,
    registry: ImageRegistry,
    mem: MemoryCache,
    thread: ThreadState,
    regions: list[Region] | None,
    use_debugger_frames: bool = True,
    scan: bool = True,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Activation]:
    """Every wasm activation of a thread, innermost first."""
    acts: list[Activation] = []
    covered: set[int] = set()
    covered_spans: list = []  # (innermost fp, outermost fp) of each activation found

    def add(act: Activation):
        if act.frames:
            acts.append(act)
            covered.update(f.fp for f in act.frames)
            covered_spans.append((act.frames[0].fp, act.frames[-1].fp))

    if registry.image_at(thread.pc) is not None:
        add(walk_chain(mem, target, registry, thread.pc, thread.fp, True, thread, max_depth))
    if use_debugger_frames and thread.frames is not None:
        for df in thread.frames():
            if df.level == 0 or df.fp is None or df.fp in covered:
                continue
            if registry.image_at(df.pc) is None:
                continue
            if df.fp % 8:
                # Not a frame pointer: a debugger that lost its way in host code (no unwind
                # info) lists words of the stack as frames; one may look like a wasm pc.
                continue
            act = walk_chain(mem, target, registry, df.pc, df.fp, False, max_depth=max_depth)
            if act.frames and act.frames[0].fp in covered:
                continue
            if len(act.frames) == 1 and act.end == "unreadable frame record":
                continue  # the same kind of guess: no frame record at its FP
            for f in act.frames:
                f.debugger_level = df.level if f is act.frames[0] else None
            add(act)
    if scan:
        for act in scan_stack(
            mem, target, registry, thread, regions, covered, covered_spans, max_depth
        ):
            acts.append(act)
    # Innermost first: activations deeper in the stack have lower FPs.
    acts.sort(key=lambda a: a.frames[0].fp)
    level = 0
    for n, act in enumerate(acts):
        for f in act.frames:
            f.level = level
            f.thread = thread.num
            f.activation = n
            level += 1
    return acts
