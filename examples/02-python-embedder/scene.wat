;; Example 2: wasm that builds a small scene graph and calls back into the
;; host while the scene is live on the wasm stack.
;;
;; $draw(depth) allocates a $node (id = depth, plus an array of `depth`
;; f64 weights) and keeps it live across the call to the next level; at
;; depth 0 it calls the host's `log` import, where the embedder stops.
(module
  (type $weights (array (mut f64)))
  (type $node (struct (field $id i32) (field $weights (ref $weights)) (field $parent (ref null $node))))
  (import "env" "log" (func $log (param i32)))
  (func $draw (param $depth i32) (param $parent (ref null $node)) (result i32)
    (local $me (ref $node))
    (local.set $me (struct.new $node (local.get $depth)
      (array.new $weights (f64.const 0.5) (local.get $depth)) (local.get $parent)))
    (if (i32.eqz (local.get $depth))
      (then (call $log (struct.get $node $id (local.get $me))) (return (i32.const 0))))
    (i32.add (call $draw (i32.sub (local.get $depth) (i32.const 1)) (local.get $me))
             (array.len (struct.get $node $weights (local.get $me)))))
  (func (export "render") (param $depth i32) (result i32)
    (call $draw (local.get $depth) (ref.null $node)))
)
