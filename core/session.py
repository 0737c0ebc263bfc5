"""Per-debugger state that outlives one command: the images of the inferior, kept in step.

A plugin keeps one `Session`; every `stackmap` command (core/commands.py) reads
the inferior through it: `discover` finds the Wasmtime images (memory map, then a
scan back from each thread's pc), `collect` walks the threads' wasm activations
and locates the GC objects their live refs point at.
"""

from collections.abc import Iterable
from typing import NamedTuple

from . import gcheap, heapctx, heapfind
from .discover import ImageRegistry, discover_from_pc, discover_from_regions
from .errors import NoImages, StackMapsError
from .frames import Activation
from .pulley import add_pulley_activations, without
from .pulley import apply_heaps as apply_pulley_heaps
from .suspended import SuspendedStack, suspended_stacks
from .target import MemoryCache, Region, Target, ThreadState
from .walk import DEFAULT_MAX_DEPTH, thread_activations

# How many bytes of an image's start are compared to notice another image mapped there.
HEADER_CHECK = 64


class Collected(NamedTuple):
    """The wasm activations of the walked threads, and what was found around them."""

    threads: list[tuple[ThreadState, list[Activation]]]
    mem: MemoryCache
    heap: gcheap.HeapReport
    suspended: list[SuspendedStack] | None = None  # when every thread was walked


class Session:
    """The image registry of one inferior, and the snapshots taken in this debugger session."""

    def __init__(self) -> None:
        self.registry = ImageRegistry()
        self._identity: tuple | None = None
        self._regions_seen: set[Region] = set()
        self.max_depth = DEFAULT_MAX_DEPTH
        self.last_stats: dict[str, int] = {}
        self.snapshots: dict[str, dict] = {}
        self.context = False  # `stackmap context on`: a summary of the roots after each stop

    def invalidate(self) -> None:
        """Forget everything about the inferior (new objfile, exit, rerun)."""
        self.registry = ImageRegistry()
        self._regions_seen = set()

    def sync(self, target: Target) -> None:
        """Start afresh for another inferior; drop images no longer mapped where they were."""
        ident = target.identity()
        if ident != self._identity:
            self.invalidate()
            self._identity = ident

        def head_at(base: int) -> bytes | None:
            try:
                return target.read_memory(base, HEADER_CHECK)
            except StackMapsError:
                return None

        # An image unloaded and another mapped at the same base: re-check headers.
        for base in self.registry.stale_bases(head_at):
            self.registry.remove(base)
            # Probe that mapping again: another image may now start there.
            self._regions_seen = {r for r in self._regions_seen if r.start != base}

    def discover(
        self, target: Target, threads: Iterable[ThreadState] | None = None
    ) -> list[Region] | None:
        """Find images: memory map when known, then a scan back from every thread's pc."""
        self.sync(target)
        regions = target.regions()
        if regions is not None:
            fresh = [r for r in regions if r not in self._regions_seen]
            discover_from_regions(target, fresh, self.registry)
            self._regions_seen.update(fresh)
        for t in threads if threads is not None else target.threads():
            if self.registry.image_at(t.pc) is None:
                discover_from_pc(target, t.pc, self.registry)
        return regions

    def collect(
        self,
        target: Target,
        thread_nums: set[int] | None = None,
        scan: bool = True,
        max_depth: int | None = None,
    ) -> Collected:
        """Walk the threads (all, or those numbered `thread_nums`) and decode their roots."""
        threads = target.threads()
        if not threads:
            raise StackMapsError("the process has no threads (not running?)")
        regions = self.discover(target, threads)
        if not len(self.registry):
            problems = "; ".join(self.registry.problems.values())
            raise NoImages(
                "no Wasmtime images found in this process"
                + (
                    f": {problems}"
                    if problems
                    else " (not a Wasmtime process, or no module loaded yet)"
                )
            )
        mem = MemoryCache(target)
        out = []
        for t in threads:
            if thread_nums is not None and t.num not in thread_nums:
                continue
            acts = thread_activations(
                target,
                self.registry,
                mem,
                t,
                regions,
                scan=scan,
                max_depth=max_depth or self.max_depth,
            )
            out.append((t, acts))
        depth = max_depth or self.max_depth
        pulley = add_pulley_activations(target, self.registry, mem, out, regions, depth)
        # Stores, activations from the runtime's records (not beside Pulley's: their indices
        # are kept), GC objects of heap refs.
        rt = None if pulley else self.registry
        heap = heapfind.annotate(target, mem, without(out, pulley), regions, rt)
        apply_pulley_heaps(heap, mem, pulley)  # Pulley frames: in their proven store's heap
        heapctx.enrich(self, target, out, heap)  # their types and fields, when the module is known
        suspended = (  # wasm stacks no thread runs: looked for when every thread is asked for
            suspended_stacks(
                target, self.registry, mem, regions, threads, max_depth or self.max_depth
            )
            if thread_nums is None
            else None
        )
        self.last_stats = {
            "memory_reads": mem.reads,
            "frames": sum(len(a.frames) for _, acts in out for a in acts),
        }
        return Collected(out, mem, heap, suspended)
