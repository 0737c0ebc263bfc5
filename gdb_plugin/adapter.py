"""The GDB adapter over the core (loaded by gdb_plugin/stackmaps.py once the core is importable).

Reads top to bottom: the Target protocol over GDB, the `stackmap` commands, the
unwinder that lets GDB's own `bt` walk through wasm frames, the frame filter
that names them, and the events that keep the core's image registry in step.
"""

import re
from collections.abc import Iterator

import gdb
import gdb.unwinder
import wasmtime_stackmaps as wsm
from gdb.FrameDecorator import FrameDecorator
from wasmtime_stackmaps.abi import WORD_MASK
from wasmtime_stackmaps.arch import ARCHES, arch_from_gdb, host_frames, register
from wasmtime_stackmaps.commands import (
    SUBCOMMANDS,
    CommandFailed,
    context_text,
    run,
    subcommand_help,
    top_help,
)
from wasmtime_stackmaps.errors import NoProcess, ReadError, StackMapsError
from wasmtime_stackmaps.failsafe import bug_line
from wasmtime_stackmaps.regions import core_regions, proc_maps
from wasmtime_stackmaps.render import Style, color_wanted
from wasmtime_stackmaps.session import Session
from wasmtime_stackmaps.symfile import SymbolFiles
from wasmtime_stackmaps.target import DebuggerFrame, MemoryCache, Target, ThreadState
from wasmtime_stackmaps.text import safe
from wasmtime_stackmaps.walk import caller_of, has_wasm_frames
from wasmtime_stackmaps.width import effective_width

_SESSION = Session()

# -- the Target protocol over GDB ---------------------------------------------------------


def _arch_of(frame) -> str:
    return arch_from_gdb(frame.architecture().name())


def _read(frame, name: str) -> int | None:
    try:
        return int(frame.read_register(name))
    except (gdb.error, ValueError):
        return None


def _reg(frame, names: tuple[str, ...] | None) -> int | None:
    return register(lambda name: _read(frame, name), names)


