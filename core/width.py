"""Fitting text output to the debugger's width.

A line is built from parts, each with the separator that goes before it. Parts
are laid out greedily: a part that does not fit on the current line starts an
indented continuation line (a part longer than a whole line gets one of its
own). Without a width (`--wide`) everything stays on one line.
"""

import re

# When the debugger cannot say (GDB's `width unlimited`, output that is no terminal).
DEFAULT_WIDTH = 100
# Narrower than this and continuation lines would hold almost nothing.
MIN_WIDTH = 40
CONTINUATION = "      "
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def visible_len(text: str) -> int:
    """Columns `text` takes on a terminal (colour escapes take none)."""
    return len(_ANSI.sub("", text))


def effective_width(width: int | None) -> int:
    """The width to wrap at: the debugger's, DEFAULT_WIDTH when it is unknown or unlimited."""
    if not width or width <= 0:
        return DEFAULT_WIDTH
    return max(MIN_WIDTH, width)


def wrap_parts(
    parts: list[tuple[str, str]], width: int | None, indent: str = CONTINUATION
) -> list[str]:
    """Lay out (separator, text) parts in lines of at most `width` columns; None: one line.

    The first part's separator is dropped, and so is the separator of a part that
    starts a continuation line.
    """
    if not parts:
        return []
    if width is None:
        return [parts[0][1] + "".join(sep + text for sep, text in parts[1:])]
    lines = [parts[0][1]]
    used = visible_len(parts[0][1])
    for sep, text in parts[1:]:
        n = visible_len(text)
        if used + len(sep) + n <= width:
            lines[-1] += sep + text
            used += len(sep) + n
        else:
            lines.append(indent + text)
            used = len(indent) + n
    return lines
