"""The LLDB adapter over the core (loaded by lldb_plugin/stackmaps.py once the core is importable).

Reads top to bottom: the Target protocol over LLDB's SB API (live process or core
file), then the `stackmap` container command and its subcommands, whose parsing,
walking and output all come from the core, exactly as in the GDB plugin.
"""

import os
import shlex
import sys
from collections.abc import Iterator

import lldb
import wasmtime_stackmaps as wsm
from wasmtime_stackmaps.abi import ADDRESS_LIMIT, WORD_MASK
from wasmtime_stackmaps.arch import ARCHES, arch_from_triple, host_frames, register
from wasmtime_stackmaps.commands import (
    SUBCOMMANDS,
    TOP_SUMMARY,
    TOP_SYNTAX,
    CommandFailed,
    context_text,
    run,
    subcommand_help,
    subcommand_list,
)
from wasmtime_stackmaps.errors import NoProcess, ReadError, StackMapsError
from wasmtime_stackmaps.failsafe import bug_line
from wasmtime_stackmaps.regions import core_regions
from wasmtime_stackmaps.render import Style, color_wanted
from wasmtime_stackmaps.session import Session
from wasmtime_stackmaps.symfile import SymbolFiles
from wasmtime_stackmaps.target import DebuggerFrame, Region, Target, ThreadState
from wasmtime_stackmaps.text import safe
from wasmtime_stackmaps.width import effective_width

_STOPPED = (lldb.eStateStopped, lldb.eStateCrashed, lldb.eStateSuspended)


def _read(frame, name: str) -> int | None:
    v = frame.FindRegister(name)
    if not v.IsValid():
        return None
    err = lldb.SBError()
    val = v.GetValueAsUnsigned(err, 0)
    return val if err.Success() else None


def _reg(frame, names: tuple[str, ...] | None) -> int | None:
    """Value of the first register of `names` readable in `frame`, or None."""
    return register(lambda name: _read(frame, name), names)


