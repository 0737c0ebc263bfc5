#!/usr/bin/env bash
# Smoke check of the qemu-user route: run tests/arch/gc_trap.wat with the aarch64 wasmtime CLI
# under qemu-aarch64, attach gdb-multiarch (`target remote`) and lldb-19 (`gdb-remote`) to
# qemu's GDB stub, stop at the wasm trap (SIGILL on `udf #0xc11f`) and walk the wasm frames
# with tests/arch/frame_walk.py. Also once with pointer authentication turned on
# (-C cranelift-sign_return_address=true) to get PAC-signed return addresses.
#
# Usage: bash tests/arch/smoke_qemu.sh      (runs setup_qemu.sh first; ~10 s in all)
# Output of each debugger goes to tests/arch/.cache/out/*.txt; exit status 0 = all checks passed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENV="$(bash "$HERE/setup_qemu.sh" --quiet)" || exit 1
# shellcheck disable=SC1090
source "$ENV"
OUT="$(dirname "$ENV")/out"
mkdir -p "$OUT"
WAT="$HERE/gc_trap.wat"
WALK="$HERE/frame_walk.py"
export QEMU_LD_PREFIX="$AARCH64_SYSROOT"
export RUST_BACKTRACE=0   # with =1 and PAC on, the host's libgcc unwinder crashes walking signed wasm frames

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start qemu with its stub on a free port; wait until it listens (qemu waits for the debugger)
QPID=""
start_qemu() {  # extra wasmtime flags...
    PORT="$(free_port)"
    "$QEMU_AARCH64" -g "$PORT" "$WASMTIME_AARCH64" run -W gc=y "$@" "$WAT" >"$OUT/qemu.log" 2>&1 &
    QPID=$!
    # poll for LISTEN (state 0A) in /proc/net/tcp: a probe connect() would use up qemu's
    # one and only stub connection, and qemu would then run on without a debugger
    local hexport; hexport="$(printf '%04X' "$PORT")"
    for _ in $(seq 200); do
        grep -qE "^ *[0-9]+: [0-9A-F]+:$hexport [0-9A-F]+:0000 0A" /proc/net/tcp /proc/net/tcp6 2>/dev/null && return 0
        sleep 0.05
    done
    echo "qemu stub did not come up on $PORT" >&2; return 1
}
stop_qemu() {
    if [ -n "$QPID" ]; then
        for _ in $(seq 50); do kill -0 "$QPID" 2>/dev/null || break; sleep 0.1; done
        kill "$QPID" 2>/dev/null; wait "$QPID" 2>/dev/null; QPID=""
    fi
}
trap stop_qemu EXIT

fails=0; passes=0
check() {  # name file pattern...
    local name=$1 file=$2; shift 2
    for pat in "$@"; do
        if ! grep -qE -- "$pat" "$file"; then
            echo "FAIL $name: no /$pat/ in $file" >&2; fails=$((fails + 1)); return
        fi
    done
    echo "ok   $name"; passes=$((passes + 1))
}
WALK_OK=('frame 1 ra=text\+0x[0-9a-f]+.* live: sp\+0=0x2b \(i31 21\), sp\+8=0x70'
         'frame 4 .* sp\+0=0xfffffff3 \(i31 -7\)'
         'outside .text, host caller')

gdb_run() {  # outfile wasmtime-flags...
    local out=$1; shift
    start_qemu "$@" || return 1
    timeout 120 "$GDB_MULTIARCH" -nx -batch \
        -ex "set sysroot $AARCH64_SYSROOT" -ex "file $WASMTIME_AARCH64" \
        -ex "target remote 127.0.0.1:$PORT" -ex continue \
        -ex 'info registers pc x29 x30 sp' -ex 'x/2i $pc' -ex 'x/4gx $x29' -ex 'bt 3' \
        -ex 'info proc mappings' -ex "source $WALK" -ex kill >"$out" 2>&1
    stop_qemu
}
lldb_run() {  # outfile wasmtime-flags...
    local out=$1; shift
    start_qemu "$@" || return 1
    timeout 120 "$LLDB" -b \
        -o "platform select remote-linux --sysroot $AARCH64_SYSROOT" \
        -o "target create $WASMTIME_AARCH64" \
        -o 'settings set target.process.virtual-addressable-bits 48' \
        -o "gdb-remote 127.0.0.1:$PORT" -o 'process continue' \
        -k 'register read pc fp lr sp' -k 'bt 10' -k 'memory read -s8 -fx -c4 $fp' \
        -k "command script import $WALK" -k archwalk -k 'process kill' >"$out" 2>&1
    stop_qemu
}

t0=$(date +%s.%N)
"$QEMU_AARCH64" "$WASMTIME_AARCH64" run -W gc=y "$WAT" >"$OUT/run.txt" 2>&1
rc=$?
echo "exit status $rc" >>"$OUT/run.txt"
check "plain run under qemu (exit 134, unreachable)" "$OUT/run.txt" 'exit status 134' 'wasm `unreachable` instruction executed'
t1=$(date +%s.%N)
gdb_run "$OUT/gdb.txt"
check "gdb-multiarch stops at the trap and walks" "$OUT/gdb.txt" 'received signal SIGILL' 'udf' "${WALK_OK[@]}"
t2=$(date +%s.%N)
gdb_run "$OUT/gdb-pac.txt" -C cranelift-sign_return_address=true
check "gdb-multiarch with PAC-signed return addresses" "$OUT/gdb-pac.txt" 'received signal SIGILL' 'PAC bits stripped' "${WALK_OK[@]}"
t3=$(date +%s.%N)
lldb_run "$OUT/lldb.txt"
check "lldb-19 stops at the trap and walks" "$OUT/lldb.txt" 'stop reason = signal SIGILL' 'udf' "${WALK_OK[@]}"
t4=$(date +%s.%N)
lldb_run "$OUT/lldb-pac.txt" -C cranelift-sign_return_address=true
check "lldb-19 with PAC-signed return addresses" "$OUT/lldb-pac.txt" 'stop reason = signal SIGILL' 'PAC bits stripped' "${WALK_OK[@]}"
t5=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" <<'EOF'
import sys
t = list(map(float, sys.argv[1:]))
names = ["plain run", "gdb", "gdb+PAC", "lldb", "lldb+PAC"]
print("timing: " + ", ".join("%s %.1fs" % (n, b - a) for n, a, b in zip(names, t, t[1:])))
EOF
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
