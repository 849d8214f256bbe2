"""A plain Python function given as ``module:function``; it receives a pandas DataFrame.

Only the import path is stored: the code must be importable where the model is served.
An optional ``module:function`` for probabilities makes ``predict_proba`` available.

It needs no trust flag: the artifact is a JSON pair of names and nothing is deserialized from it.
Loading imports a module that is already installed where matchday runs (the operator's own code,
on ``sys.path``), exactly as any ``import`` would; the path must match ``module:attr`` (no file
paths, no expressions), so a stored name can only select code that is already installed there.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from matchday.registry.errors import InvalidModel
from matchday.registry.flavors.base import Flavor, Packed, Predictor, as_pandas

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")


def resolve(path: str) -> Callable[..., Any]:
    """Import ``module:attr.attr`` and check the result can be called."""
    if not _IMPORT_PATH.match(path):
        raise InvalidModel(f"{path!r} is not an import path of the form module:function")
    module_name, attr = path.split(":", 1)
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidModel(f"cannot import module {module_name!r} for {path!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InvalidModel(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InvalidModel(f"{path!r} is a {type(obj).__name__}, not a function")
    function: Callable[..., Any] = obj
    return function


def import_path_of(fn: Any) -> str | None:
    """``module:qualname`` for a function defined at module level, else None."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not qualname or "<" in qualname or module == "__main__":
        return None
    return f"{module}:{qualname}"


class CallablePredictor(Predictor):
    flavor = "callable"
    accepts_float_rows = True  # it reads its input through as_pandas / as_matrix

    def __init__(self, target: str, proba: str | None = None) -> None:
        super().__init__()
        self.target, self.proba = target, proba
        self.fn = resolve(target)
        self.proba_fn = resolve(proba) if proba else None

    @property
    def has_proba(self) -> bool:
        return self.proba_fn is not None

    def _predict(self, table: pa.Table) -> Any:
        return self.fn(as_pandas(table))

    def _predict_proba(self, table: pa.Table) -> Any:
        assert self.proba_fn is not None
        return self.proba_fn(as_pandas(table))


class CallableFlavor(Flavor):
    name = "callable"

    def pack(self, model: Any, *, trust_pickle: bool = False, proba: str | None = None) -> Packed | None:
        if isinstance(model, str) and _IMPORT_PATH.match(model) and not Path(model).exists():
            target = model
        elif callable(model) and not hasattr(model, "predict") and not isinstance(model, (str, Path)):
            target = import_path_of(model)  # type: ignore[assignment]
            if target is None:
                raise InvalidModel(
                    f"{model!r} cannot be stored by import path (a lambda, closure or __main__ function); "
                    "define it at module level in an importable module"
                )
        else:
            return None
        options = {"target": target, "proba": proba}
        data = json.dumps(options, sort_keys=True).encode()
        return Packed("callable", data, CallablePredictor(target, proba), options)

    def load(self, data: bytes, options: dict[str, Any], cache_dir: Path) -> Predictor:
        spec = json.loads(data)
        return CallablePredictor(spec["target"], spec.get("proba"))
