"""wasmtime_stackmaps: read Wasmtime code images and their GC stack maps.

This package never imports gdb or lldb; the debugger plugins adapt to it.
"""

from .elf import parse_elf_header
from .errors import CorruptSection, NotAnImage, ReadError, StackMapsError
from .gcref import GcRef, decode_gcref
from .image import EngineInfo, Function, WasmtimeImage
from .source import ByteSource, BytesSource, FileSource, MemorySource
from .stackmap import StackMapEntry, StackMapSection, encode

__version__ = "0.1.0"

__all__ = [
    "ByteSource",
    "BytesSource",
    "CorruptSection",
    "EngineInfo",
    "FileSource",
    "Function",
    "GcRef",
    "MemorySource",
    "NotAnImage",
    "ReadError",
    "StackMapEntry",
    "StackMapSection",
    "StackMapsError",
    "WasmtimeImage",
    "decode_gcref",
    "encode",
    "parse_elf_header",
]
