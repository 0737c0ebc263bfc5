;; For the CLI under Pulley (`wasmtime run --target pulley64 -W gc=y`): a recursion that
;; keeps a struct ref and an i31 ref live across every call, then calls the WASI host
;; function sched_yield at the bottom (a debugger stops there: `break sched_yield`).
;; Frame n (n = depth remaining, 5 at the top) holds a $node struct with v = n and an
;; eqref holding the i31 3*(n+1)+1 (-7 at the top). sched_yield needs an exported memory.
(module
  (type $node (struct (field $v i32) (field $next (ref null $node))))
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (memory (export "memory") 1)
  (func $build (export "build") (param $n i32) (param $prev (ref null $node)) (param $tag (ref eq)) (result i32)
    (local $s (ref $node))
    (local.set $s (struct.new $node (local.get $n) (local.get $prev)))
    (if (i32.eqz (local.get $n)) (then (drop (call $yield)) (return (i32.const 0))))
    (i32.add
      (call $build (i32.sub (local.get $n) (i32.const 1)) (local.get $s)
                   (ref.i31 (i32.add (i32.mul (local.get $n) (i32.const 3)) (i32.const 1))))
      (i32.add (struct.get $node $v (local.get $s)) (i31.get_s (ref.cast (ref i31) (local.get $tag))))))
  (func (export "_start")
    (drop (call $build (i32.const 5) (ref.null $node) (ref.i31 (i32.const -7)))))
)