class GdbTarget(Target):
    """The Target protocol over a GDB inferior."""

    def __init__(self, inferior, arch: str, little_endian: bool = True, core: str | None = None):
        self.inferior = inferior
        self.arch = arch
        self.regs = ARCHES[arch].gdb
        self.little_endian = little_endian
        self.description = f"process {inferior.pid}"
        self._core = core

    @classmethod
    def selected(cls) -> "GdbTarget":
        """The selected inferior, stopped (StackMapsError when there is none)."""
        inf = gdb.selected_inferior()
        if inf is None or inf.pid == 0 or not inf.threads():
            raise NoProcess("no process: run the program, attach, or load a core file")
        try:
            frame = gdb.selected_frame()
        except gdb.error:
            raise StackMapsError(
                "no frame selected (the process is running or has exited)"
            ) from None
        little = "little" in gdb.execute("show endian", to_string=True)
        return cls(inf, _arch_of(frame), little, _core_file())

    def read_memory(self, address, size):
        try:
            return self.inferior.read_memory(address, size).tobytes()
        except (gdb.MemoryError, gdb.error, OverflowError, ValueError) as e:
            raise ReadError(f"cannot read {size} bytes at {address:#x}: {e}", address) from e

    def regions(self):
        if self._core:
            return core_regions(self._core)
        conn = getattr(self.inferior, "connection", None)
        if conn is not None and getattr(conn, "type", "native") != "native":
            return None  # remote: /proc here is not the target's
        return proc_maps(self.inferior.pid)

    def identity(self):
        return (self.inferior.num, self.inferior.pid, self._core)

    def selected_thread(self):
        return gdb.selected_thread().num

    def stop_info(self):
        th = gdb.selected_thread()
        try:
            signo = int(gdb.parse_and_eval("$_siginfo.si_signo"))
        except (gdb.error, ValueError):
            signo = None
        try:
            pc = int(gdb.newest_frame().pc()) if th is not None else None
        except gdb.error:
            pc = None
        return {"thread": th.num if th else None, "pc": pc, "signal": signo}

    def process_info(self):
        return {
            "pid": self.inferior.pid,
            "executable": self.inferior.progspace.filename,
            "core_file": self._core,
        }

    # -- breakpoints (gc-watch, watch): thin; the logic is in the core -----------------
    def set_breakpoint(self, address, on_hit):
        return _CoreBreakpoint(f"*{address:#x}", on_hit)

    def set_watchpoint(self, address, size, on_hit):
        return _CoreBreakpoint(f"*(unsigned char (*)[{size}]) {address:#x}", on_hit, True)

    def delete_breakpoint(self, handle):
        _delete_later(handle)

    def find_functions(self, text):
        try:
            out = gdb.execute(f"info functions {text}", to_string=True)
        except gdb.error:
            return []
        found = []
        for line in out.splitlines():
            m = re.match(r"(0x[0-9a-f]+)\s+(.*)$", line.strip())
            if m:
                found.append((m.group(2), int(m.group(1), 16)))
        return found

    def select_frame(self, thread, pc, fp):
        global _SELECT_AT_STOP
        _SELECT_AT_STOP = (thread, pc, fp)  # GDB forbids selecting inside Breakpoint.stop
        return True

    def write(self, text):
        gdb.write(text + "\n")

    def selected_frame(self):
        f = gdb.selected_frame()
        return DebuggerFrame(
            f.level(), int(f.pc()), _reg(f, self.regs.fp), _reg(f, self.regs.sp), f.name()
        )

    def threads(self):
        r = self.regs
        out = []
        orig_thread, orig_frame = gdb.selected_thread(), gdb.selected_frame()
        try:
            for th in sorted(self.inferior.threads(), key=lambda t: t.num):
                if not th.is_valid() or th.is_exited():
                    continue
                try:
                    th.switch()
                    f = gdb.newest_frame()
                    pc = int(f.pc())
                except gdb.error:  # GDB cannot even give this thread's pc: leave it out
                    continue
                out.append(
                    ThreadState(
                        th.num,
                        th.ptid[1] or th.ptid[0],
                        th.name,
                        pc,
                        _reg(f, r.fp) or 0,
                        _reg(f, r.sp) or 0,
                        _reg(f, r.lr),
                        self._frames_lister(th),
                    )
                )
        finally:
            _restore(orig_thread, orig_frame)
        return out

    def _frames_lister(self, thread):
        """GDB's own frames of `thread` up to the first frame in a Wasmtime image."""
        regs = self.regs

        def unwind() -> Iterator[DebuggerFrame]:
            f = gdb.newest_frame()
            while f is not None:
                try:
                    df = DebuggerFrame(
                        f.level(), int(f.pc()), _reg(f, regs.fp), _reg(f, regs.sp), None
                    )
                except gdb.error:  # GDB's own unwind gave up here; the scan goes on
                    return
                yield df
                try:
                    f = f.older()
                except gdb.error:
                    return

        def frames() -> list[DebuggerFrame]:
            orig_thread, orig_frame = gdb.selected_thread(), gdb.selected_frame()
            try:
                thread.switch()
                return host_frames(unwind(), lambda pc: _SESSION.registry.image_at(pc) is not None)
            finally:
                _restore(orig_thread, orig_frame)

        return frames


class _CoreBreakpoint(gdb.Breakpoint):
    """An internal breakpoint (or write watchpoint) whose stop() asks the core."""

    def __init__(self, spec, on_hit, watch=False):
        if watch:
            super().__init__(spec, gdb.BP_WATCHPOINT, gdb.WP_WRITE, internal=True)
        else:
            super().__init__(spec, internal=True)
        self.silent = True
        self.on_hit = on_hit
        self.dead = False

    def stop(self):
        if self.dead:
            return False
        _IN_STOP[0] += 1
        try:
            stop = bool(self.on_hit(GdbTarget.selected()))
        except (StackMapsError, gdb.error) as e:
            gdb.write(f"stackmap: {e}\n")
            stop = False
        finally:
            _IN_STOP[0] -= 1
        if not _IN_STOP[0]:
            _settle_deletions(stop)
        return stop


