"""The project's one error family: every failure a user can cause is one of these."""


class StackMapsError(Exception):
    """Base of every error the core raises on bad input or an unreadable target.

    The message is meant to be printed as one line to the user.
    """


class CorruptSection(StackMapsError):
    """The `.wasmtime.stackmap` section (or another Wasmtime section) is malformed."""


class NotAnImage(StackMapsError):
    """The bytes are not a Wasmtime code image (or not a readable ELF file)."""


class ReadError(StackMapsError):
    """Memory or a file could not be read at the requested place."""

    def __init__(self, message, address=None):
        super().__init__(message)
        self.address = address