class LldbTarget(Target):
    """The Target protocol over an LLDB process (live or core file)."""

    def __init__(self, exe_ctx, debugger):
        target = exe_ctx.GetTarget() if exe_ctx is not None else lldb.SBTarget()
        if not target.IsValid():
            target = debugger.GetSelectedTarget()
        process = target.GetProcess() if target.IsValid() else lldb.SBProcess()
        if not process.IsValid() or process.GetState() in (
            lldb.eStateInvalid,
            lldb.eStateUnloaded,
            lldb.eStateConnected,
            lldb.eStateExited,
            lldb.eStateDetached,
        ):
            raise NoProcess("no process: run the program, attach, or load a core file")
        if process.GetState() not in _STOPPED:
            raise StackMapsError("the process is running: stop it first")
        if process.GetNumThreads() == 0:
            raise StackMapsError("the process has no threads (not running?)")
        self.target = target
        self.process = process
        self.arch = arch_from_triple(target.GetTriple() or "")
        self.regs = ARCHES[self.arch].lldb
        self.little_endian = target.GetByteOrder() != lldb.eByteOrderBig
        self.pointer_size = target.GetAddressByteSize() or 8
        core = process.GetCoreFile()
        self._core = core.fullpath if core.IsValid() and core.fullpath else None
        self._core_files = None
        exe = target.GetExecutable()
        self._exe = exe.fullpath if exe.IsValid() else None
        self.description = f"process {process.GetProcessID()}"  # as GDB says it
        self.stopping_thread: int | None = None

    def read_memory(self, address, size):
        if size == 0:
            return b""
        if address < 0 or size < 0 or address + size > ADDRESS_LIMIT:
            raise ReadError(f"cannot read {size} bytes at {address:#x}", address)
        err = lldb.SBError()
        data = self.process.ReadMemory(address, size, err)
        if err.Fail() or data is None or len(data) != size:
            why = err.GetCString() if err.Fail() else "short read"
            raise ReadError(f"cannot read {size} bytes at {address:#x}: {why}", address)
        return bytes(data)

    def regions(self):
        infos = self.process.GetMemoryRegions()
        n = infos.GetSize() if infos is not None else 0
        if n == 0:
            return None  # this process plugin cannot tell (some remotes)
        out = []
        info = lldb.SBMemoryRegionInfo()
        for i in range(n):
            if not infos.GetMemoryRegionAtIndex(i, info) or not info.IsMapped():
                continue
            perms = (
                ("r" if info.IsReadable() else "-")
                + ("w" if info.IsWritable() else "-")
                + ("x" if info.IsExecutable() else "-")
            )
            name = info.GetName()
            path = name if name and not name.startswith("[") else None
            out.append(Region(info.GetRegionBase(), info.GetRegionEnd(), perms, path))
        if self._core and out and not any(r.path for r in out):
            out = self._name_from_core(out)
        return out or None

    def _name_from_core(self, regions):
        """LLDB names no region of an ELF core: take the files from its NT_FILE note.

        A `.cwasm` mapped from a file is left out of kernel cores but for its
        first page; the core reads its sections from the named file.
        """
        if self._core_files is None:
            self._core_files = {
                r.start: os.fsdecode(r.path) for r in core_regions(self._core) or () if r.path
            }
        return [r._replace(path=self._core_files.get(r.start)) for r in regions]

    def identity(self):
        return (
            self.target.GetProcess().GetUniqueID(),
            self.process.GetProcessID(),
            self._core or self._exe,
        )

    def selected_thread(self):
        if self.stopping_thread is not None:  # in a breakpoint callback
            return self.stopping_thread
        return self.process.GetSelectedThread().GetIndexID()

    # -- breakpoints (gc-watch, watch): thin; the logic is in the core -----------------
    def set_breakpoint(self, address, on_hit):
        bp = self.target.BreakpointCreateByAddress(address)
        if not bp.IsValid() or bp.GetNumLocations() == 0:
            raise StackMapsError(f"cannot set a breakpoint at {address:#x}")
        _CALLBACKS[("b", bp.GetID())] = on_hit
        self._command(f"breakpoint command add -F {_MODULE[0]}._breakpoint_hit {bp.GetID()}")
        return ("b", bp.GetID())

    def set_watchpoint(self, address, size, on_hit):
        err = lldb.SBError()
        wp = self.target.WatchAddress(address, size, False, True, err)
        if err.Fail() or not wp.IsValid():
            raise StackMapsError(f"cannot watch {size} bytes at {address:#x}: {err}")
        _CALLBACKS[("w", wp.GetID())] = on_hit
        self._command(f"watchpoint command add -F {_MODULE[0]}._watchpoint_hit {wp.GetID()}")
        return ("w", wp.GetID())

    def _command(self, cmd):
        res = lldb.SBCommandReturnObject()
        self.target.GetDebugger().GetCommandInterpreter().HandleCommand(cmd, res)
        if not res.Succeeded():
            raise StackMapsError(f"{cmd}: {res.GetError()}")

    def delete_breakpoint(self, handle):
        if _CALLBACKS.pop(handle, None) is None:
            return
        if handle[0] == "b":
            bp = self.target.FindBreakpointByID(handle[1])
            if bp.IsValid():
                bp.SetEnabled(False)  # deleted at the next command: not in its callback
            _DEAD.append((self.target, handle))
        else:
            self.target.DeleteWatchpoint(handle[1])

    def find_functions(self, text):
        found = self.target.FindGlobalFunctions(text, 0, lldb.eMatchTypeRegex)
        out = []
        for i in range(found.GetSize()):
            sym = found.GetContextAtIndex(i).GetSymbol()
            addr = sym.GetStartAddress().GetLoadAddress(self.target)
            if sym.IsValid() and addr != lldb.LLDB_INVALID_ADDRESS:
                out.append((sym.GetName(), addr))
        return out

    def select_frame(self, thread, pc, fp):
        th = self.process.GetThreadByIndexID(thread)
        for i in range(th.GetNumFrames() if th.IsValid() else 0):
            f = th.GetFrameAtIndex(i)
            if f.GetPC() & WORD_MASK == pc and (fp is None or _reg(f, self.regs.fp) == fp):
                self.process.SetSelectedThread(th)
                th.SetSelectedFrame(i)
                return True
        return False

    def write(self, text):
        print(text, flush=True)

    def stop_info(self):
        th = self.process.GetSelectedThread()
        if not th.IsValid():
            return None
        # The kernel's siginfo, as GDB's $_siginfo (live processes: SIGTRAP at a
        # breakpoint too); cores only have the stop reason's signal.
        signo = None
        si = th.GetSiginfo()
        if si.IsValid() and si.GetError().Success():
            signo = si.GetChildMemberWithName("si_signo").GetValueAsSigned(0) or None
        if (
            signo is None
            and th.GetStopReason() == lldb.eStopReasonSignal
            and th.GetStopReasonDataCount() > 0
        ):
            signo = th.GetStopReasonDataAtIndex(0) or None
        f = th.GetFrameAtIndex(0)
        pc = f.GetPC() & WORD_MASK if f.IsValid() else None
        return {"thread": th.GetIndexID(), "pc": pc, "signal": signo}

    def process_info(self):
        return {
            "pid": self.process.GetProcessID() or None,
            "executable": self._exe,
            "core_file": self._core,
        }

    def selected_frame(self):
        th = self.process.GetSelectedThread()
        f = th.GetSelectedFrame() if th.IsValid() else None
        if f is None or not f.IsValid():
            return None
        r = self.regs
        return DebuggerFrame(
            f.GetFrameID(), f.GetPC() & WORD_MASK, _reg(f, r.fp), _reg(f, r.sp), f.GetFunctionName()
        )

    def threads(self):
        r = self.regs
        out = []
        for th in self.process:
            if not th.IsValid():
                continue
            f = th.GetFrameAtIndex(0)
            if not f.IsValid():
                continue
            pc = _reg(f, r.pc)
            out.append(
                ThreadState(
                    th.GetIndexID(),
                    th.GetThreadID(),
                    th.GetName(),
                    pc if pc is not None else f.GetPC() & WORD_MASK,
                    _reg(f, r.fp) or 0,
                    _reg(f, r.sp) or 0,
                    _reg(f, r.lr),
                    self._frames_lister(th),
                )
            )
        out.sort(key=lambda t: t.num)
        return out

    def _frames_lister(self, thread):
        """LLDB's own frames of `thread` up to the first frame in a Wasmtime image."""
        r = self.regs

        def unwind() -> Iterator[DebuggerFrame]:
            i = 0
            while True:
                f = thread.GetFrameAtIndex(i)  # unwinds lazily, one frame at a time
                if not f.IsValid():
                    return
                yield DebuggerFrame(i, f.GetPC() & WORD_MASK, _reg(f, r.fp), _reg(f, r.sp), None)
                i += 1

        def frames() -> list[DebuggerFrame]:
            return host_frames(unwind(), lambda pc: _session().registry.image_at(pc) is not None)

        return frames


