"""Finding Wasmtime images in a target's memory, and a registry to look pcs up in them."""

import bisect
import os
from collections.abc import Callable, Iterable, Iterator
from collections.abc import Set as AbstractSet

from .abi import EI_OSABI, ELF_MAGIC, ELFOSABI_WASMTIME, PAGE_SIZE
from .elf import parse_elf_header
from .errors import NotAnImage, ReadError, StackMapsError
from .image import ImageOrigin, WasmtimeImage
from .source import FileSource, MemorySource
from .target import Region, Target

# How far back from a pc we look for an image's ELF header (.text offset + pc offset).
MAX_SCAN_BACK = 256 * 1024 * 1024
SCAN_BLOCK = 256 * 1024


class ImageRegistry:
    """The images known in one target, with a sorted index of their .text ranges.

    `image_at(address)` is the hot path (called for every pc the unwinder sees):
    a min/max reject, then one binary search.
    """

    def __init__(self) -> None:
        self.images: dict[int, WasmtimeImage] = {}  # base -> image (every one has a base)
        self.problems: dict[int, str] = {}  # base -> why an image there could not be used
        self._starts: list[int] = []
        self._ranges: list[tuple[int, int, WasmtimeImage]] = []
        self.lo = self.hi = 0

    def add(self, image: WasmtimeImage) -> WasmtimeImage:
        base = _base(image)
        old = self.images.get(base)
        if old is not None and old.identity() == image.identity():
            return old
        self.images[base] = image
        if old is not None:
            self._reindex()
            return image
        # A new base: insert its .text range (what _reindex would give, without
        # re-sorting every image: discovering N images stays O(N log N)).
        try:
            off, size = image.text_range
        except StackMapsError:
            return image
        start = base + off
        i = bisect.bisect_right(self._starts, start)
        self._starts.insert(i, start)
        self._ranges.insert(i, (start, start + size, image))
        self.lo = self._ranges[0][0]
        self.hi = max(self.hi, start + size)
        return image

    def remove(self, base: int) -> None:
        """Forget the image at `base` (it was unmapped, or replaced by another)."""
        if self.images.pop(base, None) is not None:
            self._reindex()

    def known(self, base: int) -> bool:
        """Was an image (or a problem with one) already found at `base`?"""
        return base in self.images or base in self.problems

    def stale_bases(self, head_at: Callable[[int], bytes | None]) -> list[int]:
        """Bases of the probed (not user-loaded) images whose first bytes in memory,
        `head_at(base)`, no longer match the image's own header."""
        stale = []
        for base, img in self.images.items():
            if img.loaded_from is ImageOrigin.USER:
                continue
            head = head_at(base)
            if head is None or head != img.source.read(0, len(head)):
                stale.append(base)
        return stale

    def _reindex(self) -> None:
        ranges = []
        for img in self.images.values():
            try:
                off, size = img.text_range
            except StackMapsError:
                continue
            start = _base(img) + off
            ranges.append((start, start + size, img))
        ranges.sort(key=lambda r: r[0])
        self._ranges = ranges
        self._starts = [r[0] for r in ranges]
        self.lo = ranges[0][0] if ranges else 0
        self.hi = max((r[1] for r in ranges), default=0)

    def image_at(self, address: int) -> WasmtimeImage | None:
        """The image whose .text contains `address`, or None."""
        if not self.lo <= address < self.hi:
            return None
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._ranges[i][1]:
            return self._ranges[i][2]
        return None

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[WasmtimeImage]:
        return iter(sorted(self.images.values(), key=_base))


def _base(image: WasmtimeImage) -> int:
    """The load address of an image found in a target (ValueError for one read from a file)."""
    if image.base is None:
        raise ValueError(f"{image.name}: an image in a target's registry needs its address")
    return image.base


