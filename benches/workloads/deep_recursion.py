"""Deep recursion: a small Lisp whose programs nest 200-500 levels deep.

For each program the workload generates the source recursively, tokenises it, parses it with a
recursive-descent parser into nested lists, builds a tree of ``__slots__`` nodes, evaluates it,
constant-folds it into a new tree and renders it back to text, every pass recursing one Python
frame (or two, through comprehensions) per nesting level and allocating at each level.
"""

from __future__ import annotations

import random
import sys
from typing import Union

PROGRAMS_AT_SCALE_1 = 140
MIN_DEPTH = 200
MAX_DEPTH = 500
MODULUS = 1_000_003

Sexpr = Union[str, list["Sexpr"]]
_OPS = ("+", "*", "-", "max", "min", "let")


class Node:
    __slots__ = ("op", "args", "depth")

    def __init__(self, op: str, args: list[Node | int | str], depth: int) -> None:
        self.op = op
        self.args = args
        self.depth = depth


def generate(rng: random.Random, depth: int, out: list[str]) -> None:
    """Append the tokens of a random expression nested ``depth`` levels deep."""
    op = _OPS[depth % len(_OPS)]
    out.append(f"({op}")
    for _ in range(rng.randrange(1, 4)):
        if rng.random() < 0.2:
            out.append(f"x{rng.randrange(8)}")
        else:
            out.append(str(rng.randrange(1, 5000)))
    if depth > 0:
        generate(rng, depth - 1, out)
        if depth % 37 == 0:
            generate(rng, min(depth - 1, 3), out)
    out.append(")")


def parse(tokens: list[str], pos: int) -> tuple[Sexpr, int]:
    token = tokens[pos]
    if token != "(":
        return token, pos + 1
    items: list[Sexpr] = []
    pos += 1
    while tokens[pos] != ")":
        item, pos = parse(tokens, pos)
        items.append(item)
    return items, pos + 1


def build(expr: Sexpr, depth: int) -> Node | int | str:
    if isinstance(expr, str):
        return int(expr) if expr.isdigit() else expr
    head, *rest = expr
    assert isinstance(head, str)
    return Node(head, [build(item, depth + 1) for item in rest], depth)


def evaluate(node: Node | int | str, env: dict[str, int]) -> int:
    if isinstance(node, int):
        return node
    if isinstance(node, str):
        return env.get(node, 1)
    op = node.op
    if op == "let":
        # bind the first value for the rest of the expression, in a new scope
        scope = dict(env)
        scope[f"x{node.depth % 8}"] = evaluate(node.args[0], env)
        return sum(evaluate(arg, scope) for arg in node.args[1:]) % MODULUS
    values = [evaluate(arg, env) for arg in node.args]
    if op == "+":
        return sum(values) % MODULUS
    if op == "*":
        product = 1
        for value in values:
            product = product * value % MODULUS
        return product
    if op == "-":
        return (values[0] - sum(values[1:])) % MODULUS
    if op == "max":
        return max(values)
    return min(values)


def fold(node: Node | int | str) -> Node | int | str:
    """Constant-fold: a node whose arguments are all literals becomes its value."""
    if not isinstance(node, Node):
        return node
    args = [fold(arg) for arg in node.args]
    if node.op != "let" and all(isinstance(arg, int) for arg in args):
        return evaluate(Node(node.op, args, node.depth), {})
    return Node(node.op, args, node.depth)


def render(node: Node | int | str) -> str:
    if not isinstance(node, Node):
        return str(node)
    return f"({node.op} {' '.join(render(arg) for arg in node.args)})"


def run(scale: float) -> int:
    rng = random.Random(31337)
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 4 * MAX_DEPTH + 200))
    try:
        checksum = 0
        for _ in range(max(1, int(PROGRAMS_AT_SCALE_1 * scale))):
            tokens: list[str] = []
            generate(rng, rng.randrange(MIN_DEPTH, MAX_DEPTH), tokens)
            source = " ".join(tokens)
            expr, _ = parse(source.replace("(", "( ").replace(")", " )").split(), 0)
            tree = build(expr, 0)
            env = {f"x{k}": k + 2 for k in range(8)}
            value = evaluate(tree, env)
            folded = fold(tree)
            text = render(folded)
            checksum = (checksum * 31 + value + len(text) + len(source)) % (1 << 61)
        return checksum
    finally:
        sys.setrecursionlimit(old_limit)
