"""Generated WebAssembly text for the benchmarks."""


def many_functions_wat(n: int, calls: int = 2) -> str:
    """A module of `n` functions; each keeps a struct ref and an i31 ref live across
    `calls` calls to other functions, so every call site has a stack map."""
    out = ["(module", "  (type $node (struct (field $v i32) (field $next (ref null $node))))"]
    for i in range(n):
        body = [
            f'  (func $f{i} (export "f{i}") (param $x i32) (param $p (ref null $node)) (result i32)',
            "    (local $s (ref $node)) (local $t (ref i31)) (local $acc i32)",
            f"    (local.set $s (struct.new $node (i32.const {i}) (local.get $p)))",
            f"    (local.set $t (ref.i31 (i32.const {i})))",
            "    (if (i32.eqz (local.get $x)) (then (return (i32.const 0))))",
        ]
        for c in range(calls):
            callee = (i + 1 + c) % n
            body.append(
                f"    (local.set $acc (i32.add (local.get $acc) (call $f{callee} "
                f"(i32.sub (local.get $x) (i32.const 1)) (local.get $s))))"
            )
            body.append(
                "    (local.set $acc (i32.add (local.get $acc) (i32.add "
                "(struct.get $node $v (local.get $s)) (i31.get_s (local.get $t)))))"
            )
        body.append("    (local.get $acc))")
        out.extend(body)
    out.append(")")
    return "\n".join(out) + "\n"


def deep_recursion_wat(depth: int) -> str:
    """`_start` recurses `depth` frames deep, each with a struct ref and an i31 ref
    live across its call, and traps (unreachable) at the bottom (like
    tests/programs/deep_trap.wat, deeper)."""
    return f"""(module
  (type $node (struct (field $v i32) (field $next (ref null $node))))
  (func $build (param $n i32) (param $prev (ref null $node)) (param $tag (ref eq)) (result i32)
    (local $s (ref $node))
    (local.set $s (struct.new $node (local.get $n) (local.get $prev)))
    (if (i32.eqz (local.get $n)) (then (unreachable)))
    (i32.add
      (call $build (i32.sub (local.get $n) (i32.const 1)) (local.get $s)
                   (ref.i31 (i32.add (i32.mul (local.get $n) (i32.const 3)) (i32.const 1))))
      (i32.add (struct.get $node $v (local.get $s)) (i31.get_s (ref.cast (ref i31) (local.get $tag))))))
  (func (export "_start")
    (drop (call $build (i32.const {depth - 1}) (ref.null $node) (ref.i31 (i32.const -7)))))
)
"""
