"""The project's one error family: every failure a user can cause is one of these."""


class StackMapsError(Exception):
    """Base of every error the core raises on bad input or an unreadable target.

    The message is meant to be printed as one line to the user; `kind` names the
    failure for scripts (the `error.kind` of a `--json` command's error document).
    """

    kind = "error"


class CorruptSection(StackMapsError):
    """The `.wasmtime.stackmap` section (or another Wasmtime section) is malformed."""


class NotAnImage(StackMapsError):
    """The bytes are not a Wasmtime code image (or not a readable ELF file)."""


class NoProcess(StackMapsError):
    """The debugger has no process (not started, exited, or not a usable core file)."""

    kind = "no-process"


class NoImages(StackMapsError):
    """The process has no Wasmtime code image (not a Wasmtime process, or none loaded yet)."""

    kind = "no-images"


class ReadError(StackMapsError):
    """Memory or a file could not be read at the requested place."""

    def __init__(self, message: str, address: int | None = None) -> None:
        super().__init__(message)
        self.address = address
