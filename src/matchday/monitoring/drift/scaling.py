"""Sums that stay finite for any finite values: kept in units of a power of two.

A logged input or a label may be any finite number (1e200 is a valid float and the server accepts
it), but its square overflows, and so does the sum of two 1e308s. An infinite sum is stored as JSON
null, and no later window can add to it. Scaled by ``2**-k``, with ``k`` the exponent that brings the
largest magnitude into [0.5, 1), n values sum to at most n and their squares to at most n;
multiplying by a power of two is exact, so nothing is lost for ordinary values, and tiny values
(1e-303) are scaled up, so their squares do not underflow to 0 either.

>>> k = scale_for(1e308)
>>> k, unscale(scale_down(1e308, k), k) == 1e308
(1024, True)
"""

from __future__ import annotations

import math

import numpy as np

MAX_SCALE = 1100  # beyond any float's exponent (-1074 to 1024): a stored scale past it is corrupt
ZERO_SCALE = -1074  # the scale of values that are all 0: any would do; the smallest never outranks another's


def scale_for(magnitude: float) -> int:
    """The ``k`` with ``magnitude * 2**-k`` in [0.5, 1) (`ZERO_SCALE` for 0)."""
    if not magnitude or not math.isfinite(magnitude):
        return ZERO_SCALE if magnitude == 0 else 0
    return math.frexp(float(magnitude))[1]


def scale_down(x: float, k: int, *, power: int = 1) -> float:
    """``x * 2**(-k * power)``: exact, or a gradual underflow towards 0; never an overflow for
    ``k >= 0`` (a value moved to a larger scale) or for ``x`` no larger than ``2**(k * power)``."""
    return math.ldexp(x, -k * power)


def scale_array(values: np.ndarray, k: int) -> np.ndarray:
    """``values * 2**-k`` in one vectorised pass (the same array when k is 0); no overflow when ``k``
    is the `scale_for` of their largest magnitude. A product with a power of two is exact, as
    ``np.ldexp`` is, and ten times faster; ldexp only where the factor itself is not a float."""
    if not k:
        return values
    return values * math.ldexp(1.0, -k) if abs(k) <= 1000 else np.ldexp(values, -k)


def unscale(x: float, k: int, *, power: int = 1) -> float:
    """``x * 2**(k * power)``, infinite (with x's sign) where the true value is beyond a float."""
    try:
        return math.ldexp(x, k * power)
    except OverflowError:
        return math.copysign(math.inf, x)
