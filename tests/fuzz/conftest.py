"""Fixtures of the hostile-input tests: `--long` (tests/conftest.py) makes them run long."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def long(request) -> bool:
    try:
        return bool(request.config.getoption("--long"))
    except ValueError:
        return False
