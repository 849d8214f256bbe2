"""What reviewed rows say about the model: accuracy over the whole stream, agreement with people,
and whether a deployment has earned a step up (or needs a step down) in automation.

Reviewed rows are not a simple random sample when a rule queues some of them: a rule picks the
doubtful rows, where the model is wrong more often. Each reviewed row is weighted by the inverse of
its chance of being queued (Horvitz-Thompson): 1 for rule-queued and every-row queues, ``1/rate``
for an audit sample. The estimate is then the accuracy of every answered row, not of the rows people
happened to see; its interval is Wilson's where one sampling rate covers all rows, and a normal one
with the strata's variances otherwise.

>>> round(wilson_lower_bound(95, 100), 4)
0.8882
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from matchday.monitoring import label_text
from matchday.review.levels import AutomationLevel
from matchday.store import ReviewItemRecord

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion (scipy's ``binomtest(...).proportion_ci("wilson")``)."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_lower_bound(successes: int, n: int, z: float = Z95) -> float:
    return wilson_interval(successes, n, z)[0]


@dataclass(frozen=True)
class AccuracyEstimate:
    accuracy: float | None  # of every answered row the reviewed ones stand for
    low: float | None
    high: float | None
    reviewed: int
    represented: float  # how many answered rows the reviewed ones stand for (the sum of their weights)


def agrees(item: ReviewItemRecord) -> bool:
    """The people's final label is the model's answer."""
    return label_text(item.label) == label_text(item.suggestion)


def estimate_accuracy(
    items: Sequence[ReviewItemRecord], queued: Mapping[float, int] | None = None, z: float = Z95
) -> AccuracyEstimate:
    """The model's accuracy over the stream, from decided items (any reason), each stratum of equal
    chance of review (``inclusion``) weighted by the rows it stands for: the items ``queued`` in it (all
    of them, decided or not; the decided ones if not given) over their chance. An audit stratum only
    partly reviewed still stands for all the rows it was drawn from."""
    strata: dict[float, list[bool]] = defaultdict(list)
    for item in items:
        if item.inclusion > 0:
            strata[item.inclusion].append(agrees(item))
    n = sum(len(v) for v in strata.values())
    if n == 0:
        return AccuracyEstimate(None, None, None, 0, 0.0)
    size = {i: max(len(h), (queued or {}).get(i, 0)) / i for i, h in strata.items()}  # stream rows per stratum
    if len(strata) == 1:  # one sampling rate: a simple random sample of its rows
        ((inclusion, hits),) = strata.items()
        low, high = wilson_interval(sum(hits), len(hits), z)
        return AccuracyEstimate(sum(hits) / len(hits), low, high, n, size[inclusion])
    total = sum(size.values())
    accuracy = sum(size[i] * sum(h) / len(h) for i, h in strata.items()) / total
    variance = 0.0
    for inclusion, hits in strata.items():
        share, reviewed = size[inclusion] / total, len(hits)
        finite = max(0.0, 1 - reviewed / size[inclusion])  # a stratum reviewed in full has no sampling error
        adjusted = (sum(hits) + 2) / (reviewed + 4)  # Agresti-Coull: no zero width when every row agreed
        variance += share * share * finite * adjusted * (1 - adjusted) / (reviewed + 4)
    half = z * math.sqrt(variance)
    return AccuracyEstimate(accuracy, max(0.0, accuracy - half), min(1.0, accuracy + half), n, total)


@dataclass(frozen=True)
class Agreement:
    rows: int
    agreed: int
    lower_bound: float  # Wilson's, at 95 %
    by_class: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # class -> (rows, agreed, lower bound)

    @property
    def rate(self) -> float | None:
        return self.agreed / self.rows if self.rows else None


def agreement(items: Sequence[ReviewItemRecord]) -> Agreement:
    """How often people's final label was the model's answer, overall and per answered class."""
    per: dict[str, list[bool]] = defaultdict(list)
    for item in items:
        per[label_text(item.suggestion)].append(agrees(item))
    rows = sum(len(v) for v in per.values())
    agreed = sum(sum(v) for v in per.values())
    return Agreement(
        rows,
        agreed,
        wilson_lower_bound(agreed, rows) if rows else 0.0,
        {c: (len(v), sum(v), wilson_lower_bound(sum(v), len(v))) for c, v in sorted(per.items())},
    )


@dataclass(frozen=True)
class Suggestion:
    deployment: str
    level: AutomationLevel
    move: str  # up | down | stay
    to: AutomationLevel | None
    reasons: list[str]
    evidence: dict[str, Any]


def suggest(
    deployment: str,
    level: AutomationLevel,
    audited: Sequence[ReviewItemRecord],
    critical_alerts: Sequence[str] = (),
    *,
    classes: Sequence[str] = (),
    target: float = 0.95,
    min_rows: int = 200,
    min_rows_per_class: int = 30,
) -> Suggestion:
    """One level down after a critical alert; one level up when people agreed with the model on at least
    ``min_rows`` audited rows with a Wilson lower bound of ``target`` or more, and on every class it
    answered and every one of ``classes`` (``min_rows_per_class`` rows each); else stay, saying what is missing."""
    seen = agreement(audited)
    evidence: dict[str, Any] = {
        "audited_rows": seen.rows,
        "agreement": seen.rate,
        "agreement_lower_bound": seen.lower_bound,
        "by_class": {c: {"rows": n, "agreed": a, "lower_bound": lb} for c, (n, a, lb) in seen.by_class.items()},
        "target": target,
        "critical_alerts": list(critical_alerts),
    }
    if critical_alerts:
        down = level.step(-1)
        reasons = [f"critical alert firing: {a}" for a in critical_alerts]
        return Suggestion(deployment, level, "down" if down else "stay", down, reasons, evidence)
    up = level.step(+1)
    if up is None:
        return Suggestion(deployment, level, "stay", None, ["already machine_controlled"], evidence)
    missing: list[str] = []
    if seen.rows < min_rows:
        missing.append(f"{seen.rows} audited rows; at least {min_rows} are needed")
    elif seen.lower_bound < target:
        missing.append(
            f"agreement {seen.rate:.3f} on {seen.rows} rows, lower bound {seen.lower_bound:.3f} < target {target}"
        )
    for name in classes:  # a class never audited (a rule holds all its answers) has shown nothing yet
        if name not in seen.by_class:
            missing.append(f"class {name}: 0 audited rows; at least {min_rows_per_class} are needed")
    for name, (n, agreed, lb) in seen.by_class.items():
        if n < min_rows_per_class:
            missing.append(f"class {name}: {n} audited rows; at least {min_rows_per_class} are needed")
        elif lb < target:
            missing.append(f"class {name}: agreement {agreed / n:.3f} on {n} rows, lower bound {lb:.3f} < {target}")
    if missing:
        return Suggestion(deployment, level, "stay", None, missing, evidence)
    reasons = [f"agreement {seen.rate:.3f} on {seen.rows} audited rows, lower bound {seen.lower_bound:.3f} >= {target}"]
    return Suggestion(deployment, level, "up", up, reasons, evidence)
