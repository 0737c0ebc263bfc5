;; A known GC object graph, held live by one frame across a call that stops the
;; process ($stop: `unreachable` under the CLI; a host call for the Python host,
;; see heap_host.py, which turns STOP below into the import).
;;   list:  head{val=10} -> {20} -> {30} -> {40} -> tail{50} -> null
;;   tree:  7 $tree nodes, key 4 at the root, 2/6 below, 1/3/5/7 leaves
;;   refs:  $refs[4] = [head, null, lone{val=99}, tail]
;;   cyc:   c1{id=1} <-> c2{id=2}
;;   all:   one $all with every field type (values in _start)
;;   bases: $bases[1] = [$derived{tag=7, extra=-1}] (a subtype in a supertype's array)
;;   and two $node objects no root keeps (val=77, val=78): garbage, not reachable
(module
  ;;IMPORT
  (type $node (struct (field $val i32) (field $next (mut (ref null $node)))))
  (type $tree (struct (field $key i32) (field $left (ref null $tree)) (field $right (ref null $tree))))
  (type $refs (array (mut (ref null $node))))
  (type $cyc (struct (field $id i64) (field $other (mut (ref null $cyc)))))
  (type $all (struct
    (field $p8 (mut i8)) (field $p16 (mut i16)) (field $i32 i32) (field $i64 i64)
    (field $f32 f32) (field $f64 f64) (field $v128 v128) (field $ref (ref null $node))
    (field $i31 i31ref) (field $any anyref)))
  (rec
    (type $base (sub (struct (field $tag i32))))
    (type $derived (sub final $base (struct (field $tag i32) (field $extra i64)))))
  (type $bases (array (ref null $base)))

  (func $stop ;;STOP
  )

  (func $tree_of (param $lo i32) (param $hi i32) (result (ref null $tree))
    (local $mid i32)
    (if (i32.gt_s (local.get $lo) (local.get $hi)) (then (return (ref.null $tree))))
    (local.set $mid (i32.shr_s (i32.add (local.get $lo) (local.get $hi)) (i32.const 1)))
    (struct.new $tree (local.get $mid)
      (call $tree_of (local.get $lo) (i32.sub (local.get $mid) (i32.const 1)))
      (call $tree_of (i32.add (local.get $mid) (i32.const 1)) (local.get $hi))))

  (func $hold (param $list (ref $node)) (param $tree (ref null $tree)) (param $refs (ref $refs))
              (param $cyc (ref $cyc)) (param $all (ref $all)) (param $bases (ref $bases)) (result i32)
    (call $stop)
    (i32.add
      (i32.add (struct.get $node $val (local.get $list)) (struct.get $tree $key (local.get $tree)))
      (i32.add
        (i32.add (array.len (local.get $refs)) (i32.wrap_i64 (struct.get $cyc $id (local.get $cyc))))
        (i32.add (struct.get $all $i32 (local.get $all)) (array.len (local.get $bases))))))

  (func $main (export "main") (result i32)
    (local $tail (ref $node)) (local $head (ref $node)) (local $c1 (ref $cyc)) (local $c2 (ref $cyc))
    (drop (struct.new $node (i32.const 77) (struct.new $node (i32.const 78) (ref.null $node))))
    (local.set $tail (struct.new $node (i32.const 50) (ref.null $node)))
    (local.set $head
      (struct.new $node (i32.const 10)
        (struct.new $node (i32.const 20)
          (struct.new $node (i32.const 30)
            (struct.new $node (i32.const 40) (local.get $tail))))))
    (local.set $c1 (struct.new $cyc (i64.const 1) (ref.null $cyc)))
    (local.set $c2 (struct.new $cyc (i64.const 2) (local.get $c1)))
    (struct.set $cyc $other (local.get $c1) (local.get $c2))
    (call $hold
      (local.get $head)
      (call $tree_of (i32.const 1) (i32.const 7))
      (array.new_fixed $refs 4 (local.get $head) (ref.null $node)
        (struct.new $node (i32.const 99) (ref.null $node)) (local.get $tail))
      (local.get $c1)
      (struct.new $all
        (i32.const -5) (i32.const 0xBEEF) (i32.const -123456)
        (i64.const 0x8000000000000001) (f32.const 1.5) (f64.const -2.5e300)
        (v128.const i32x4 1 2 3 0xFFFFFFFF) (local.get $tail) (ref.i31 (i32.const 77))
        (local.get $c2))
      (array.new_fixed $bases 1 (struct.new $derived (i32.const 7) (i64.const -1)))))

  (func (export "_start") (drop (call $main)))
)
