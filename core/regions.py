"""Memory maps: without a debugger's help (/proc/PID/maps, a core file's segments), and
what kind of memory an address is in."""

import bisect
import os

from .errors import StackMapsError
from .target import Region


def proc_maps(pid: int) -> list[Region] | None:
    """Regions of a live local process, or None if /proc/PID/maps cannot be read."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    out = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition("-")
        path = parts[5] if len(parts) > 5 else None
        if path and path.startswith("["):
            path = None  # [stack], [heap], [anon:...]: not files
        try:
            out.append(Region(int(lo, 16), int(hi, 16), parts[1][:3], path))
        except ValueError:
            continue
    return out


def core_regions(path: str) -> list[Region] | None:
    """PT_LOAD segments of a core file, named from its NT_FILE note where file-backed.

    Segments with no bytes in the core (p_filesz 0) are still listed: their
    header page may have been dumped elsewhere, and a debugger may read them
    back from the file named in NT_FILE.
    """
    try:
        from elftools.elf.elffile import ELFFile

        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf["e_type"] != "ET_CORE":
                return None
            files = {}
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_NOTE":
                    continue
                for note in seg.iter_notes():  # type: ignore[attr-defined]  # a NoteSegment
                    if note["n_type"] == "NT_FILE":
                        desc = note["n_desc"]
                        for entry, name in zip(
                            desc["Elf_Nt_File_Entry"], desc["filename"], strict=False
                        ):
                            files[entry["vm_start"]] = (
                                os.fsdecode(name) if isinstance(name, bytes) else name
                            )
            out = []
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD":
                    continue
                fl = seg["p_flags"]
                perms = (
                    ("r" if fl & 4 else "-") + ("w" if fl & 2 else "-") + ("x" if fl & 1 else "-")
                )
                start = seg["p_vaddr"]
                out.append(Region(start, start + seg["p_memsz"], perms, files.get(start)))
            return out
    except (OSError, StackMapsError):
        return None
    except Exception:  # pyelftools on a damaged core: fall back to scanning from pcs
        return None


class DataRegions:
    """Is an address in read-write, non-executable memory? Binary search over the map (a
    process with hundreds of fiber stacks has thousands of mappings)."""

    def __init__(self, regions: list[Region] | None):
        rs = sorted(regions or [], key=lambda r: r.start)
        self.known = bool(rs)
        self.starts = [r.start for r in rs]
        self.regions = rs

    def __call__(self, v: int) -> bool:
        if v < 0x10000 or v >= 1 << 57 or v % 8:
            return False
        if not self.known:
            return True
        i = bisect.bisect_right(self.starts, v) - 1
        if i < 0:
            return False
        r = self.regions[i]
        return v < r.end and r.perms.startswith("rw") and "x" not in r.perms
