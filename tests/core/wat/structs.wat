;; GC structs kept live across calls, in several functions (so that stack maps
;; land in functions that do not start at .text offset 0).
(module
  (type $point (struct (field $x (mut i32)) (field $y (mut i32))))
  (type $pair (struct (field $a (ref null $point)) (field $b (ref null $point))))
  (type $node (struct (field $v i32) (field $next (ref null $node))))

  (import "env" "tick" (func $tick (param i32)))

  (func $opaque (param i32) (result i32)
    (call $tick (local.get 0))
    (local.get 0))

  ;; One struct live across two calls.
  (func $one (export "one") (param $n i32) (result i32)
    (local $p (ref $point))
    (local.set $p (struct.new $point (local.get $n) (i32.const 7)))
    (drop (call $opaque (i32.const 1)))
    (drop (call $opaque (i32.const 2)))
    (i32.add (struct.get $point $x (local.get $p)) (struct.get $point $y (local.get $p))))

  ;; Several structs live at once, including nested ones.
  (func $many (export "many") (param $n i32) (result i32)
    (local $a (ref $point)) (local $b (ref $point)) (local $pr (ref $pair))
    (local.set $a (struct.new $point (local.get $n) (i32.const 1)))
    (call $tick (i32.const 3))
    (local.set $b (struct.new $point (i32.const 2) (local.get $n)))
    (call $tick (i32.const 4))
    (local.set $pr (struct.new $pair (local.get $a) (local.get $b)))
    (call $tick (i32.const 5))
    (struct.set $point $x (local.get $a) (call $opaque (i32.const 6)))
    (i32.add
      (i32.add (struct.get $point $x (struct.get $pair $a (local.get $pr)))
               (struct.get $point $y (struct.get $pair $b (local.get $pr))))
      (i32.add (struct.get $point $x (local.get $b)) (struct.get $point $y (local.get $a)))))

  ;; A recursive list builder: the struct is live across the recursive call.
  (func $build (export "build") (param $n i32) (param $prev (ref null $node)) (result i32)
    (local $s (ref $node))
    (local.set $s (struct.new $node (local.get $n) (local.get $prev)))
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else
        (i32.add
          (call $build (i32.sub (local.get $n) (i32.const 1)) (local.get $s))
          (struct.get $node $v (local.get $s))))))

  (func (export "_start")
    (drop (call $one (i32.const 1)))
    (drop (call $many (i32.const 2)))
    (drop (call $build (i32.const 5) (ref.null $node))))
)
