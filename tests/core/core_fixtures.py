"""Shared constants and counters of the core tests (importable by test modules, unlike conftest)."""

import collections
from pathlib import Path

import tooling

HERE = Path(__file__).resolve().parent
WAT_DIR = HERE / "wat"
WATS = ("structs", "arrays", "i31", "externref", "tailcall", "component")
COMPONENTS = {"component"}

CLI_TARGETS = tooling.NATIVE_TARGETS + tooling.PULLEY_TARGETS
# The Python package only compiles for the host and pulley64: it has no cross-compilation
# support (asking aborts the process), and its Module() refuses pulley32 on a 64-bit host
# ("target ... does not match the host") and has no precompile-only API.
PY_TARGETS = ("host", "pulley64")

# (wat, compiler, target) for every fixture image.
FIXTURES = [(w, "cli", t) for w in WATS for t in CLI_TARGETS] + [
    (w, "py", t) for w in WATS for t in PY_TARGETS
]


def fixture_id(key) -> str:
    wat, compiler, target = key
    return f"{wat}-{compiler}-{target}"


FIXTURE_IDS = [fixture_id(k) for k in FIXTURES]

# Minimum stack-map entries each fixture must produce on every target (seen: more).
MIN_ENTRIES = {"structs": 8, "arrays": 8, "i31": 4, "externref": 6, "tailcall": 4, "component": 4}


def long_run(config) -> bool:
    try:
        return bool(config.getoption("--long"))
    except ValueError:  # tests/conftest.py not loaded (e.g. rootdir elsewhere)
        return False


# target label -> stack-map entries compared against objdump
COMPARED = collections.Counter()
# fuzz test name -> hypothesis cases run
FUZZ_CASES = collections.Counter()
# binaryen random modules: generated / compiled / refused per target, entries compared
RANDOM = collections.Counter()