# One Session for the life of the core package: a second import of this
# file (reload) keeps the images already found.
# -- breakpoint callbacks -------------------------------------------------------------------
_CALLBACKS: dict = {}  # ("b"|"w", id) -> the core's on_hit
_DEAD: list = []  # (target, handle) of breakpoints to delete outside their callback
_MODULE = ["stackmaps"]  # the plugin module LLDB reaches the callbacks through (install)


def _reap() -> None:
    while _DEAD:
        target, (_, bid) = _DEAD.pop()
        if target.IsValid():
            target.BreakpointDelete(bid)


def _hit(key, frame) -> bool:
    on_hit = _CALLBACKS.get(key)
    if on_hit is None:
        return False
    thread = frame.GetThread()
    process = thread.GetProcess()
    try:
        target = LldbTarget(lldb.SBExecutionContext(frame), process.GetTarget().GetDebugger())
        target.stopping_thread = thread.GetIndexID()
        return bool(on_hit(target))
    except StackMapsError as e:
        print(f"stackmap: {e}", flush=True)
        return False


def _breakpoint_hit(frame, bp_loc, extra_args, internal_dict):
    """LLDB's callback for the core's breakpoints: False lets the process go on."""
    stop = _hit(("b", bp_loc.GetBreakpoint().GetID()), frame)
    _share_new_keys(internal_dict)
    return stop


def _watchpoint_hit(frame, wp, internal_dict):
    stop = _hit(("w", wp.GetID()), frame)
    _share_new_keys(internal_dict)
    return stop


def _share_new_keys(internal_dict) -> None:
    """LLDB 19's wrapper around a `-F` callback copies back every key of the session dict
    from its own globals when the callback returns: a breakpoint command added inside the
    callback (a new key) would raise KeyError there and lose our return value."""
    wrapper_globals = sys._getframe(2).f_globals
    for key in list(internal_dict):
        if key not in wrapper_globals:
            wrapper_globals[key] = internal_dict[key]


def _session() -> "Session":
    s = getattr(wsm, "_lldb_session", None)
    if s is None:
        s = wsm._lldb_session = Session()
    return s


def _is_terminal(debugger) -> bool:
    try:
        fh = debugger.GetOutputFileHandle()
        return fh is not None and os.isatty(fh.fileno())
    except Exception:  # no real file behind LLDB's output (IDE, test harness)
        return False


