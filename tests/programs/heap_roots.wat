;; GC objects kept alive only by globals and tables (a root set beyond the stack),
;; held across a call that stops the process ($stop: `unreachable` under the CLI; a
;; host call for the Python host, which turns ;;STOP into the import: see heap_host.py).
;;   global 0 ($keep):   keep{val=100} -> {101}
;;   global 1 ($count):  an i32 (not a root); global 2 ($any): an i31 (no object)
;;   table 0 ($nodes):   [3] = {200} -> {201}, [5] = {300}, the rest null
;;   table 1 ($fns):     funcrefs (not GC roots)
;;   table 2 ($anys):    [0] = i31 9, [1] = {400}
;;   the stack:          $hold's parameter {1}
;;   and one $node no root keeps (val=77): garbage, not reachable
(module
  ;;IMPORT
  (type $node (struct (field $val i32) (field $next (mut (ref null $node)))))
  (memory 1)
  (global $keep (mut (ref null $node)) (ref.null $node))
  (global $count (mut i32) (i32.const 0))
  (global $any (mut anyref) (ref.null any))
  (table $nodes 8 (ref null $node))
  (table $fns 2 funcref)
  (table $anys 4 anyref)
  (elem (table $fns) (i32.const 0) func $stop $hold)

  (func $stop ;;STOP
  )

  (func $hold (param $x (ref $node)) (result i32)
    (call $stop)
    (struct.get $node $val (local.get $x)))

  (func $main (export "main") (result i32)
    (drop (struct.new $node (i32.const 77) (ref.null $node)))
    (global.set $keep
      (struct.new $node (i32.const 100) (struct.new $node (i32.const 101) (ref.null $node))))
    (global.set $count (i32.const 3))
    (global.set $any (ref.i31 (i32.const 5)))
    (table.set $nodes (i32.const 3)
      (struct.new $node (i32.const 200) (struct.new $node (i32.const 201) (ref.null $node))))
    (table.set $nodes (i32.const 5) (struct.new $node (i32.const 300) (ref.null $node)))
    (table.set $anys (i32.const 0) (ref.i31 (i32.const 9)))
    (table.set $anys (i32.const 1) (struct.new $node (i32.const 400) (ref.null $node)))
    (call $hold (struct.new $node (i32.const 1) (ref.null $node))))

  (func (export "_start") (drop (call $main)))
)
