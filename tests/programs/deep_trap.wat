;; A recursion that keeps a struct ref and an i31 ref live across every call,
;; then traps (unreachable) at the bottom. Frame k (k = depth remaining) holds
;; a $node struct with field v = k, and an eqref holding the i31 3*(k+1)+1 (-7 at the top).
(module
  (type $node (struct (field $v i32) (field $next (ref null $node))))
  (func $build (export "build") (param $n i32) (param $prev (ref null $node)) (param $tag (ref eq)) (result i32)
    (local $s (ref $node))
    (local.set $s (struct.new $node (local.get $n) (local.get $prev)))
    (if (i32.eqz (local.get $n)) (then (unreachable)))
    (i32.add
      (call $build (i32.sub (local.get $n) (i32.const 1)) (local.get $s)
                   (ref.i31 (i32.add (i32.mul (local.get $n) (i32.const 3)) (i32.const 1))))
      (i32.add (struct.get $node $v (local.get $s)) (i31.get_s (ref.cast (ref i31) (local.get $tag))))))
  (func (export "_start")
    (drop (call $build (i32.const 5) (ref.null $node) (ref.i31 (i32.const -7)))))
)