class _Selection:
    """Put LLDB's selected thread and frame back as they were after a command."""

    def __init__(self, exe_ctx):
        self.process = exe_ctx.GetProcess() if exe_ctx is not None else lldb.SBProcess()
        self.thread_id = self.frame_idx = None

    def __enter__(self):
        if self.process.IsValid():
            th = self.process.GetSelectedThread()
            if th.IsValid():
                self.thread_id = th.GetIndexID()
                self.frame_idx = th.GetSelectedFrame().GetFrameID()
        return self

    def __exit__(self, *exc):
        if self.thread_id is None or not self.process.IsValid():
            return False
        if self.process.GetSelectedThread().GetIndexID() != self.thread_id:
            self.process.SetSelectedThreadByIndexID(self.thread_id)
        th = self.process.GetThreadByIndexID(self.thread_id)
        if th.IsValid() and th.GetSelectedFrame().GetFrameID() != self.frame_idx:
            th.SetSelectedFrame(self.frame_idx)
        return False


def _lldb_width(debugger) -> int:
    """LLDB's terminal width (its `term-width` setting, the terminal's when there is one)."""
    try:
        return effective_width(debugger.GetTerminalWidth())
    except Exception:  # an LLDB without the call
        return effective_width(None)


def _run(debugger, args: list[str], exe_ctx, result) -> None:
    # One line for every failure, never a Python traceback (run() turns bugs into
    # StackMapsError too; this catches what happens around it).
    try:
        style = Style(
            color_wanted(debugger.GetUseColor()) and _is_terminal(debugger), _lldb_width(debugger)
        )
        _reap()
        with _Selection(exe_ctx):
            text = run(_session(), args, lambda: LldbTarget(exe_ctx, debugger), style)
    except StackMapsError as e:
        if isinstance(e, CommandFailed):
            result.AppendMessage(e.document)
        result.SetError(f"stackmap: {safe(str(e))}")
        return
    except ValueError as e:  # unbalanced quotes
        result.SetError(f"stackmap: {safe(str(e))}")
        return
    except Exception as e:
        result.SetError(bug_line(e, "stackmap"))
        return
    finally:
        # Images a command found (a core file opened without a stop): LLDB names them too.
        target = exe_ctx.GetTarget() if exe_ctx is not None else debugger.GetSelectedTarget()
        if target.IsValid() and target.GetProcess().IsValid():
            _sync_symbols(target)
    if text:
        result.AppendMessage(text)
    result.SetStatus(lldb.eReturnStatusSuccessFinishResult)


_SHORT_HELP = TOP_SUMMARY
# LLDB prints a container's long help after "Syntax: ", then its own list of the
# subcommands: the text after the syntax is the same as GDB's `help stackmap`.
_LONG_HELP = f"{TOP_SYNTAX}\n\n{subcommand_list()}"


# LLDB's longest command-line word we take (a path is at most 4096 bytes).
_WORD_LIMIT = 1 << 16


def _words(args) -> list[str]:
    """The words of a parsed command (an SBStructuredData array of strings)."""
    words = []
    for i in range(args.GetSize()):
        word = args.GetItemAtIndex(i).GetStringValue(_WORD_LIMIT)
        if len(word) >= _WORD_LIMIT - 1:
            raise ValueError(f"an argument longer than {_WORD_LIMIT - 2} bytes")
        words.append(word)
    return words


class _Sub:
    """One `stackmap NAME` command, registered as a parsed command (`command script add
    -p`) that declares no options: LLDB then hands every word to the core's argparse as
    it was typed (LLDB's quoting, as shlex does it) and shows our help without the "Expects
    'raw' input" note it puts on raw script commands. An LLDB without -p (before 18)
    registers the same class as a raw command: `__call__` gets the command string."""

    name = ""

    def __init__(self, debugger, internal_dict):
        pass

    def get_args_definition(self):
        # Any number of words: a parsed command that declares none refuses every argument.
        # LLDB shows it as the `Syntax:` line, the one line of its own in our help.
        return [[{"arg_type": lldb.eArgTypeValue, "repeat": "star"}]]

    def __call__(self, debugger, args, exe_ctx, result):
        try:
            words = shlex.split(args) if isinstance(args, str) else _words(args)
        except ValueError as e:  # unbalanced quotes, an oversized word
            result.SetError(f"stackmap: {safe(str(e))}")
            return
        _run(debugger, [self.name, *words], exe_ctx, result)

    def get_short_help(self):
        return SUBCOMMANDS[self.name] + "."

    def get_long_help(self):
        # GDB's `help stackmap NAME` is this summary, a blank line and the argparse help;
        # LLDB prints the short help, its `Syntax:` line, then this.
        return "\n" + subcommand_help(self.name).split("\n\n", 1)[1] + "\n"


# -- stop hook: symbols for LLDB's own commands ----------------------------------------


def _symbols() -> SymbolFiles:
    s = getattr(wsm, "_lldb_symbols", None)
    if s is None:
        s = wsm._lldb_symbols = SymbolFiles()
    return s


