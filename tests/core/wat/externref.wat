;; externref and anyref values (host objects and internalized GC refs) live
;; across calls to the host and to other wasm functions.
(module
  (type $s (struct (field i32)))
  (import "env" "tick" (func $tick (param i32)))
  (import "env" "make" (func $make (result externref)))
  (import "env" "consume" (func $consume (param externref anyref)))

  (table $t 4 externref)

  (func $keep (export "keep") (param $e externref) (result externref)
    (local $other externref)
    (local.set $other (call $make))
    (call $tick (i32.const 1))
    (table.set $t (i32.const 0) (local.get $other))
    (call $consume (local.get $e) (ref.null any))
    (local.get $e))

  (func $any (export "any") (param $e externref) (result i32)
    (local $a anyref) (local $s anyref)
    (local.set $a (any.convert_extern (local.get $e)))
    (local.set $s (struct.new $s (i32.const 3)))
    (call $tick (i32.const 2))
    (call $consume (extern.convert_any (local.get $s)) (local.get $a))
    (call $tick (i32.const 3))
    (i32.add (ref.is_null (local.get $a)) (ref.test (ref $s) (local.get $s))))

  (func (export "_start")
    (local $e externref)
    (local.set $e (call $make))
    (drop (call $keep (local.get $e)))
    (drop (call $any (local.get $e))))
)
