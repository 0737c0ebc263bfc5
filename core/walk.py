"""Walking wasm frames by frame pointer, and finding every wasm activation of a thread.

The frames and activations found are core/frames.py's types.

Frame record layout (x86_64, aarch64, riscv64; docs/format.md §4): at FP the
caller's FP, at FP+8 the return address; the caller's SP is FP+16. A call
from a frame whose SP is S pushes a record at S-16, so for a callee of a
frame at a safepoint `callee_fp + 16 == fp - frame_size` exactly: the walk
checks it and the stack scan uses it to validate candidates.
"""

from collections.abc import Callable

from .abi import FRAME_RECORD_SIZE, RETURN_ADDRESS_AT, SAVED_FP_AT, VMGCREF_SIZE
from .arch import ARCHES, strip_pac
from .discover import ImageRegistry
from .errors import ReadError, StackMapsError
from .frames import Activation, ActivationEnd, ActivationSource, Slot, WasmFrame
from .gcref import decode_gcref
from .image import WasmtimeImage
from .stackread import Seek, words_above
from .storeexits import native_exit_activations
from .target import MemoryCache, Region, Target, ThreadState

DEFAULT_MAX_DEPTH = 100_000
MAX_FRAME_BYTES = 64 * 1024 * 1024  # a single step of the FP chain larger than this is junk
MAX_STACK_SCAN = 8 * 1024 * 1024


def caller_of(
    arch: str,
    read_u64: Callable[[int], int],
    read_code: Callable[[int, int], bytes],
    image: WasmtimeImage,
    pc: int,
    fp: int,
    sp: int,
    lr: int | None,
    innermost: bool,
) -> tuple[int, int, int, str | None]:
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
        elif ARCHES[arch].ret_words and f is not None and lr is not None:
            # Instructions are little-endian on every architecture we walk.
            code = int.from_bytes(read_code(pc, 4), "little")
            if at_start or code in ARCHES[arch].ret_words:
                return strip_pac(arch, lr), fp, sp, "prologue/epilogue"
    ra = read_u64(fp + RETURN_ADDRESS_AT)
    return strip_pac(arch, ra), read_u64(fp + SAVED_FP_AT), fp + FRAME_RECORD_SIZE, None


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
    end = ActivationEnd.LEFT_WASM
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
            and callee_fp + FRAME_RECORD_SIZE != fp - frame.entry.frame_size
        ):
            frame.note = (
                f"callee frame record at {callee_fp:#x} does not sit at SP-16 "
                f"(SP={fp - frame.entry.frame_size:#x}): frame pointer suspect"
            )
        if len(frames) >= max_depth:
            end = ActivationEnd.DEPTH_LIMIT
            break
        inner = thread if frame.innermost else None  # its registers are the frame's
        if inner is None and fp in seen:
            frame.error = f"frame pointer loop: {fp:#x} seen before"
            end = ActivationEnd.FP_LOOP
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
                inner.sp if inner is not None else fp,
                inner.lr if inner is not None else None,
                inner is not None,
            )
        except ReadError as e:
            frame.error = f"frame record at fp {fp:#x} is unreadable ({e})"
            end = ActivationEnd.UNREADABLE_RECORD
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
            end = ActivationEnd.NON_MONOTONIC
            break
        pc, fp = ra, next_fp
    _read_slots(mem, frames)
    source = ActivationSource.REGISTERS if innermost else ActivationSource.DEBUGGER
    return Activation(frames, source, end)


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
                raw = int.from_bytes(block[off : off + VMGCREF_SIZE], mem.byteorder)
                f.slots.append(Slot(off, sp + off, raw, decode_gcref(raw)))
            else:
                f.slots.append(Slot(off, sp + off, None, None))
        if block is None:
            f.error = f"stack memory {sp:#x}..{f.fp:#x} is unreadable"


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
    base, words = words_above(mem, regions, thread.sp, limit, target.little_endian)
    if len(words) < 2:
        return []
    lo, hi = base, base + 8 * len(words)
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
        off = img.text_offset(ra)
        try:
            entry = img.lookup(off) if off is not None else None
        except StackMapsError:  # a corrupt map: the walk shows it on the frame
            entry = None
        if entry is not None and a + FRAME_RECORD_SIZE != fp - entry.frame_size:
            continue
        act = walk_chain(mem, target, registry, ra, fp, False, max_depth=max_depth)
        if not _clean(act, registry):
            continue
        fps = {f.fp for f in act.frames}
        if fps & covered or any(lo_fp < fp < hi_fp for lo_fp, hi_fp in covered_spans):
            continue
        covered |= fps
        covered_spans.append((act.frames[0].fp, act.frames[-1].fp))
        out.append(Activation(act.frames, ActivationSource.SCAN, act.end))
    return out


def _clean(act: Activation, registry: ImageRegistry) -> bool:
    if not act.frames or act.end is not ActivationEnd.LEFT_WASM:
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

    def add(act: Activation) -> None:
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
            if len(act.frames) == 1 and act.end is ActivationEnd.UNREADABLE_RECORD:
                continue  # the same kind of guess: no frame record at its FP
            for f in act.frames:
                f.debugger_level = df.level if f is act.frames[0] else None
            add(act)
    if scan:
        for act in scan_stack(
            mem, target, registry, thread, regions, covered, covered_spans, max_depth
        ):
            acts.append(act)
    else:
        # Without the scan, what the debugger's unwinder did not reach (LLDB stops in a
        # Python host's interpreter loop; an older activation in another store) starts
        # where Wasmtime's backtrace does: at the exit records of the stores the stack names.
        seek = Seek(mem, target, registry, max_depth)
        for act in native_exit_activations(seek, thread, regions):
            if not covered & {f.fp for f in act.frames}:
                add(act)
    # Innermost first: activations deeper in the stack have lower FPs.
    acts.sort(key=lambda a: a.frames[0].fp)
    number_frames(acts, thread.num)
    return acts


def number_frames(acts: list[Activation], thread: int | None) -> None:
    """Frame levels across a thread's activations (innermost first), and their owner."""
    level = 0
    for n, act in enumerate(acts):
        for f in act.frames:
            f.level = level
            f.thread = thread
            f.activation = n
            level += 1
