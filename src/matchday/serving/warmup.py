"""The row a version is warmed on at start-up: typical of its signature, so the first model call
(imports, lazy initialisation, caches) is paid before ``/v2/health/ready`` says ready, not by a client.

The reference data itself is not kept, only its signature (types, ranges, categories), so the row
is built from that: the middle of each numeric range, the first category seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matchday.registry import ColumnSpec, Signature


@dataclass(frozen=True)
class Warmed:
    """What warming one version did: its load and one scored row, or why it could not."""

    ref: str
    seconds: float
    error: str | None = None


def warm_row(signature: Signature) -> dict[str, Any]:
    """One row every input of ``signature`` accepts.

    >>> from matchday.registry import OutputSpec
    >>> warm_row(Signature(inputs=[ColumnSpec(name="amount", type="float", min=0.0, max=10.0),
    ...                            ColumnSpec(name="hour", type="integer", min=0.0, max=23.0),
    ...                            ColumnSpec(name="merchant", type="string", categories=["food", "fuel"]),
    ...                            ColumnSpec(name="online", type="boolean")],
    ...                    output=OutputSpec(task="regression")))
    {'amount': 5.0, 'hour': 12, 'merchant': 'food', 'online': False}
    """
    return {spec.name: _typical(spec) for spec in signature.inputs}


def _typical(spec: ColumnSpec) -> Any:
    if spec.categories:
        return spec.categories[0]
    if spec.type in ("float", "integer"):
        low = spec.min if spec.min is not None else spec.max if spec.max is not None else 0.0
        high = spec.max if spec.max is not None else low
        middle = low + (high - low) / 2
        return float(middle) if spec.type == "float" else round(middle)
    return {"boolean": False, "string": ""}[spec.type]
