"""The two maps of the core match the tree: CONTRIBUTING.md's "Where each idea lives" and
README.md's "How it works" each name every `core/*.py` exactly once, and nothing else.

A module added, renamed or removed without its line in both documents fails here,
with the line to write.
"""

import re
from collections import Counter

import pytest

from tests.tooling import REPO

CORE = sorted(p.name for p in (REPO / "core").glob("*.py"))


def section(doc: str, title: str) -> str:
    text = (REPO / doc).read_text()
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, f"{doc} has no section '## {title}'"
    return m.group(1)


def contributing_names() -> Counter[str]:
    """The `core/NAME.py` entries of the list items: `  - `core/x.py`: what it holds`."""
    body = section("CONTRIBUTING.md", "Where each idea lives")
    return Counter(re.findall(r"^\s*- `core/(\w+\.py)`:", body, re.M))


def readme_names() -> Counter[str]:
    """Every `NAME.py` in the README's `core/` bullet (up to the next top-level bullet)."""
    body = section("README.md", "How it works")
    m = re.search(r"^- `core/`.*?(?=^- |\Z)", body, re.M | re.S)
    assert m, "README.md 'How it works' has no '- `core/` ...' bullet"
    return Counter(re.findall(r"`(\w+\.py)`", m.group(0)))


def check(doc: str, named: Counter[str], how: str) -> list[str]:
    problems = [f"{doc} does not name core/{n}: {how}" for n in CORE if n not in named]
    problems += [
        f"{doc} names core/{n}, which is not in core/: remove it" for n in named if n not in CORE
    ]
    problems += [f"{doc} names core/{n} {k} times: name it once" for n, k in named.items() if k > 1]
    return problems


def test_the_core_has_modules():
    assert len(CORE) > 20 and "__init__.py" in CORE, CORE


@pytest.mark.parametrize(
    "doc, names, how",
    [
        (
            "CONTRIBUTING.md",
            contributing_names,
            "add a line '  - `core/NAME.py`: what it holds' to the list under "
            "'## Where each idea lives', under the heading of its idea",
        ),
        (
            "README.md",
            readme_names,
            "add '`NAME.py` (what it holds)' to the `core/` bullet of '## How it works', "
            "in the sub-bullet of its idea",
        ),
    ],
    ids=["contributing", "readme"],
)
def test_each_core_module_is_named_once(doc, names, how):
    problems = check(doc, names(), how)
    assert not problems, "\n".join(problems)


def test_the_check_catches_a_missing_a_stale_and_a_repeated_name():
    named = Counter(CORE[1:] + ["gone.py", CORE[2]])
    problems = check("X.md", named, "add it")
    assert f"X.md does not name core/{CORE[0]}: add it" in problems
    assert "X.md names core/gone.py, which is not in core/: remove it" in problems
    assert f"X.md names core/{CORE[2]} 2 times: name it once" in problems
    assert len(problems) == 3
