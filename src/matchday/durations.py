"""Durations as people write them, read in one place for every part: a rollout's interval, a review
deadline, a retraining schedule, a monitor's cooldown, a token's expiry.

A duration is a number of seconds (``90``, ``"90"``, ``2.5``) or a number and a unit: ``250ms``, ``30s``,
``5m``, ``1.5h``, ``7d``, ``2w`` (any case, spaces allowed around and between them). Nothing else is:
not ``5 minutes``, not ``1e3s``, not a sign. It is never negative, nor infinite.

>>> parse_duration("1.5h")
5400.0
>>> parse_duration(" 10 s ")
10.0
>>> parse_duration("2W") == 14 * 86400
True
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator

FORMS = "a number of seconds, or a number and a unit: 250ms, 30s, 5m, 1.5h, 7d, 2w"
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*", re.IGNORECASE)


def parse_duration(value: Any, *, positive: bool = False) -> float:
    """Seconds from a number or a string as above; ``positive`` refuses zero too. A ValueError says why,
    naming the accepted forms (Pydantic reports it with the field)."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r} ({FORMS})")
    if isinstance(value, int | float):
        seconds = float(value)
    elif value is not None and (match := _DURATION.fullmatch(str(value))):  # a str, or numpy's int64
        seconds = float(match.group(1)) * UNIT_SECONDS[(match.group(2) or "s").lower()]
    else:
        raise ValueError(f"not a duration: {value!r} ({FORMS})")
    if not math.isfinite(seconds):
        raise ValueError(f"not a duration: {value!r} ({FORMS})")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative: {value!r}")
    if positive and seconds == 0:
        raise ValueError(f"{value!r}: a duration must be longer than zero")
    return seconds


def _seconds_or_none(value: Any) -> float | None:
    return None if value is None else parse_duration(value)


def _positive_seconds(value: Any) -> float:
    return parse_duration(value, positive=True)


# Pydantic field types: a field of one of these reads a duration as above and holds seconds.
Seconds = Annotated[float, BeforeValidator(parse_duration)]
PositiveSeconds = Annotated[float, BeforeValidator(_positive_seconds)]
OptionalSeconds = Annotated[float | None, BeforeValidator(_seconds_or_none)]