def _sync_symbols(target) -> None:
    """Give LLDB each image's symbol table at its .text address (core/symfile.py), so its
    own `bt`, `frame select`, `image lookup` and `disassemble` name wasm code; drop the
    modules of images gone."""
    files = _symbols()
    modules = wsm.__dict__.setdefault("_lldb_modules", {})
    add, drop = files.changes(_session().registry)
    for key, _sym in drop:
        module = modules.pop(key, None)
        if module is not None and module.IsValid():
            target.RemoveModule(module)
        files.forget(key)
    for key, img in add:
        try:
            sym = files.write(key, img)
        except (StackMapsError, OSError):
            continue
        module = target.AddModule(sym.path, None, None)
        if not module.IsValid():
            files.forget(key)
            continue
        # The file's .text is at 0: sliding it by the image's .text address places it.
        if target.SetModuleLoadAddress(module, sym.text_address).Fail():
            target.RemoveModule(module)
            files.forget(key)
            continue
        modules[key] = module


def _on_stop(exe_ctx, stream) -> None:
    target = exe_ctx.GetTarget()
    if not target.IsValid():
        return
    try:
        _session().discover(LldbTarget(exe_ctx, target.GetDebugger()))
    except StackMapsError:
        return
    _sync_symbols(target)
    if _session().context:  # `stackmap context on`
        debugger = target.GetDebugger()
        style = Style(
            color_wanted(debugger.GetUseColor()) and _is_terminal(debugger), _lldb_width(debugger)
        )
        try:
            with _Selection(exe_ctx):
                text = context_text(_session(), LldbTarget(exe_ctx, debugger), style)
        except StackMapsError:
            return
        if text:
            stream.Print(text + "\n")


class StopHook:
    """`target stop-hook add -P`: runs after every stop, before LLDB shows the frame."""

    def __init__(self, target, extra_args, internal_dict):
        pass

    def handle_stop(self, exe_ctx, stream):
        try:
            _on_stop(exe_ctx, stream)
        except Exception as e:  # a stop hook must never break the stop
            stream.Print(f"wasmtime-stackmaps: stop hook failed: {e}\n")
        return True  # stay stopped


# One class per subcommand: LLDB registers a command by its class's dotted name.
COMMAND_CLASSES = {
    name: type(f"Stackmap_{name.replace('-', '_')}", (_Sub,), {"name": name})
    for name in SUBCOMMANDS
}


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "'") + '"'


def install(debugger, module_name: str) -> None:
    """Register the `stackmap` container and its subcommands, whose classes are
    reachable as `module_name.Stackmap_<sub>` in LLDB's Python session."""
    ci = debugger.GetCommandInterpreter()
    # The breakpoint callbacks, reachable by LLDB as `module_name._breakpoint_hit`.
    _MODULE[0] = module_name
    plugin = sys.modules.get(module_name)
    if plugin is not None:
        plugin._breakpoint_hit = _breakpoint_hit
        plugin._watchpoint_hit = _watchpoint_hit

    def do(cmd):
        res = lldb.SBCommandReturnObject()
        ci.HandleCommand(cmd, res)
        if not res.Succeeded():
            print(
                f"wasmtime-stackmaps: '{cmd.split(' -', 1)[0]}' failed: "
                f"{(res.GetError() or '').strip()}"
            )
        return res.Succeeded()

    # Loading twice: overwrite the container and its subcommands (-o).
    do(f"command container add -o -h {_quote(_SHORT_HELP)} -H {_quote(_LONG_HELP)} stackmap")
    parsed = True
    for name, cls in COMMAND_CLASSES.items():
        add = f"command script add -o -c {module_name}.{cls.__name__} stackmap {name}"
        if parsed:
            res = lldb.SBCommandReturnObject()
            ci.HandleCommand(add.replace(" -c ", " -p -c ", 1), res)
            if res.Succeeded():
                continue
            parsed = False  # an LLDB before 18: raw commands
        do(add)
    # The symbol files go with the debugger (LLDB runs no atexit handlers); LLDB 19 has
    # only the one destroy callback, which then is ours.
    add_cb = getattr(debugger, "AddDestroyCallback", None) or debugger.SetDestroyCallback
    add_cb(lambda *_: _symbols().close())
    # One stop hook per target (a target made later inherits the dummy target's).
    res = lldb.SBCommandReturnObject()
    ci.HandleCommand("target stop-hook list", res)
    if f"{module_name}.StopHook" not in (res.GetOutput() or ""):
        do(f"target stop-hook add -P {module_name}.StopHook")
