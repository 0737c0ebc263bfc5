"""The two decoder fuzzers (tests/fuzz/fuzzer.py) as part of `bash dev.sh test`.

By default a few seconds (CI stays quick); with `--long` over 1,000,000 cases, split
over the CPUs. Each run is a subprocess of its own: the fuzzer limits its own address
space (RLIMIT_AS) and checks every case's time and a sample of cases' allocations
(tracemalloc). Seeds are random and printed; `--seed` repeats a run.
"""

import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.tooling import compile_wat

HERE = Path(__file__).resolve().parent
WAT = HERE.parent / "core" / "wat"
LONG_CASES = 1_000_000


@pytest.fixture(scope="module")
def real_images(tmp_path_factory):
    """Two real images (x86_64 and big-endian s390x) for the mutation fuzzer."""
    d = tmp_path_factory.mktemp("fuzzseeds")
    return [
        str(compile_wat(WAT / "structs.wat", d / "structs.cwasm")),
        str(compile_wat(WAT / "externref.wat", d / "s390x.cwasm", "s390x-unknown-linux-gnu")),
    ]


def _fuzz(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HERE / "fuzzer.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_fuzzers(long, real_images):
    workers = 2 if long else 1
    seeds = [random.randrange(1 << 32) for _ in range(workers)]
    if long:
        per = [["--cases", str(LONG_CASES // workers + 1)] for _ in seeds]
        timeout = 4 * 3600
    else:
        per = [["--seconds", "4"] for _ in seeds]
        timeout = 300
    with ThreadPoolExecutor(workers) as pool:
        runs = list(
            pool.map(
                lambda a: _fuzz([*a[0], "--seed", str(a[1]), *real_images], timeout),
                zip(per, seeds, strict=True),
            )
        )
    total = 0
    for seed, p in zip(seeds, runs, strict=True):
        print(p.stdout)
        assert p.returncode == 0, f"seed {seed}: {p.stderr[-3000:]}"
        total += int(p.stdout.split(": ", 1)[1].split(" cases", 1)[0])
        # Both fuzzers ran, and reached valid and invalid images.
        for kind in (
            "mutate: valid",
            "mutate: invalid",
            "structured: valid",
            "structured: invalid",
        ):
            assert f"{kind} " in p.stdout, (kind, p.stdout)
    print(f"fuzz cases run: {total}")
    if long:
        assert total >= LONG_CASES
    else:
        assert total >= 100