# GDB 13 must not delete a breakpoint inside Breakpoint.stop, and a deletion posted with
# gdb.post_event that is still pending when the process stops runs when GDB exits, and
# crashes it. So: deletions asked for in stop() are posted when the process goes on, kept
# (dead) until the next command or stop otherwise; outside stop() they happen at once.
_IN_STOP = [0]
_DEFERRED: list = []
_ZOMBIES: list = []
_SELECT_AT_STOP = None


def _settle_deletions(stopping: bool) -> None:
    if stopping:
        _ZOMBIES.extend(_DEFERRED)
    else:
        for bp in _DEFERRED + _ZOMBIES:
            gdb.post_event(lambda bp=bp: bp.delete() if bp.is_valid() else None)
        _ZOMBIES.clear()
    _DEFERRED.clear()


def _delete_later(bp) -> None:
    bp.dead = True
    if _IN_STOP[0]:
        _DEFERRED.append(bp)
        return
    for z in [*_ZOMBIES, bp]:
        if z.is_valid():
            z.delete()
    _ZOMBIES.clear()


def _select_requested(_event=None) -> None:
    """Select the frame a breakpoint's check asked for (thread num, pc, fp)."""
    global _SELECT_AT_STOP
    want, _SELECT_AT_STOP = _SELECT_AT_STOP, None
    if want is not None:
        try:
            _select(*want)
        except gdb.error:
            pass  # GDB cannot unwind that far: the stop stays where it is


def _select(thread, pc, fp) -> None:
    th = next((t for t in gdb.selected_inferior().threads() if t.num == thread), None)
    if th is None:
        return
    th.switch()
    f = gdb.newest_frame()
    fpr = ARCHES[_arch_of(f)].gdb.fp
    while f is not None:
        if int(f.pc()) == pc and (fp is None or _reg(f, fpr) == fp):
            f.select()
            return
        f = f.older()


def _restore(thread, frame) -> None:
    """Put the user's selection back; a frame GDB can no longer select is left as is."""
    try:
        thread.switch()
        frame.select()
    except (gdb.error, RuntimeError):
        pass


def _core_file() -> str | None:
    try:
        text = gdb.execute("info target", to_string=True)
    except gdb.error:
        return None
    m = re.search(r"Local core dump file:\s*`([^']+)'", text)
    return m.group(1) if m else None


# -- the `stackmap` commands --------------------------------------------------------------


def _gdb_styling() -> bool:
    try:
        return gdb.parameter("style enabled")
    except (gdb.error, RuntimeError):
        return False


def _gdb_width() -> int:
    """GDB's `width` (None or 0 when unlimited, as in batch mode: then the default)."""
    try:
        return effective_width(gdb.parameter("width"))
    except (gdb.error, RuntimeError, TypeError):
        return effective_width(None)


def _run(argv: str, from_tty: bool = False) -> None:
    # One line for every failure, never a Python exception (run() turns bugs into
    # StackMapsError too; this catches what happens around it).
    try:
        style = Style(color_wanted(_gdb_styling()) and from_tty, _gdb_width())
        text = run(_SESSION, gdb.string_to_argv(argv), GdbTarget.selected, style)
    except StackMapsError as e:
        if isinstance(e, CommandFailed):
            gdb.write(e.document + "\n")
        raise gdb.GdbError(f"stackmap: {safe(str(e))}") from None
    except KeyboardInterrupt:
        raise
    except Exception as e:
        raise gdb.GdbError(bug_line(e, "stackmap")) from None
    if text:
        gdb.write(text + "\n")


