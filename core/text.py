"""Text that came from an image, a core or an inferior, made safe to print on a terminal.

Symbol names, paths, thread names and engine strings are attacker-controlled: a
`.cwasm` can name a function `\\x1b[2J` (clear the screen) or put a newline in it
to forge output lines. Everything printed as text goes through `safe()` first:
control characters (C0, DEL, C1), line and paragraph separators and the
bidirectional overrides become visible escapes (`\\x1b`, `\\u202e`); everything
else, including non-ASCII letters, is left as it is. JSON output needs none of
this (json.dumps escapes control characters itself).
"""

import re

# C0 and DEL, C1, U+2028/2029 (line/paragraph separators) and the bidi embeddings,
# overrides and isolates (they reorder what the terminal shows: "Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe(text: object) -> str:
    """`text` (str() of any object) with every unsafe character escaped; None stays "None"."""
    s = text if isinstance(text, str) else str(text)
    return _UNSAFE.sub(_escape, s) if _UNSAFE.search(s) else s


def safe_or(text: str | None, default: str) -> str:
    """safe(text), or `default` (not escaped: ours) when text is None or empty."""
    return safe(text) if text else default


def has_unsafe(text: str) -> bool:
    """Whether `text` carries any character `safe()` would escape (tests, assertions)."""
    return _UNSAFE.search(text) is not None


def safe_record(obj: object) -> object:
    """A copy of a JSON-like record (dicts, lists, strings, numbers) with every string safe().

    Text renderers take their records through this once, so no field (a name, a path,
    a thread name, an error quoting either) can carry a control character to the screen.
    """
    if isinstance(obj, str):
        return safe(obj)
    if isinstance(obj, dict):
        return {k: safe_record(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [safe_record(v) for v in obj]
    return obj
