"""The help texts of the `stackmap` commands: the same in GDB and LLDB.

One line per subcommand (`help stackmap` lists them all), and at least one
example each, shown at the end of its argparse help (core/commands.py).
"""

import argparse

# The one-line summaries of the subcommands defined in core/commands.py (the heap ones
# come from core/heapcmds.py); BASE_ORDER ones are listed before those.
SUMMARIES = {
    "frame": "live GC-reference slots of one wasm frame",
    "bt": "wasm frames of the thread(s) with their live GC references",
    "images": "Wasmtime code images found in the inferior",
    "load": "tell the plugin that an image file is mapped at an address",
    "report": "crash report: signal, faulting pc, trap, every thread's wasm frames",
    "snapshot": "record the live GC roots of every wasm frame (for 'stackmap diff')",
    "diff": "compare the roots with a snapshot: which ones changed value",
    "gc-watch": "check the roots around every collection (stops briefly at each)",
    "watch": "hardware watchpoint on a root slot or object field (follows moves)",
    "context": "on/off: a summary of the roots after each stop",
}
BASE_ORDER = ("frame", "bt", "images", "load", "report", "snapshot", "diff")
# At least one example per subcommand, shown at the end of its help.
EXAMPLES = {
    "module": ["stackmap module app.wasm", "stackmap module --clear"],
    "obj": ["stackmap obj 0x70", "stackmap obj heap 0x70 --depth 2"],
    "heap": ["stackmap heap", "stackmap heap --stat"],
    "gcroot": ["stackmap gcroot 0x70"],
    "verify": ["stackmap verify", "stackmap verify --json"],
    "frame": ["stackmap frame", "stackmap frame 2 -x", "stackmap frame 1 --json"],
    "bt": ["stackmap bt", "stackmap bt -a --full", "stackmap bt -n 3", "stackmap bt --wide"],
    "images": ["stackmap images", "stackmap images --json"],
    "load": ["stackmap load build/module.cwasm 0x7ffff7fb8000"],
    "report": ["stackmap report", "stackmap report --json"],
    "snapshot": ["stackmap snapshot", "stackmap snapshot --name before --file /tmp/before.json"],
    "diff": ["stackmap diff", "stackmap diff --name before --json"],
    "gc-watch": [
        "stackmap gc-watch on",
        "stackmap gc-watch status",
        "stackmap gc-watch log --json",
    ],
    "watch": ["stackmap watch '#3 SP+8'", "stackmap watch 'heap 0x70+16'", "stackmap watch --list"],
    "context": ["stackmap context on", "stackmap context off", "stackmap context"],
}
# Help text is laid out at this width in both debuggers (argparse would ask the terminal).
HELP_WIDTH = 79


class HelpFormatter(argparse.HelpFormatter):
    """Help laid out at HELP_WIDTH in both debuggers (argparse would ask the terminal);
    the examples keep their lines."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=HELP_WIDTH)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)


TOP_SUMMARY = "Show live GC references in WebAssembly frames of a Wasmtime process."
TOP_SYNTAX = "stackmap SUBCOMMAND [OPTIONS] [ARGS]"


def subcommand_list(subcommands: dict[str, str]) -> str:
    """Every subcommand with its one line: the body of `help stackmap` in both debuggers."""
    rows = "\n".join(f"  {name:<9} {text}" for name, text in subcommands.items())
    return (
        f"Subcommands:\n{rows}\n\n"
        "'help stackmap SUBCOMMAND' or 'stackmap SUBCOMMAND --help': options, examples."
    )


def top_help(subcommands: dict[str, str]) -> str:
    """`help stackmap` (GDB prints it as is; LLDB puts TOP_SYNTAX after its `Syntax: `)."""
    return f"{TOP_SUMMARY}\n\nUsage: {TOP_SYNTAX}\n\n{subcommand_list(subcommands)}"


def examples(name: str) -> str:
    return "examples:\n" + "\n".join(f"  {e}" for e in EXAMPLES[name])
