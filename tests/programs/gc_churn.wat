;; Collections with live roots in several frames (tests/plugins/test_gcwatch.py).
;; $build(n) keeps a $node {v = 100 + n, next} live in its frame and recurses; at the
;; bottom $churn allocates 700 garbage arrays of 700 i64 (the CLI's copying collector
;; then runs about 140 collections, growing its heap as it goes), then $poke writes
;; field $v of the innermost node (4242), each frame checks its node's $v on the way
;; out (`unreachable` in $check if it is not what was stored), and _start ends with a
;; trap so that the process stays stoppable.
(module
  (type $node (struct (field $v (mut i32)) (field $next (ref null $node))))
  (type $junk (array (mut i64)))
  (func $churn (param $rounds i32) (param $keep (ref $node))
    (local $i i32) (local $tmp (ref null $junk))
    (loop $l
      (local.set $tmp (array.new $junk (i64.const 7) (i32.const 700)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $rounds)))))
  (func $poke (param $n (ref $node)) (param $v i32)
    (struct.set $node $v (local.get $n) (local.get $v)))
  (func $check (param $n (ref null $node)) (param $want i32)
    (if (i32.ne (struct.get $node $v (ref.as_non_null (local.get $n))) (local.get $want))
      (then (unreachable))))
  (func $build (param $n i32) (param $prev (ref null $node)) (param $rounds i32)
    (local $s (ref $node))
    (local.set $s (struct.new $node (i32.add (i32.const 100) (local.get $n)) (local.get $prev)))
    (if (i32.eqz (local.get $n))
      (then
        (call $churn (local.get $rounds) (local.get $s))
        (call $poke (local.get $s) (i32.const 4242))
        (call $check (local.get $s) (i32.const 4242)))
      (else
        (call $build (i32.sub (local.get $n) (i32.const 1)) (local.get $s) (local.get $rounds))))
    (call $check (local.get $s) (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 4242)) (else (i32.add (i32.const 100) (local.get $n))))))
  (func (export "_start")
    (call $build (i32.const 4) (ref.null $node) (i32.const 700))
    (unreachable))
)
