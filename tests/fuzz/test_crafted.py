"""The crafted hostile inputs of issue 14, regenerated each run (tests/fuzz/crafted.py).

Every command on every case: the exit code it must give, one line of error
naming the problem, no raw control character in anything printed, and the
resource contract measured in a fresh process: CPU time under 5 s and peak
RSS under 256 MB beyond the bytes of the file on disk. (CPU, not wall time:
the CI machine is shared; the wall time is printed.) The ~64 MB cases run
with --long.
"""

from concurrent.futures import ThreadPoolExecutor

import crafted
import pytest
from wasmtime_stackmaps.text import has_unsafe


@pytest.fixture(scope="module")
def measured(long, tmp_path_factory):
    d = tmp_path_factory.mktemp("crafted")
    cases = crafted.cases(d, long)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda c: crafted.measure([a for a, _, _ in c.runs]), cases))
    return list(zip(cases, results, strict=True))


def test_crafted_cases(measured):
    problems = []
    lines = []
    for case, m in measured:
        beyond = m["maxrss"] - crafted.present(case.path)
        lines.append(f"{case.name}: peak RSS {m['maxrss'] >> 20} MB ({beyond >> 20} MB beyond)")
        if beyond > crafted.MEMORY:
            problems.append(f"{case.name}: {beyond >> 20} MB beyond the file")
        for (argv, code, phrase), r in zip(case.runs, m["runs"], strict=True):
            what = f"{case.name}: {' '.join(argv)[:80]}"
            lines.append(f"  {argv[0]} rc={r['rc']} cpu={r['cpu']:.2f}s wall={r['wall']:.2f}s")
            if r["rc"] != code:
                problems.append(f"{what}: exit {r['rc']}, want {code}: {r['stderr'][-300:]}")
            if r["cpu"] > crafted.SECONDS:
                problems.append(f"{what}: {r['cpu']:.1f} s of CPU")
            if has_unsafe(r["stdout"].replace("\n", "")) or has_unsafe(
                r["stderr"].replace("\n", "")
            ):
                problems.append(f"{what}: raw control characters in the output")
            if "Traceback" in r["stderr"]:
                problems.append(f"{what}: a traceback")
            if code != 0:
                # One line of error, naming the problem (check prints "invalid: ..." on stdout).
                err = r["stderr"] if r["stderr"] else r["stdout"]
                if err.count("\n") != 1 or phrase not in err:
                    problems.append(f"{what}: not one line with {phrase!r}: {err[-300:]!r}")
            elif phrase and phrase not in r["stderr"] + r["stdout"]:
                problems.append(f"{what}: {phrase!r} not in the output")
    print("\n".join(lines))
    assert not problems, "\n".join(problems)


def test_hostile_names_are_escaped_and_still_wasm(measured):
    """ESC, BEL, a newline and a bidi override in a name come out as visible escapes; the
    name with a newline is still a wasm function (its prefix says so)."""
    case, m = next((c, m) for c, m in measured if c.name == "hostile-names")
    info, dump = m["runs"][0], m["runs"][1]
    assert "functions:         2 (1 wasm)" in info["stdout"]  # 5,000 digits: not a wasm index
    assert "target:            x86_64\\x1b]0;pwn\\x07" in info["stdout"]
    assert "wasmtime version:  49\\x1b[31m" in info["stdout"]
    assert "function[1]::\\x1b[2J\\x07evil\\x0aforged line\\u202e+0x10: [8]" in dump["stdout"]
    by_index = m["runs"][4]  # dump --function 1: the index matched through the newline
    assert "0x50" in by_index["stdout"] and "1 entries" in by_index["stdout"]
