"""An image's functions: its STT_FUNC symbols, indexed compactly by text offset.

Three flat arrays (start, size, name offset), sorted once; a Function (with
its decoded name) is made only when asked for. Memory is 20 bytes a symbol
whatever the table holds, and the symbol count is checked against the bytes
of `.symtab` (and MAX_SYMBOLS) before anything is built.
"""

import bisect
import operator
import re
import struct
from array import array
from collections.abc import Iterator, Sequence
from typing import NamedTuple, overload

from .errors import CorruptSection

# ASCII digits only (int() of 5,000 digits raises; `\d` takes any Unicode digit); a name
# may go on with anything, newlines included: the prefix decides what it is.
_FUNC_NAME = re.compile(r"wasm\[([0-9]{1,10})\]::function\[([0-9]{1,10})\](?:::.*)?\Z", re.S)
_WASM_MODULE = re.compile(r"wasm\[([0-9]{1,10})\]")
# Wasmtime writes a few symbols a function, and a module has at most 1,000,000
# functions (wasmparser's limit): a table far above that is not an image we show.
MAX_SYMBOLS = 1 << 22
# Names are cut here (Wasmtime's are short; a megabyte-long one would flood every output).
MAX_NAME = 1024
_STT_FUNC = 2


class Function(NamedTuple):
    start: int  # text offset
    size: int
    name: str
    module: int | None  # wasm[M]
    index: int | None  # type: ignore[assignment]  # function[N]; None for trampolines, builtins

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def is_wasm(self) -> bool:
        return self.index is not None


def parse_name(name: str) -> tuple[int | None, int | None]:
    """(module, function index) of a Wasmtime symbol name; (M, None) or (None, None) else."""
    if not name.startswith("wasm["):
        return None, None
    m = _FUNC_NAME.match(name)
    if m:
        return int(m.group(1)), int(m.group(2))
    mm = _WASM_MODULE.match(name)
    return (int(mm.group(1)) if mm else None), None


class FunctionTable(Sequence[Function]):
    """The STT_FUNC symbols of `.symtab` (raw bytes or a view) sorted by start, stably."""

    def __init__(
        self, symtab: bytes | memoryview, strtab: bytes, little_endian: bool, where: str
    ) -> None:
        st = struct.Struct(("<" if little_endian else ">") + "IBBHQQ")
        count = len(symtab) // st.size
        if count > MAX_SYMBOLS:
            raise CorruptSection(
                f"{where}: .symtab holds {count} symbols, more than the {MAX_SYMBOLS} "
                "any Wasmtime image has"
            )
        starts, sizes, names = array("Q"), array("Q"), array("Q")
        for st_name, st_info, _other, _shndx, value, size in st.iter_unpack(
            symtab[: count * st.size]
        ):
            if st_info & 0xF == _STT_FUNC:
                starts.append(value)
                sizes.append(size)
                names.append(st_name)
        if len(starts) > 1 and not all(map(operator.le, starts[:-1], starts[1:])):
            order = sorted(range(len(starts)), key=starts.__getitem__)  # stable
            starts = array("Q", (starts[i] for i in order))
            sizes = array("Q", (sizes[i] for i in order))
            names = array("Q", (names[i] for i in order))
        self.starts, self._sizes, self._names = starts, sizes, names
        self._strtab = strtab
        self._made: dict[int, Function] = {}

    def __len__(self) -> int:
        return len(self.starts)

    @overload
    def __getitem__(self, i: int) -> Function: ...
    @overload
    def __getitem__(self, i: slice) -> list[Function]: ...
    def __getitem__(self, i: int | slice) -> Function | list[Function]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        f = self._made.get(i)
        if f is None:
            f = self._function(i)
            if len(self._made) < 65536:  # a cache, not a copy of the table
                self._made[i] = f
        return f

    def __iter__(self) -> Iterator[Function]:
        for i in range(len(self)):
            yield self._made.get(i) or self._function(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(map(operator.eq, self, other))

    __hash__ = None  # type: ignore[assignment]

    @property
    def strtab(self) -> bytes:
        """The `.strtab` the names are read from."""
        return self._strtab

    def symbols(self) -> Iterator[tuple[int, int, int]]:
        """(start, size, name offset in `strtab`) of each function, by start."""
        return zip(self.starts, self._sizes, self._names, strict=True)

    def name(self, i: int) -> str:
        strtab, off = self._strtab, self._names[i]
        if off >= len(strtab):
            return ""
        end = strtab.find(b"\0", off, off + MAX_NAME + 1)
        if end < 0 and off + MAX_NAME < len(strtab):  # no NUL within MAX_NAME bytes
            return strtab[off : off + MAX_NAME].decode("utf-8", "replace") + "...(cut)"
        return strtab[off : end if end >= 0 else len(strtab)].decode("utf-8", "replace")

    def _function(self, i: int) -> Function:
        name = self.name(i)
        module, index = parse_name(name)
        return Function(self.starts[i], self._sizes[i], name, module, index)

    def at(self, text_offset: int) -> Function | None:
        """The function whose [start, end) contains `text_offset` (binary search)."""
        i = bisect.bisect_right(self.starts, text_offset) - 1
        if i >= 0 and self.starts[i] <= text_offset < self.starts[i] + self._sizes[i]:
            return self[i]
        return None

    def wasm_count(self) -> int:
        return sum(1 for i in range(len(self)) if _FUNC_NAME.match(self.name(i)))

    def find(self, spec: str) -> list[Function]:
        """Functions matching a full name, a name suffix (`::build`) or a wasm function index
        (ASCII decimal digits only)."""
        if spec.isascii() and spec.isdigit():
            if len(spec) > 10:
                return []
            want = int(spec)
            return [f for f in self if f.index == want]
        suffix = "::" + spec
        return [f for f in self if f.name == spec or f.name.endswith(suffix)]
