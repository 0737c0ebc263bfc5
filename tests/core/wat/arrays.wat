;; GC arrays (of numbers, of refs, nested) live across calls.
(module
  (type $bytes (array (mut i8)))
  (type $ints (array (mut i32)))
  (type $point (struct (field i32)))
  (type $points (array (mut (ref null $point))))
  (type $matrix (array (mut (ref null $ints))))

  (import "env" "tick" (func $tick (param i32)))

  (func $sum (param $a (ref $ints)) (result i32)
    (local $i i32) (local $s i32)
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (array.len (local.get $a))))
        (call $tick (local.get $i))
        (local.set $s (i32.add (local.get $s) (array.get $ints (local.get $a) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (local.get $s))

  (func $fill (export "fill") (param $n i32) (result i32)
    (local $a (ref $ints)) (local $b (ref $bytes))
    (local.set $a (array.new $ints (i32.const 3) (local.get $n)))
    (local.set $b (array.new_default $bytes (i32.const 16)))
    (call $tick (i32.const 1))
    (array.set $bytes (local.get $b) (i32.const 0) (i32.const 9))
    (i32.add (call $sum (local.get $a)) (array.get_u $bytes (local.get $b) (i32.const 0))))

  (func $of_refs (export "of_refs") (result i32)
    (local $ps (ref $points)) (local $m (ref $matrix))
    (local.set $ps (array.new_fixed $points 3
      (struct.new $point (i32.const 1)) (ref.null $point) (struct.new $point (i32.const 3))))
    (local.set $m (array.new $matrix (array.new_fixed $ints 2 (i32.const 4) (i32.const 5)) (i32.const 2)))
    (call $tick (array.len (local.get $ps)))
    (drop (call $sum (ref.as_non_null (array.get $matrix (local.get $m) (i32.const 1)))))
    (call $tick (i32.const 2))
    (i32.add
      (struct.get $point 0 (ref.as_non_null (array.get $points (local.get $ps) (i32.const 0))))
      (array.len (local.get $m))))

  (func (export "_start")
    (drop (call $fill (i32.const 4)))
    (drop (call $of_refs)))
)