class StackmapCommand(gdb.Command):
    """Show live GC references in WebAssembly frames of a Wasmtime process."""

    def __init__(self):
        self.__doc__ = top_help()  # the same text as LLDB's `help stackmap`
        super().__init__("stackmap", gdb.COMMAND_STACK, gdb.COMPLETE_NONE, True)

    def invoke(self, argument, from_tty):
        _run(argument, from_tty)


class _Sub(gdb.Command):
    def __init__(self, name):
        self._name = name
        self.__doc__ = subcommand_help(name)
        super().__init__("stackmap " + name, gdb.COMMAND_STACK)

    def invoke(self, argument, from_tty):
        _run(self._name + " " + argument, from_tty)


# -- the unwinder: GDB's own bt through wasm frames ---------------------------------------


class _FrameId:
    """A frame id: GDB 13 takes any object with `sp` and `pc` (gdb.unwinder.FrameId is 14+)."""

    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class WasmUnwinder(gdb.unwinder.Unwinder):
    """Claims frames whose pc is in a Wasmtime image's .text; O(1) reject otherwise."""

    def __init__(self):
        super().__init__("wasmtime-stackmaps")
        self.mem = None
        self.pc_reg = "pc"  # set to the arch's register name once a process is seen
        self.little_endian = True  # the inferior's, once a process is seen

    def __call__(self, pending):
        reg = _SESSION.registry
        if not reg.hi:
            return None
        # The arch's own pc register: the generic "pc" alias costs several µs in GDB 13.
        pc = int(pending.read_register(self.pc_reg)) & WORD_MASK
        if not reg.lo <= pc < reg.hi:
            return None
        img = reg.image_at(pc)
        if img is None:
            return None
        try:
            arch = _arch_of(pending)
            regs = ARCHES[arch].gdb
            fpr, spr = regs.fp[0], regs.sp[0]
            fp = int(pending.read_register(fpr)) & WORD_MASK
            sp = int(pending.read_register(spr)) & WORD_MASK
            # The link register only matters for the innermost frame (a stop at a
            # function's first instruction or its `ret`); in outer frames this
            # unwinder does not save it, so GDB reports it <not saved> and int()
            # fails, which would hand the frame to GDB's prologue analyser.
            lr = (
                int(pending.read_register(regs.lr[0])) & WORD_MASK
                if regs.lr and pending.level() == 0
                else None
            )
            if self.mem is None:
                target = GdbTarget(gdb.selected_inferior(), arch, self.little_endian)
                self.mem = MemoryCache(target)
            ra, caller_fp, caller_sp, _ = caller_of(
                arch, self.mem.u64, self.mem.read, img, pc, fp, sp, lr, pending.level() == 0
            )
            off = img.text_offset(pc)
            func = img.function_at(off)
            start = img.text_start + (func.start if func else off)
            ptr = gdb.lookup_type("unsigned long")
            info = pending.create_unwind_info(
                _FrameId(gdb.Value(caller_sp).cast(ptr), gdb.Value(start).cast(ptr))
            )
            info.add_saved_register(regs.pc[0], gdb.Value(ra).cast(ptr))
            info.add_saved_register(fpr, gdb.Value(caller_fp).cast(ptr))
            info.add_saved_register(spr, gdb.Value(caller_sp).cast(ptr))
            return info
        except (StackMapsError, gdb.error, ValueError):
            return None


# -- the frame filter: wasm function names in GDB's bt ------------------------------------


class WasmFrameDecorator(FrameDecorator):
    def __init__(self, fobj, name):
        super().__init__(fobj)
        self._wasm_name = name

    def function(self):
        return self._wasm_name


class _GuardedDecorator(FrameDecorator):
    """A frame whose parts GDB may fail to compute (a DWARF expression error): each
    part that fails is left out of the line, not the end of GDB's bt."""

    def function(self):
        try:
            return super().function()
        except gdb.error:
            return None

    def filename(self):
        try:
            return super().filename()
        except gdb.error:
            return None

    def line(self):
        try:
            return super().line()
        except gdb.error:
            return None

    def frame_args(self):
        try:
            return super().frame_args()
        except gdb.error:
            return None

    def frame_locals(self):
        try:
            return super().frame_locals()
        except gdb.error:
            return None


