;; i31refs live across calls. A value typed exactly (ref i31) is not a heap
;; pointer and Wasmtime leaves it out of stack maps; the same i31 held in an
;; eqref/anyref local (which might hold a heap object) is recorded.
(module
  (type $box (struct (field i32)))
  (type $i31s (array (mut i31ref)))
  (import "env" "tick" (func $tick (param i32)))

  (func $get (param $r (ref null eq)) (result i32)
    (call $tick (i32.const 0))
    (if (result i32) (ref.test (ref i31) (local.get $r))
      (then (i31.get_s (ref.cast (ref i31) (local.get $r))))
      (else (i32.const -1))))

  (func $signed (export "signed") (param $n i32) (result i32)
    (local $pos (ref i31)) (local $neg (ref i31)) (local $mixed eqref)
    (local.set $pos (ref.i31 (local.get $n)))
    (local.set $neg (ref.i31 (i32.sub (i32.const 0) (local.get $n))))
    (local.set $mixed (struct.new $box (local.get $n)))
    (call $tick (i32.const 1))
    (local.set $mixed (ref.i31 (i32.const -1)))
    (call $tick (i32.const 2))
    (i32.add
      (i32.add (i31.get_s (local.get $pos)) (i31.get_u (local.get $neg)))
      (call $get (local.get $mixed))))

  ;; The accumulator is an eqref that always holds an i31: recorded at every call.
  (func $rec (export "rec") (param $n i32) (param $acc eqref) (result i32)
    (local $v i32)
    (local.set $v (i31.get_s (ref.cast (ref i31) (local.get $acc))))
    (if (result i32) (i32.eqz (local.get $n))
      (then (local.get $v))
      (else
        (i32.add
          (call $rec (i32.sub (local.get $n) (i32.const 1))
                     (ref.i31 (i32.add (local.get $v) (i32.const 1))))
          (call $get (local.get $acc))))))

  ;; An array of i31refs and an anyref holding an i31, live across calls.
  (func $arr (export "arr") (param $n i32) (result i32)
    (local $a (ref $i31s)) (local $any anyref)
    (local.set $a (array.new $i31s (ref.i31 (local.get $n)) (i32.const 4)))
    (local.set $any (ref.i31 (i32.const 0x3fffffff)))
    (call $tick (i32.const 3))
    (array.set $i31s (local.get $a) (i32.const 1) (ref.i31 (i32.const -0x40000000)))
    (call $tick (i32.const 4))
    (i32.add
      (i31.get_u (ref.as_non_null (array.get $i31s (local.get $a) (i32.const 1))))
      (i31.get_s (ref.cast (ref i31) (local.get $any)))))

  (func (export "_start")
    (drop (call $signed (i32.const 5)))
    (drop (call $rec (i32.const 4) (ref.i31 (i32.const -3))))
    (drop (call $arr (i32.const 6))))
)
