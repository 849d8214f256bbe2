"""A stored rollout plan said in words: what its strategy does, its steps, how long each is held and the
gates that judge it, and nothing that belongs to another strategy (a blue-green plan stores the canary's
default steps, which it never takes)."""

from __future__ import annotations

import json
from typing import Any, TypedDict

from matchday.rollout import Gates, RolloutPlan

STRATEGY_NAMES = {"canary": "canary", "shadow": "shadow", "bluegreen": "blue-green", "ab": "A/B test"}


class PlanStep(TypedDict):
    """One canary step: the candidate's share and what happens there."""

    weight: float
    text: str


class PlanText(TypedDict):
    """The rollout page's plan: a sentence for the strategy, the canary's steps and gates, other terms."""

    strategy: str
    summary: str
    steps: list[PlanStep]
    gates: list[str]
    terms: list[tuple[str, str]]


def describe_plan(plan: dict[str, Any]) -> PlanText:
    """The plan as the rollout page says it; a plan that no longer reads is shown as stored.

    >>> text = describe_plan({"strategy": "bluegreen", "steps": [10, 25, 50, 100], "warmup_rows": 16})
    >>> text["strategy"], text["steps"], text["gates"]
    ('blue-green', [], [])
    >>> [s["text"] for s in describe_plan({"steps": [20, 100], "interval": 90})["steps"]]
    ['20% of traffic, held at least 1 min 30 s and until each version has answered 200 rows', '100%: promoted']
    """
    try:
        parsed = RolloutPlan(**plan)
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        raw = json.dumps(plan, sort_keys=True, default=str)
        return {
            "strategy": str(plan.get("strategy", "?")),
            "summary": "",
            "steps": [],
            "gates": [],
            "terms": [("as stored", raw)],
        }
    return {
        "canary": _canary,
        "shadow": _shadow,
        "bluegreen": _bluegreen,
        "ab": _ab,
    }[parsed.strategy](parsed)


def _canary(plan: RolloutPlan) -> PlanText:
    held = f"held at least {duration(plan.interval)} and until each version has answered {plan.min_requests:,} rows"
    steps: list[PlanStep] = [{"weight": w, "text": f"{w:g}% of traffic, {held}"} for w in plan.steps[:-1]]
    steps.append({"weight": plan.steps[-1], "text": f"{plan.steps[-1]:g}%: promoted"})
    if plan.failure_limit == 0:
        failures = "the first failed analysis rolls back"
    else:
        failures = f"{plan.failure_limit} failed analyses are tolerated, one more rolls back"
    terms = [
        (
            "judging",
            f"each step is judged against the baseline by the gates; a pass moves on, {failures}; "
            f"a step still inconclusive after {duration(plan.step_deadline)} pauses for a person",
        )
    ]
    if plan.shadow_first:
        terms.insert(
            0,
            (
                "shadow first",
                f"all traffic mirrored to the candidate for {duration(plan.shadow_first)} (it answers nothing), "
                "judged on traffic, error rate and prediction divergence before the first step",
            ),
        )
    if plan.judged_only:
        terms.append(("promotion", "only after steps whose every gate was judged and passed (none skipped)"))
    if plan.fallback:
        terms.append(("fallback", "a request the candidate fails is answered by the baseline"))
    return {
        "strategy": "canary",
        "summary": "the candidate takes a growing share of traffic, step by step, while the controller "
        "compares it with the baseline",
        "steps": steps,
        "gates": _gates(plan.gates, plan.min_requests, plan.judged_only),
        "terms": terms,
    }


def _shadow(plan: RolloutPlan) -> PlanText:
    return {
        "strategy": "shadow",
        "summary": f"{plan.shadow_share:g}% of requests are mirrored to the candidate, which answers none of them; "
        "the baseline answers everything until a person promotes or rolls back",
        "steps": [],
        "gates": [],
        "terms": [],
    }


def _bluegreen(plan: RolloutPlan) -> PlanText:
    return {
        "strategy": "blue-green",
        "summary": f"the candidate is warmed on the {plan.warmup_rows:,} most recent logged rows, then all "
        "traffic switches to it at once; a person promotes it, or rolls back to switch traffic back",
        "steps": [],
        "gates": [],
        "terms": [],
    }


def _ab(plan: RolloutPlan) -> PlanText:
    share = plan.initial_weight()
    terms = [("fallback", "a request the candidate fails is answered by the baseline")] if plan.fallback else []
    return {
        "strategy": "A/B test",
        "summary": f"{share:g}% of traffic to the candidate and {100 - share:g}% to the baseline, "
        "until a person promotes or rolls back",
        "steps": [],
        "gates": [],
        "terms": terms,
    }


def _gates(gates: Gates, min_requests: int, judged_only: bool) -> list[str]:
    """Each gate a canary step must pass, in the order the analysis lists them."""
    labels = "required" if judged_only else gates.labels
    if labels == "off":
        metric = "accuracy (MAE for a regression): not judged (labels off)"
    else:
        when = (
            "required: too few labels holds the step"
            if labels == "required"
            else "skipped while there are fewer labels"
        )
        metric = (
            f"accuracy at most {gates.max_metric_drop:g} below the baseline's (MAE at most {gates.max_metric_drop:g} "
            f"above, for a regression), judged on {gates.min_labels:,} labelled rows per version; {when}"
        )
    return [
        f"traffic: each version answers at least {min_requests:,} rows",
        f"error rate: at most {100 * gates.max_error_rate_increase:g} percentage points above the baseline's",
        f"p99 latency: at most {gates.max_latency_p99_ratio:g} × the baseline's + "
        f"{1000 * gates.latency_slack_seconds:g} ms",
        f"prediction divergence: Jensen-Shannon distance of the two versions' predictions at most "
        f"{gates.max_prediction_divergence:g}",
        metric,
    ]


def duration(seconds: float) -> str:
    """Seconds as people say them: ``2 s``, ``5 min``, ``1 h 30 min``, ``2 d``.

    >>> [duration(s) for s in (0.5, 2, 90, 300, 5400, 172800)]
    ['0.5 s', '2 s', '1 min 30 s', '5 min', '1 h 30 min', '2 d']
    """
    if seconds < 60:
        return f"{seconds:g} s"
    parts = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if rest >= size:
            count, rest = divmod(rest, size)
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2])