class WasmFrameFilter:
    """Names frames in Wasmtime images: `wasm[0]::function[3]::build`."""

    def __init__(self):
        self.name = "wasmtime-stackmaps"
        self.priority = 100
        self.enabled = False

    def filter(self, frame_iter):
        # Per-frame errors stay on that frame: GDB's own `bt` is never cut short here.
        for fd in _guarded(frame_iter):
            try:
                pc = fd.inferior_frame().pc()
                img = _SESSION.registry.image_at(pc)
                func = img.function_at(img.text_offset(pc)) if img is not None else None
            except (gdb.error, StackMapsError):  # leave the frame as GDB has it
                func = None
            except Exception:  # a bug of ours must not break GDB's bt either
                func = None
            yield (
                WasmFrameDecorator(fd, safe(func.name))
                if func is not None
                else _GuardedDecorator(fd)
            )


# How many frames the frame filter walks itself after GDB's iterator failed.
_MAX_GUARDED_FRAMES = 100_000


def _guarded(frame_iter):
    """GDB's frames for its own bt, carried on past an unwind error where GDB would.

    GDB's FrameIterator computes a frame's caller before handing the frame out; when
    that unwind fails (a DWARF expression error), the frame is lost and the error
    would end the bt. Take over from the last frame handed out: the lost frame, then
    its callers, each looked up the way GDB's own bt does (name first, then caller),
    until GDB cannot go on."""
    last = None
    while True:
        try:
            fd = next(frame_iter)
        except StopIteration:
            return
        except gdb.error:
            break
        last = fd
        yield fd
    frame = last.inferior_frame() if last is not None else None
    for _ in range(_MAX_GUARDED_FRAMES):
        try:
            frame.name()
            frame = frame.older()
        except (gdb.error, AttributeError):
            return
        if frame is None:
            return
        yield FrameDecorator(frame)


_UNWINDER = WasmUnwinder()
_FILTER = WasmFrameFilter()

# -- events: keep the registry in step with the inferior ----------------------------------
# Symbol files live as long as the core package (a second `source` keeps GDB's objfiles).
_SYMBOLS: SymbolFiles = wsm.__dict__.setdefault("_gdb_symbols", SymbolFiles())
_STATE: dict = {}


def _refresh() -> None:
    """Find the images, name their code for GDB, and switch the frame filter."""
    _UNWINDER.mem = None
    try:
        target = GdbTarget.selected()
        _UNWINDER.pc_reg = target.regs.pc[0]
        _UNWINDER.little_endian = target.little_endian
        threads = target.threads()
        _SESSION.discover(target, threads)
    except (StackMapsError, gdb.error):
        return
    _sync_symbols()
    # A frame filter costs GDB ~25% on every bt, wasm or not: on only while the
    # stopped thread's stack refers to wasm code.
    sel = gdb.selected_thread().num
    _FILTER.enabled = any(
        has_wasm_frames(MemoryCache(target), target, _SESSION.registry, t)
        for t in threads
        if t.num == sel
    )
    # Frames GDB cached before the images were known were unwound without us.
    gdb.invalidate_cached_frames()


def _before_stop() -> None:
    """`hook-stop`: GDB runs it before it prints where it stopped (the stop event comes
    after), so the images' symbols are loaded in time to name that line."""
    _STATE["refreshed"] = True
    _refresh()


def _on_stop(_event=None) -> None:
    if not _STATE.pop("refreshed", False):  # no hook-stop of ours (the user has one)
        _refresh()
    if _SESSION.context:
        _show_context()


def _show_context() -> None:
    """`stackmap context on`: the selected thread's roots, after GDB's stop line."""
    try:
        style = Style(color_wanted(_gdb_styling()), _gdb_width())
        text = context_text(_SESSION, GdbTarget.selected(), style)
    except (StackMapsError, gdb.error):
        return  # no process, no images: nothing to show
    if text:
        gdb.write(text + "\n")


