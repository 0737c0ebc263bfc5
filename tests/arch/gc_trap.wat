;; Small GC program for the cross-arch (qemu-user) checks.
;; $rec(n, tag, prev) allocates a struct {n, prev}, keeps it and the i31 `tag` live
;; across the recursive call, and hits `unreachable` at n == 0. `tag` is typed (ref eq),
;; not (ref i31): Wasmtime leaves (ref i31) values out of stack maps (they are never heap
;; pointers), an eqref holding an i31 is traced. With n = 4 from _start the trap happens
;; 5 $rec frames deep; the frame whose call is at depth n keeps tag = i31(10*(n+1)+1)
;; (-7 in the outermost $rec) and the struct with v = n.
(module
  (type $node (struct (field $v i32) (field $next (ref null $node))))
  (func $rec (param $n i32) (param $tag (ref eq)) (param $prev (ref null $node)) (result i32)
    (local $s (ref $node))
    (local.set $s (struct.new $node (local.get $n) (local.get $prev)))
    (if (i32.eqz (local.get $n)) (then (unreachable)))
    (i32.add
      (call $rec (i32.sub (local.get $n) (i32.const 1))
                 (ref.i31 (i32.add (i32.mul (local.get $n) (i32.const 10)) (i32.const 1)))
                 (local.get $s))
      (i32.add (struct.get $node $v (local.get $s)) (i31.get_s (ref.cast (ref i31) (local.get $tag))))))
  (func (export "_start")
    (drop (call $rec (i32.const 4) (ref.i31 (i32.const -7)) (ref.null $node))))
)
