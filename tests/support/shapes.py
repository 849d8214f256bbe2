"""Whether a JSON value fits a declared shape (a `TypedDict` and what it nests), checked at run time: the
tests' way to hold what a part writes and stores to the type other parts read it by."""

from __future__ import annotations

import types
from typing import Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints, is_typeddict


def misfits(value: Any, shape: Any, path: str = "$") -> list[str]:
    """Where ``value`` does not fit ``shape``, one line each (empty: it fits). A TypedDict's required
    keys must be there and no other keys than it declares; ``float`` takes an int (JSON does not tell
    ``1.0`` from ``1``); a class (``Buckets``, an estimate) takes its instances."""
    if shape is Any:
        return []
    if is_typeddict(shape):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a {shape.__name__}"]
        hints = get_type_hints(shape, include_extras=True)
        optional = {key for key, hint in hints.items() if get_origin(hint) is NotRequired}
        hints = {key: get_args(hint)[0] if key in optional else hint for key, hint in hints.items()}
        # (not ``__required_keys__``: under ``from __future__ import annotations`` Python 3.11 counts every key)
        out = [f"{path}: no {key!r}" for key in sorted(hints.keys() - optional - value.keys())]
        out += [f"{path}: {key!r} is not a key of {shape.__name__}" for key in sorted(value.keys() - hints.keys())]
        for key in sorted(value.keys() & hints.keys()):
            out += misfits(value[key], hints[key], f"{path}.{key}")
        return out
    origin, args = get_origin(shape), get_args(shape)
    if origin in (Union, types.UnionType):
        tried = [misfits(value, arg, path) for arg in args]
        return [] if any(not t for t in tried) else [f"{path}: fits none of {shape}: {tried}"]
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, not a list"]
        return [line for i, item in enumerate(value) for line in misfits(item, args[0], f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not a dict"]
        out = [line for key in value for line in misfits(key, args[0], f"{path} key {key!r}")]
        return out + [line for key, item in value.items() for line in misfits(item, args[1], f"{path}[{key!r}]")]
    if shape is type(None) or shape is None:
        return [] if value is None else [f"{path}: {value!r}, not null"]
    if shape is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r}, not a number"]
    if shape is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: {value!r}, not an integer"]
    if isinstance(shape, type):
        return [] if isinstance(value, shape) else [f"{path}: {type(value).__name__}, not a {shape.__name__}"]
    raise TypeError(f"{path}: no check for {shape!r}")
