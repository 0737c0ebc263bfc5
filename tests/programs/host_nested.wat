;; For a Python host. start(act, depth) recurses `depth` times; each frame n
;; (n = depth remaining) keeps a $node struct (v = 1000*act + n) and an eqref
;; holding i31 3*(n+1)+1+1000*act (the outermost: -7-act) live across its call.
;; At n = 0 it calls the host import `hit(act)`, which may call start() again
;; (a nested activation) or stop the process.
(module
  (type $node (struct (field $v i32) (field $next (ref null $node))))
  (import "host" "hit" (func $hit (param i32)))
  (func $build (param $n i32) (param $act i32) (param $prev (ref null $node)) (param $tag (ref eq)) (result i32)
    (local $s (ref $node))
    (local.set $s (struct.new $node
      (i32.add (i32.mul (local.get $act) (i32.const 1000)) (local.get $n)) (local.get $prev)))
    (if (i32.eqz (local.get $n)) (then (call $hit (local.get $act)) (return (i32.const 0))))
    (i32.add
      (call $build (i32.sub (local.get $n) (i32.const 1)) (local.get $act) (local.get $s)
        (ref.i31 (i32.add (i32.add (i32.mul (local.get $n) (i32.const 3)) (i32.const 1))
                          (i32.mul (local.get $act) (i32.const 1000)))))
      (i32.add (struct.get $node $v (local.get $s)) (i31.get_s (ref.cast (ref i31) (local.get $tag))))))
  (func (export "start") (param $act i32) (param $depth i32) (result i32)
    (call $build (local.get $depth) (local.get $act) (ref.null $node)
      (ref.i31 (i32.sub (i32.const -7) (local.get $act)))))
)
