"""The one validity of an image: what `check` calls valid is what every command accepts.

`validate_image()` is called by `check` and by every other offline command
before it prints anything, so `info`, `dump` and `lookup` never accept what
`check` refuses, nor refuse what it accepts. It is linear in the image (see
StackMapSection.validate) and raises the first problem as one line:
NotAnImage (exit 2: not an image we can read) or CorruptSection (exit 1).
"""

from .errors import CorruptSection
from .image import WasmtimeImage
from .stackmap import SECTION_NAME, StackMapSection

# The sections the tools read: one declared past the end of the file is a damaged image,
# not a missing section (a missing stack-map section would read as "no live GC refs").
READ = (".text", ".wasmtime.engine", ".symtab", ".strtab", SECTION_NAME)


def validate_image(img: WasmtimeImage) -> StackMapSection | None:
    """Check every part of `img` the tools read; return its stack-map section (or None)."""
    sections = img.sections  # (reading them fills img.outside)
    for name in READ:
        if name not in sections and name in img.outside:
            off, size = img.outside[name]
            raise CorruptSection(
                f"{img.name}: section {name} ({size} bytes at {off:#x}) runs past the end of "
                f"the image ({img.size:#x} bytes): truncated or damaged"
            )
    _, text_size = img.text_range  # NotAnImage when there is no .text
    _ = img.engine, img.functions  # each parsed (and checked) as a whole
    sm = img.stackmaps
    if sm is not None:
        sm.validate()
        if len(sm) and sm.pcs[len(sm) - 1] > text_size:
            raise CorruptSection(
                f"{img.name}: stack map pc {sm.pcs[len(sm) - 1]:#x} is past the end of "
                f".text ({text_size:#x})"
            )
    return sm
