"""Options for the whole test tree (pytest only honours pytest_addoption in a rootdir/initial conftest)."""


def pytest_addoption(parser):
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="long randomized runs: more binaryen-generated modules and more decoder fuzz cases",
    )
    parser.addoption(
        "--matrix",
        action="store_true",
        default=False,
        help="collect tests/matrix (the Wasmtime version matrix; needs its venvs: "
        "run bash tests/matrix/run_matrix.sh)",
    )
