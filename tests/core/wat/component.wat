;; A component whose core module uses GC structs live across calls, and which
;; lifts an export through the canonical ABI (so the image also has component
;; trampolines).
(component
  (core module $m
    (type $node (struct (field $v i32) (field $next (ref null $node))))
    (memory (export "memory") 1)
    (func $build (param $n i32) (param $prev (ref null $node)) (result i32)
      (local $s (ref $node))
      (local.set $s (struct.new $node (local.get $n) (local.get $prev)))
      (if (result i32) (i32.eqz (local.get $n))
        (then (i32.const 0))
        (else
          (i32.add
            (call $build (i32.sub (local.get $n) (i32.const 1)) (local.get $s))
            (struct.get $node $v (local.get $s))))))
    (func (export "run") (param $n i32) (result i32)
      (call $build (local.get $n) (ref.null $node))))
  (core module $n
    (type $arr (array (mut i32)))
    (import "m" "run" (func $run (param i32) (result i32)))
    (func (export "twice") (param $n i32) (result i32)
      (local $a (ref $arr))
      (local.set $a (array.new $arr (local.get $n) (i32.const 4)))
      (drop (call $run (local.get $n)))
      (array.set $arr (local.get $a) (i32.const 1) (call $run (i32.const 2)))
      (i32.add (array.get $arr (local.get $a) (i32.const 0)) (array.get $arr (local.get $a) (i32.const 1)))))
  (core instance $i (instantiate $m))
  (core instance $j (instantiate $n (with "m" (instance $i))))
  (func (export "run") (param "n" u32) (result u32)
    (canon lift (core func $i "run")))
  (func (export "twice") (param "n" u32) (result u32)
    (canon lift (core func $j "twice")))
)
