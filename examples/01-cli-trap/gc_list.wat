;; Example 1: a wasm GC program that builds a linked list recursively and then,
;; at the bottom, walks one link past the end of the list: a null dereference
;; (Wasmtime's NullReference trap).
;;
;; Frame k of $push (k = 4, 3, 2, 1, 0 from the outside in) keeps live across
;; its call: the list node it made ($cell: struct with value k*10), an i31
;; holding k*100 (passed as an eqref), and an array of k+1 i32s.
(module
  (type $cell (struct (field $value i32) (field $next (ref null $cell))))
  (type $ints (array (mut i32)))
  (func $push (param $k i32) (param $next (ref null $cell)) (param $tag (ref eq)) (result i32)
    (local $me (ref $cell))
    (local $arr (ref $ints))
    (local.set $me (struct.new $cell (i32.mul (local.get $k) (i32.const 10)) (local.get $next)))
    (local.set $arr (array.new $ints (local.get $k) (i32.add (local.get $k) (i32.const 1))))
    (if (i32.eqz (local.get $k))
      (then
        ;; Bottom: cells 10 -> 20 -> 30 -> 40 -> null; one step too far traps.
        (return (struct.get $cell $value
          (struct.get $cell $next (struct.get $cell $next (struct.get $cell $next
            (struct.get $cell $next (local.get $next)))))))))
    (i32.add
      (call $push (i32.sub (local.get $k) (i32.const 1)) (local.get $me)
                  (ref.i31 (i32.mul (i32.sub (local.get $k) (i32.const 1)) (i32.const 100))))
      (i32.add (i32.add (struct.get $cell $value (local.get $me))
                        (array.len (local.get $arr)))
               (i31.get_s (ref.cast (ref i31) (local.get $tag))))))
  (func (export "_start")
    (drop (call $push (i32.const 4) (ref.null $cell) (ref.i31 (i32.const 400)))))
)
