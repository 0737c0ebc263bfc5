;; Tail calls (return_call, return_call_ref, return_call_indirect) in functions
;; that also keep GC refs live across ordinary calls.
(module
  (type $node (struct (field $v i32) (field $next (ref null $node))))
  (type $step (func (param i32 (ref null $node)) (result i32)))
  (import "env" "tick" (func $tick (param i32)))
  (table $tab 2 funcref)
  (elem (table $tab) (i32.const 0) func $loop $sum)
  (elem declare func $loop)

  ;; Builds a list by tail-calling itself; the new node is live across a host call.
  (func $loop (type $step)
    (local $s (ref $node))
    (local.set $s (struct.new $node (local.get 0) (local.get 1)))
    (call $tick (local.get 0))
    (if (i32.eqz (local.get 0))
      (then (return_call $sum (i32.const 0) (local.get $s))))
    (return_call_ref $step (i32.sub (local.get 0) (i32.const 1)) (local.get $s) (ref.func $loop)))

  ;; Sums a list: the rest of the list is live across the call to tick.
  (func $sum (type $step)
    (local $rest (ref null $node))
    (if (ref.is_null (local.get 1)) (then (return (local.get 0))))
    (local.set $rest (struct.get $node $next (local.get 1)))
    (call $tick (struct.get $node $v (local.get 1)))
    (return_call_indirect $tab (type $step)
      (i32.add (local.get 0) (struct.get $node $v (local.get 1)))
      (local.get $rest)
      (i32.const 1)))

  (func (export "_start")
    (drop (call $loop (i32.const 6) (ref.null $node))))
)
