"""The lockdown the demo's retraining step streams (the step itself runs in tests/demo/test_demo_headless.py)."""

from __future__ import annotations

from matchday.demo.fraud import transactions


def test_the_lockdown_moves_shopping_online_and_makes_abroad_the_fraud() -> None:
    import numpy as np

    lockdown = transactions(5_000, seed=3, lockdown=1.0)
    assert np.mean(lockdown["card_present"].to_numpy(zero_copy_only=False)) < 0.2
    abroad = lockdown["country"].to_numpy(zero_copy_only=False) == "abroad"
    fraud = lockdown["is_fraud"].to_numpy()
    assert fraud[abroad].mean() > 3 * fraud[~abroad].mean()
