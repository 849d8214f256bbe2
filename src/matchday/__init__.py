"""matchday: take trained models onto the field and keep watch during the match.

>>> import matchday
>>> sorted(n for n in matchday.__all__ if n.endswith("_model"))
['load_model', 'register_model']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from matchday.errors import MatchdayError

if TYPE_CHECKING:
    from matchday.client import Client
    from matchday.registry import Predictor, Signature
    from matchday.store import ModelVersionRecord
    from matchday.workspace import Workspace

__version__ = "0.1.0"
_LAZY = {
    "Client": "matchday.client",
    "Predictor": "matchday.registry",
    "Signature": "matchday.registry",
    "Workspace": "matchday.workspace",
}


def __getattr__(name: str) -> Any:
    """The public names on first use: `import matchday` (and so `matchday --help`) does not import
    NumPy, pyarrow, SQLAlchemy and httpx until something needs them."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'matchday' has no attribute {name!r}")


def register_model(
    name: str,
    model: Any,
    *,
    reference: Any = None,
    target: str | None = None,
    signature: Signature | dict[str, Any] | None = None,
    flavor: str | None = None,
    trust_pickle: bool = False,
    proba: str | None = None,
    description: str | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    alias: str | None = None,
) -> ModelVersionRecord:
    """Register the next version of ``name``.

    ``model`` is a fitted estimator, a path (``.skops``, ``.onnx``, ``.pkl``/``.joblib`` with
    ``trust_pickle``, an MLflow model directory) or ``"module:function"``. ``reference`` is the
    data the model was trained or validated on (a DataFrame, Table, dict or a CSV/Parquet path):
    it gives the signature and the reference profile that drift is measured against. ``target``
    names a label column in it, profiled but not an input.
    """
    from matchday.workspace import default_workspace

    return default_workspace().registry.register(
        name,
        model,
        reference=reference,
        target=target,
        signature=signature,
        flavor=flavor,
        trust_pickle=trust_pickle,
        proba=proba,
        description=description,
        metrics=metrics,
        tags=tags,
        alias=alias,
    )


def load_model(ref: str) -> Predictor:
    """Load ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` as a `Predictor`, its bytes checked first."""
    from matchday.workspace import default_workspace

    return default_workspace().registry.load(ref)


__all__ = [
    "Client",
    "MatchdayError",
    "Predictor",
    "Signature",
    "Workspace",
    "__version__",
    "load_model",
    "register_model",
]
