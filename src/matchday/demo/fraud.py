"""Synthetic card transactions with a fraud label, generated from a seed (nothing downloaded).

Fraud is likelier for large amounts, at night, online, and abroad. ``concept_shift`` moves the
rule (fraudsters switch to small daytime amounts) without changing the inputs' distribution:
the concept drift that later parts of the demo must catch. ``amount_scale`` and ``abroad`` shift
the inputs (prices rise, more travel) while the rule stays: data drift. ``lockdown`` does both at
once: shopping moves online and baskets grow (inputs), and nobody travels, so a card used abroad is
now the stolen one while big online baskets are genuine (the rule): the fraud model starts flagging
genuine customers, and only a model trained on the new labels fixes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

MERCHANTS = ["grocery", "electronics", "travel", "fuel", "restaurant", "online_services"]
COUNTRIES = ["home", "neighbour", "abroad"]


def transactions(
    n: int,
    seed: int = 0,
    concept_shift: float = 0.0,
    amount_scale: float = 1.0,
    abroad: float = 0.05,
    lockdown: float = 0.0,
) -> pa.Table:
    """``n`` transactions with columns amount, hour, merchant, country, card_present, is_fraud.

    >>> t = transactions(1000, seed=1)
    >>> t.num_rows, 0.02 < sum(t["is_fraud"].to_pylist()) / 1000 < 0.25
    (1000, True)
    """
    rng = np.random.default_rng(seed)
    amount = np.round(rng.lognormal(mean=3.5, sigma=1.0, size=n) * amount_scale * (1 + lockdown), 2)
    hour = rng.integers(0, 24, size=n)
    merchant = rng.choice(MERCHANTS, size=n, p=[0.3, 0.1, 0.05, 0.2, 0.25, 0.1])
    country = rng.choice(COUNTRIES, size=n, p=[0.9 - abroad, 0.1, abroad])
    card_present = rng.random(n) < 0.7 - 0.6 * lockdown  # lockdown: nine in ten online
    night = (hour < 6) | (hour >= 23)
    old_rule = 1.2 * np.log1p(amount) + 1.5 * night + 1.2 * ~card_present + 1.5 * (country == "abroad")
    new_rule = 2.5 * (amount < 30) + 1.5 * ~night + 1.2 * (merchant == "online_services")
    lockdown_rule = 4.0 * (country == "abroad") + 2.0 * (merchant == "online_services") + 0.5 * np.log1p(amount)
    score = (
        (1 - concept_shift - lockdown) * old_rule
        + concept_shift * new_rule
        + lockdown * lockdown_rule
        - 8.0
        + 4.5 * concept_shift
        + 3.0 * lockdown
    )
    is_fraud = rng.random(n) < 1 / (1 + np.exp(-score))
    return pa.table(
        {
            "amount": amount,
            "hour": hour,
            "merchant": merchant,
            "country": country,
            "card_present": card_present,
            "is_fraud": is_fraud.astype(np.int64),
        }
    )


def fraud_pipeline(model: Any = None, seed: int = 0) -> Any:
    """The demo's fraud model, unfitted: one-hot for merchant and country, then ``model`` (gradient boosting
    by default)."""
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    return make_pipeline(
        make_column_transformer(
            (OneHotEncoder(handle_unknown="ignore"), ["merchant", "country"]), remainder="passthrough"
        ),
        model if model is not None else HistGradientBoostingClassifier(max_iter=100, random_state=seed),
    )
