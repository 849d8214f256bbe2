"""The rollout page's plan in words, per strategy: what belongs to it is said, what does not is left out."""

from __future__ import annotations

from typing import Any

import pytest

from matchday.dashboard.plans import describe_plan, duration
from matchday.rollout import build_plan


def _stored(**options: Any) -> dict[str, Any]:
    """A plan as a rollout stores it: every field, the defaults filled in."""
    return build_plan(options).model_dump()


def test_a_canary_says_its_steps_holds_judging_and_gates() -> None:
    text = describe_plan(
        _stored(
            steps=[5, 50, 100],
            interval="10m",
            min_requests=500,
            failure_limit=2,
            deadline="2h",
            fallback=True,
            shadow_first="30m",
            judged_only=True,
            gates={"max_error_rate_increase": 0.005, "max_latency_p99_ratio": 1.2, "min_labels": 80},
        )
    )
    assert text["strategy"] == "canary"
    assert [s["text"] for s in text["steps"]] == [
        "5% of traffic, held at least 10 min and until each version has answered 500 rows",
        "50% of traffic, held at least 10 min and until each version has answered 500 rows",
        "100%: promoted",
    ]
    terms = dict(text["terms"])
    assert "for 30 min" in terms["shadow first"] and "answers nothing" in terms["shadow first"]
    assert "2 failed analyses are tolerated" in terms["judging"] and "after 2 h pauses" in terms["judging"]
    assert "every gate was judged and passed" in terms["promotion"] and "baseline" in terms["fallback"]
    gates = " | ".join(text["gates"])
    assert "at most 0.5 percentage points above" in gates and "1.2 × the baseline's + 5 ms" in gates
    assert "80 labelled rows per version; required" in gates  # judged_only requires labels


def test_a_canary_s_defaults_read_plainly() -> None:
    text = describe_plan(_stored())
    assert [s["weight"] for s in text["steps"]] == [10, 25, 50, 100]
    terms = dict(text["terms"])
    assert "the first failed analysis rolls back" in terms["judging"] and "after 50 min" in terms["judging"]
    assert set(terms) == {"judging"}  # no shadow phase, fallback or judged_only unless the plan has them
    assert "skipped while there are fewer labels" in text["gates"][-1]


@pytest.mark.parametrize(
    ("options", "name", "says"),
    [
        ({"strategy": "bluegreen", "warmup_rows": 32}, "blue-green", "warmed on the 32 most recent logged rows"),
        ({"strategy": "shadow", "share": 25}, "shadow", "25% of requests are mirrored to the candidate"),
        ({"strategy": "shadow"}, "shadow", "100% of requests are mirrored"),
        ({"strategy": "ab", "share": 30}, "A/B test", "30% of traffic to the candidate and 70% to the baseline"),
    ],
    ids=["bluegreen", "shadow-share", "shadow", "ab"],
)
def test_other_strategies_list_no_canary_steps_or_gates(options: dict[str, Any], name: str, says: str) -> None:
    stored = _stored(**options)
    assert stored["steps"]  # the canary's default steps are stored all the same
    text = describe_plan(stored)
    assert text["strategy"] == name and says in text["summary"]
    assert text["steps"] == [] and text["gates"] == []
    assert "promotes" in text["summary"]  # a person ends it


def test_an_ab_test_with_fallback_says_so() -> None:
    assert dict(describe_plan(_stored(strategy="ab", fallback=True))["terms"])["fallback"].startswith("a request")


def test_a_plan_that_no_longer_reads_is_shown_as_stored() -> None:
    text = describe_plan({"strategy": "canary", "steps": [50, 10], "retired_option": 1})
    assert text["steps"] == [] and text["terms"][0][0] == "as stored" and "retired_option" in text["terms"][0][1]


@pytest.mark.parametrize(
    ("seconds", "said"), [(0.25, "0.25 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min 59 s"), (90061, "1 d 1 h")]
)
def test_durations_read_as_people_say_them(seconds: float, said: str) -> None:
    assert duration(seconds) == said
