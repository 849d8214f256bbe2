"""Review rules: which answers a person must see before they are final, as a small expression.

A rule is a Python-like boolean expression over one answered row, parsed once (`ast`) and checked
against what the row has; only comparisons, ``and``/``or``/``not``, constants and these names run
(no calls, no attributes, nothing imported):

- ``prediction``: the model's answer (a class label as text for a classifier, a number otherwise);
- ``confidence``: the top class probability (classifiers that give probabilities, else missing);
- ``probability["fraud"]``: one class's probability;
- ``drifted``: true when an input is outside the reference range or a category the model never saw;
- any input feature by its name (``amount > 1000``), or ``inputs["a name with spaces"]``.

A comparison with a missing value (no confidence, a null input) is false, so a rule never holds a
row by accident of a gap.

>>> rule = ReviewRule.parse('prediction == "fraud" or confidence < 0.7', features=["amount"], classes=["fraud", "ok"])
>>> rule.matches({"prediction": "ok", "confidence": 0.65, "probability": {}, "inputs": {}, "drifted": False})
True
>>> rule.matches({"prediction": "ok", "confidence": 0.95, "probability": {}, "inputs": {}, "drifted": False})
False
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from matchday.review.errors import InvalidRule

Row = dict[str, Any]  # prediction, confidence, probability (class -> p), inputs (name -> value), drifted
_Eval = Callable[[Row], Any]
_MISSING = object()
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_BUILTIN_NAMES = ("prediction", "confidence", "drifted")
MAX_RULE_LENGTH = 2000
MAX_RULE_DEPTH = 50  # nested operators: far more than a rule needs, far fewer than Python's stack


def _depth(node: ast.AST) -> int:
    """How deeply ``node``'s expressions nest (iteratively: a deep tree does not exhaust the stack here)."""
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(current))
    return deepest


@dataclass(frozen=True)
class ReviewRule:
    text: str
    uses_drift: bool
    _test: _Eval

    @classmethod
    def parse(cls, text: str, *, features: Sequence[str], classes: Sequence[str] | None) -> ReviewRule:
        """The rule ``text``, checked against the deployment's ``features`` and ``classes``."""
        if not text.strip():
            raise InvalidRule("the review rule is empty")
        if len(text) > MAX_RULE_LENGTH:
            raise InvalidRule(f"the review rule is {len(text)} characters long; at most {MAX_RULE_LENGTH}")
        try:
            tree = ast.parse(text.strip(), mode="eval")
            if _depth(tree.body) > MAX_RULE_DEPTH:
                raise InvalidRule(f"the review rule nests deeper than {MAX_RULE_DEPTH} levels")
            compiler = _Compiler(list(features), list(classes) if classes is not None else None)
            test = compiler.node(tree.body)
        except SyntaxError as exc:
            raise InvalidRule(f"the review rule does not parse: {exc.msg} at column {exc.offset}", [text]) from exc
        except (RecursionError, MemoryError) as exc:
            raise InvalidRule(f"the review rule is too deeply nested to use ({type(exc).__name__})") from exc
        if compiler.problems:
            raise InvalidRule(f"the review rule {text!r} cannot be used", compiler.problems)
        return cls(text.strip(), compiler.uses_drift, test)

    def matches(self, row: Row) -> bool:
        try:
            return bool(self._test(row))
        except (TypeError, ValueError):  # a comparison of values of unlike types (text with a number): not a match
            return False


class _Compiler:
    def __init__(self, features: list[str], classes: list[str] | None) -> None:
        self.features, self.classes = features, classes
        self.problems: list[str] = []
        self.uses_drift = False

    def node(self, node: ast.expr) -> _Eval:
        if isinstance(node, ast.BoolOp):
            parts = [self.node(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda row: all(p(row) for p in parts)
            return lambda row: any(p(row) for p in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.node(node.operand)
            return lambda row: not inner(row)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            value = node.operand.value
            if isinstance(value, int | float) and not isinstance(value, bool):
                negative = -value
                return lambda row: negative
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Constant):
            value = node.value
            return lambda row: value
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            items = [self.node(e) for e in node.elts]
            return lambda row: [i(row) for i in items]
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        self.problems.append(f"{ast.unparse(node)!r}: not allowed in a review rule ({type(node).__name__})")
        return lambda row: False

    def _compare(self, node: ast.Compare) -> _Eval:
        left = self.node(node.left)
        steps = [(_COMPARE[type(op)], self.node(right)) for op, right in zip(node.ops, node.comparators, strict=True)]

        def compare(row: Row) -> bool:
            a = left(row)
            for op, right in steps:
                b = right(row)
                if a is None or b is None or a is _MISSING or b is _MISSING:
                    return False
                if not op(a, b):
                    return False
                a = b
            return True

        return compare

    def _name(self, name: str) -> _Eval:
        if name == "drifted":
            self.uses_drift = True
            return lambda row: row["drifted"]
        if name in ("prediction", "confidence"):
            return lambda row: row.get(name)
        if name in self.features:
            return lambda row: row["inputs"].get(name)
        self.problems.append(
            f"{name!r}: not a name a rule knows; use one of {', '.join(_BUILTIN_NAMES)}, probability[...] "
            f"or an input ({', '.join(self.features) or 'none'})"
        )
        return lambda row: None

    def _subscript(self, node: ast.Subscript) -> _Eval:
        if not (isinstance(node.value, ast.Name) and isinstance(node.slice, ast.Constant)):
            self.problems.append(f'{ast.unparse(node)!r}: write probability["class"] or inputs["feature"]')
            return lambda row: None
        key = node.slice.value
        if node.value.id == "probability":
            if self.classes is None:
                self.problems.append(f"{ast.unparse(node)!r}: this model gives no class probabilities")
            elif str(key) not in self.classes:
                self.problems.append(f"{ast.unparse(node)!r}: no class {key!r} (classes: {', '.join(self.classes)})")
            return lambda row: row["probability"].get(str(key))
        if node.value.id == "inputs":
            if key not in self.features:
                self.problems.append(f"{ast.unparse(node)!r}: no input {key!r} (inputs: {', '.join(self.features)})")
            return lambda row: row["inputs"].get(key)
        self.problems.append(f"{ast.unparse(node)!r}: only probability[...] and inputs[...] can be indexed")
        return lambda row: None
