"""Which version answers each row, and which version sees a mirrored copy.

A row's routing key is its entity id (so one customer always meets one version) or, without one,
its request id (random). The key is hashed with the rollout's id as salt into [0, 1): below the
candidate's share goes to the candidate. Raising the share only adds keys to the candidate, so
a customer moved by a canary step stays moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Route:
    """One version a deployment sends rows to, and why (kept in the prediction log)."""

    deployment: str
    model: str
    version: int
    model_ref: str
    plan: str = "single"
    arm: str = "primary"
    rollout_id: int | None = None
    step: int | None = None

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"

    def as_log(self) -> dict[str, Any]:
        out: dict[str, Any] = {"plan": self.plan, "arm": self.arm, "model_ref": self.model_ref}
        if self.rollout_id is not None:
            out.update(rollout=self.rollout_id, step=self.step)
        return out


@dataclass(frozen=True)
class TrafficPlan:
    """A deployment's routing at one moment: the primary, and a candidate with a share of rows or a mirror."""

    deployment: str
    primary: Route
    candidate: Route | None = None
    candidate_share: float = 0.0  # 0..1 of rows answered by the candidate
    shadow_share: float = 0.0  # 0..1 of rows mirrored to the candidate
    fallback: bool = False
    warm: tuple[Route, ...] = field(default=())  # versions every process should hold loaded
    salt: str = ""

    @property
    def main(self) -> Route:
        """The version that answers most rows (what V2 metadata reports)."""
        return self.candidate if self.candidate is not None and self.candidate_share > 0.5 else self.primary

    @property
    def routes(self) -> tuple[Route, ...]:
        """Every version this plan may send rows to (answering or mirrored)."""
        return (self.primary,) if self.candidate is None else (self.primary, self.candidate)

    def served(self, version: int | str) -> Route | None:
        """The route of ``version`` if this plan answers with it (V2 ``/versions/{v}``)."""
        for route in self.routes:
            if str(route.version) == str(version) and (route is self.primary or self.candidate_share > 0):
                return route
        return None

    def assign(self, keys: Sequence[str]) -> np.ndarray:
        """True where the candidate answers the row with routing key ``keys[i]``."""
        if self.candidate is None or self.candidate_share <= 0:
            return np.zeros(len(keys), dtype=bool)
        if self.candidate_share >= 1:
            return np.ones(len(keys), dtype=bool)
        return bucket(keys, self.salt) < self.candidate_share

    def mirror(self, keys: Sequence[str]) -> np.ndarray:
        """True where the row is also sent to the shadow."""
        if self.candidate is None or self.shadow_share <= 0:
            return np.zeros(len(keys), dtype=bool)
        if self.shadow_share >= 1:
            return np.ones(len(keys), dtype=bool)
        return bucket(keys, self.salt + ":shadow") < self.shadow_share


def bucket(keys: Sequence[str], salt: str) -> np.ndarray:
    """A stable, uniform position in [0, 1) for every key (blake2b, the same in every process)."""
    out = np.empty(len(keys), dtype=np.float64)
    prefix = salt.encode() + b"\x00"
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(prefix + key.encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64
    return out