def _on_new_objfile(_event=None) -> None:
    if not _STATE.get("adding_symbols"):  # our own symbol files are objfiles too
        _refresh()


def _on_exit(_event=None) -> None:
    _UNWINDER.mem = None
    _SESSION.invalidate()
    _FILTER.enabled = False
    _sync_symbols()


# -- symbols: GDB's own commands name wasm code -------------------------------------------


def _gdb_quote(path: str) -> str:
    if not any(c.isspace() or c in "'\"\\" for c in path):
        return path
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _sync_symbols() -> None:
    """Give GDB the images' symbol tables at their .text addresses (core/symfile.py), so
    the stop line, `frame`, `up`/`down`, `info symbol`, `x/i` and `disassemble` name wasm
    code. One file for all images (one objfile: GDB adds 200 files one by one in
    seconds), replaced when the set of images changes."""
    wanted = _SYMBOLS.wanted(_SESSION.registry)
    if wanted.keys() == _SYMBOLS.loaded.keys():
        return
    old = _SYMBOLS.combined
    _STATE["adding_symbols"] = True
    try:
        if wanted:
            try:
                new = _SYMBOLS.write_combined(wanted)
            except (StackMapsError, OSError):
                new = None  # names then come from the frame filter only
            if new is not None:
                try:
                    gdb.execute(
                        f"with confirm off -- add-symbol-file {_gdb_quote(new.path)}",
                        to_string=True,
                    )
                except gdb.error:
                    _SYMBOLS.discard(new)
        if old is not None:
            try:
                gdb.execute(f"remove-symbol-file {_gdb_quote(old.path)}", to_string=True)
            except gdb.error:
                pass  # GDB dropped it already (a new executable, `symbol-file`)
            _SYMBOLS.discard(old)
    finally:
        _STATE["adding_symbols"] = False


_HOOK_BODY = 'python __import__("wasmtime_stackmaps")._gdb_before_stop()'


def _define_hook_stop() -> None:
    """Our `hook-stop`, unless the user has one (pwndbg, GEF, a ~/.gdbinit): then the
    names come at the stop event, after GDB printed the stop line."""
    try:
        current = gdb.execute("show user hook-stop", to_string=True)
    except gdb.error:
        current = ""
    if current.strip() and _HOOK_BODY not in current:
        return
    wsm._gdb_before_stop = _before_stop
    confirm = gdb.parameter("confirm")
    gdb.execute("set confirm off")
    try:
        gdb.execute(f"define hook-stop\n{_HOOK_BODY}\nend", to_string=True)
    finally:
        if confirm:
            gdb.execute("set confirm on")


def _on_memory_changed(_event=None) -> None:
    _UNWINDER.mem = None


def install() -> None:
    """Register the commands, the unwinder, the frame filter and the event hooks."""
    state = getattr(wsm, "_gdb_state", None)
    if state:  # loaded twice: drop the first load's hooks
        for ev, fn in state["events"]:
            try:
                ev.disconnect(fn)
            except (ValueError, RuntimeError):
                pass
    events = [
        (gdb.events.stop, _on_stop),
        (gdb.events.stop, _select_requested),  # after _on_stop's invalidate_cached_frames
        (gdb.events.exited, _on_exit),
        (gdb.events.new_objfile, _on_new_objfile),
        (gdb.events.memory_changed, _on_memory_changed),
    ]
    for ev, fn in events:
        ev.connect(fn)
    wsm._gdb_state = {"events": events}
    gdb.unwinder.register_unwinder(None, _UNWINDER, replace=True)
    gdb.frame_filters[_FILTER.name] = _FILTER
    _define_hook_stop()
    StackmapCommand()
    for name in SUBCOMMANDS:
        _Sub(name)
    # Already stopped (core file, attach) when the plugin is sourced.
    if gdb.selected_inferior().pid:
        _refresh()