def probe_image(target: Target, base: int, path: str | None = None) -> WasmtimeImage | None:
    """The Wasmtime image whose ELF header is at `base`, or None if there is none.

    The image is read through target memory. When the header is readable but the
    sections are not (a file-backed `.cwasm` left out of a core dump), the file
    named by the mapping is used instead if it still holds the same header.
    """
    try:
        head = target.read_memory(base, 64)
    except ReadError:
        return None
    try:
        hdr = parse_elf_header(head, f"image at {base:#x}")
    except NotAnImage:
        return None
    src = MemorySource(
        target.read_memory, base, hdr.image_size, name=path or f"[anon image at {base:#x}]"
    )
    img = WasmtimeImage(src, base=base, path=path)
    try:
        _ = img.sections, img.text_range  # the section header table at the image's end
        return img
    except (ReadError, NotAnImage) as e:  # sections unreadable (or garbage) in memory
        if path and os.path.isfile(path):
            fimg = WasmtimeImage(FileSource(path), base=base, path=path)
            if fimg.header == hdr:
                return fimg
        raise ReadError(
            f"image at {base:#x}{' (' + path + ')' if path else ''}: header is "
            f"readable but its sections are not ({e}); use 'stackmap load FILE ADDR'"
        ) from e


def discover_from_regions(
    target: Target, regions: Iterable[Region], registry: ImageRegistry
) -> None:
    """Probe the start of every readable mapping for a Wasmtime ELF header.

    Images mapped back to back (many small modules compiled in one process)
    share mappings: the kernel merges an image's trailing `r--` pages with the
    next image's leading `r--` pages, so only the first image of such a run
    starts a mapping. After each image found, the page right after its end is
    probed too (one 64-byte read), and so on along the run. A page that starts
    a mapping of its own is left to the loop, which knows the mapping's file.
    """
    regions = list(regions)
    starts = {r.start for r in regions}
    for r in regions:
        if r.perms and not r.perms.startswith("r"):
            continue
        if registry.known(r.start):
            continue
        try:
            img = probe_image(target, r.start, r.path)
        except StackMapsError as e:
            registry.problems[r.start] = str(e)
            continue
        if img is not None:
            registry.add(img)
            _probe_following(target, img, registry, starts)


def _probe_following(
    target: Target,
    img: WasmtimeImage,
    registry: ImageRegistry,
    region_starts: AbstractSet[int] = frozenset(),
) -> None:
    """Add the images that start on the page right after `img`, one after another
    (inside a merged mapping: a page in `region_starts` is probed with its mapping)."""
    while True:
        nxt = _base(img) + -(-img.size // PAGE_SIZE) * PAGE_SIZE
        if registry.known(nxt) or nxt in region_starts:
            return
        try:
            found = probe_image(target, nxt)
        except StackMapsError as e:
            registry.problems[nxt] = str(e)
            return
        if found is None:
            return
        img = registry.add(found)


def discover_from_pc(
    target: Target, pc: int, registry: ImageRegistry, limit: int = MAX_SCAN_BACK
) -> WasmtimeImage | None:
    """Scan back page by page from `pc` to an image header whose .text contains pc.

    Memory is read in large blocks (one debugger read per 256 KiB); the scan
    stops at the first unreadable block, at the header of any other ELF object
    (a pc in a shared library or the executable: its own header comes first,
    and no Wasmtime image spans it), or after `limit` bytes. Without the
    ELF-header stop a pc in host code costs a read of everything mapped below
    it, which over a remote protocol (qemu's gdb stub) takes seconds per stop.
    """
    img = registry.image_at(pc)
    if img is not None:
        return img
    page = pc - pc % PAGE_SIZE
    lowest = max(0, page - limit)
    block_end = page + PAGE_SIZE
    while block_end > lowest:
        block_start = max(lowest, block_end - SCAN_BLOCK)
        try:
            data = target.read_memory(block_start, block_end - block_start)
        except ReadError:
            data = None
        if not data or len(data) != block_end - block_start:
            # Partly readable: fall back to single pages for this block.
            data = None
        for base in range(block_end - PAGE_SIZE, block_start - 1, -PAGE_SIZE):
            if data is not None:
                head = data[base - block_start : base - block_start + 8]
            else:
                try:
                    head = target.read_memory(base, 8)
                except ReadError:
                    return None
            if (
                head[:4] == ELF_MAGIC
                and len(head) > EI_OSABI
                and head[EI_OSABI] != ELFOSABI_WASMTIME
            ):
                return None  # another ELF object's header: pc is in that object
            if head[:4] == ELF_MAGIC and len(head) > EI_OSABI:
                if base in registry.problems:
                    return None
                try:
                    found = probe_image(target, base)
                except StackMapsError as e:
                    registry.problems[base] = str(e)
                    return None
                if found is not None:
                    off, size = found.text_range
                    if base + off <= pc < base + off + size:
                        return registry.add(found)
                    return None
        block_end = block_start
    return None
