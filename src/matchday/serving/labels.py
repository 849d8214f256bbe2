"""Ground-truth labels checked against what the deployed versions predict, before any is joined.

A label no version could have predicted ("yes" for a classifier of [0, 1], a string for a regressor)
joins as a wrong answer forever after: accuracy falls, drift of the labels fires, and nothing says
why. So a feedback request with one such label is refused whole (a 422 listing each), and nothing
of it is written.

Labels and classes are compared as the prediction log compares them: as text, with a float that
is a whole number read as the integer (JSON round trips turn 1 into 1.0), so 1, 1.0 and "1" are
all class 1; a boolean is only ever True or False.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from matchday.registry import OutputSpec
from matchday.serving.errors import InvalidLabels

Label = tuple[str, str, Any]  # (key kind, key, label), as the feedback endpoint parsed them


def check_labels(labels: Sequence[Label], outputs: Mapping[str, OutputSpec]) -> None:
    """Raise `InvalidLabels` with every label that none of ``outputs`` (by version ref) accepts.

    >>> outputs = {"m:1": OutputSpec(task="classification", classes=[0, 1])}
    >>> check_labels([("request_id", "r1", 1.0), ("id", "a", "0")], outputs)
    >>> check_labels([("id", "a", "yes")], outputs)
    Traceback (most recent call last):
    ...
    matchday.serving.errors.InvalidLabels: 1 label(s) that m:1 could not have predicted
      - labels[0].label: "yes" is not one of the classes [0, 1]
    """
    accepts = [_acceptor(o) for o in outputs.values()]
    expected = _expected(list(outputs.values()))
    problems = [
        {
            "field": f"labels[{i}].label",
            "problem": f"{_json(value)} is not {expected}",
            "value": value,
            "expected": expected,
        }
        for i, (_, _, value) in enumerate(labels)
        if not any(accept(value) for accept in accepts)
    ]
    if problems:
        raise InvalidLabels(f"{len(problems)} label(s) that {', '.join(outputs)} could not have predicted", problems)


def label_key(value: Any) -> str:
    """A label as the prediction log compares it: text, with 1.0 read as "1"."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _acceptor(output: OutputSpec) -> Callable[[Any], bool]:
    if output.task == "regression":
        return _finite_number
    if not output.classes:  # a classifier that never named its classes: nothing to hold a label to
        return lambda value: value is not None
    keys = {label_key(c) for c in output.classes}
    return lambda value: value is not None and label_key(value) in keys


def _finite_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _expected(outputs: list[OutputSpec]) -> str:
    """What a label must be, for every version at once: ``one of the classes [0, 1]``, ``a finite number``."""
    classes: dict[str, Any] = {}
    for o in outputs:
        if o.task == "classification":
            classes.update((label_key(c), c) for c in o.classes or [])
    kinds = [f"one of the classes {_json(list(classes.values()))}"] if classes else []
    if any(o.task == "regression" for o in outputs):
        kinds.append("a finite number")
    return " or ".join(kinds) or "a label"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
