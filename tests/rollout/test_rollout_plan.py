"""Rollout plans: defaults, validation, and matchday.yaml defaults overlaid by options."""

from __future__ import annotations

from typing import Any

import pytest

from matchday.errors import MatchdayError
from matchday.rollout import Gates, InvalidPlan, RolloutPlan, build_plan


def invalid(options: dict[str, Any], defaults: dict[str, Any] | None = None) -> InvalidPlan:
    """The error build_plan raises for ``options``; fails the test if it raises none."""
    with pytest.raises(InvalidPlan) as caught:
        build_plan(options, defaults)
    return caught.value


def details(error: InvalidPlan) -> str:
    return "\n".join(error.details)


# -- defaults --------------------------------------------------------------------------------------


def test_defaults() -> None:
    plan = build_plan({})
    assert plan.strategy == "canary"
    assert plan.steps == [10, 25, 50, 100]
    assert plan.interval == 300.0
    assert plan.min_requests == 200
    assert plan.failure_limit == 0
    assert plan.fallback is False
    assert plan.share is None
    assert plan.deadline is None and plan.step_deadline == 3000.0  # 10 x interval
    assert plan.initial_weight() == 10
    assert plan.shadow_share == 0.0
    assert plan.gates == Gates()
    assert plan.gates.labels == "optional"
    assert plan == RolloutPlan()


def test_step_deadline_is_at_least_a_minute_unless_given() -> None:
    assert build_plan({"interval": "1s"}).step_deadline == 60.0
    assert build_plan({"interval": 0, "deadline": 0}).step_deadline == 0.0
    assert build_plan({"interval": "2s", "deadline": "5s"}).step_deadline == 5.0


def test_strings_are_parsed_into_numbers() -> None:
    plan = build_plan({"steps": "5, 20,100", "interval": "5m", "deadline": "1.5h"})
    assert plan.steps == [5.0, 20.0, 100.0]
    assert plan.interval == 300.0
    assert plan.deadline == 5400.0
    assert build_plan({"interval": 90}).interval == 90.0


def test_initial_weight_and_shadow_share_per_strategy() -> None:
    assert build_plan({"strategy": "ab"}).initial_weight() == 50.0
    assert build_plan({"strategy": "ab", "share": 20}).initial_weight() == 20.0
    assert build_plan({"strategy": "ab", "share": 20}).shadow_share == 0.0
    shadow = build_plan({"strategy": "shadow"})
    assert (shadow.initial_weight(), shadow.shadow_share) == (0.0, 100.0)
    assert build_plan({"strategy": "shadow", "share": 30}).shadow_share == 30.0
    assert build_plan({"strategy": "bluegreen"}).initial_weight() == 0.0
    assert build_plan({"steps": [1, 100]}).initial_weight() == 1.0


def test_a_plan_survives_a_round_trip_through_its_dump() -> None:
    """The controller rebuilds the plan from the JSON the store kept."""
    plan = build_plan({"steps": "5,50,100", "interval": "30s", "gates": {"labels": "required", "min_labels": 10}})
    assert RolloutPlan(**plan.model_dump()) == plan


# -- refusals --------------------------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["soon", "-5s", "5 minutes", -3])
def test_invalid_interval(interval: Any) -> None:
    error = invalid({"interval": interval})
    assert details(error).startswith("interval: ")
    assert repr(interval) in details(error) or "negative" in details(error)


def test_invalid_deadline_names_the_field() -> None:
    assert details(invalid({"deadline": "tomorrow"})).startswith("deadline: ")


def test_steps_must_end_at_100() -> None:
    error = invalid({"steps": [10, 50]})
    assert "the last step must be 100" in details(error)
    assert "[10.0, 50.0]" in details(error)


@pytest.mark.parametrize("steps", [[50, 25, 100], [10, 10, 100], [10, 100, 100]])
def test_steps_must_increase(steps: list[float]) -> None:
    assert "steps must increase" in details(invalid({"steps": steps}))


@pytest.mark.parametrize("steps", [[0, 50, 100], [-5, 100], [10, 150]])
def test_steps_are_shares_in_percent(steps: list[float]) -> None:
    assert "(0, 100]" in details(invalid({"steps": steps}))


@pytest.mark.parametrize("steps", [[100], [50], "100"])
def test_a_single_step_is_refused_and_blue_green_suggested(steps: Any) -> None:
    assert "bluegreen" in details(invalid({"steps": steps}))


def test_no_steps_for_a_canary() -> None:
    assert "at least one step" in details(invalid({"steps": []}))
    assert "at least one step" in details(invalid({"steps": ""}))


def test_steps_that_are_not_numbers() -> None:
    assert "separated by commas" in details(invalid({"steps": "10;50;100"}))
    assert details(invalid({"steps": "ten,100"})).startswith("steps: ")


def test_other_strategies_ignore_canary_steps() -> None:
    assert build_plan({"strategy": "shadow", "steps": [50]}).strategy == "shadow"


def test_share_for_a_canary_is_refused() -> None:
    error = invalid({"share": 20})
    assert "share applies to shadow" in details(error)
    assert "share applies to shadow" in details(invalid({"strategy": "bluegreen", "share": 20}))


@pytest.mark.parametrize("share", [0, -1, 101])
def test_share_must_be_a_percent_above_zero(share: float) -> None:
    assert details(invalid({"strategy": "ab", "share": share})).startswith("share: ")


def test_fallback_for_a_shadow_is_refused() -> None:
    assert "fallback applies to canary and ab only" in details(invalid({"strategy": "shadow", "fallback": True}))
    assert "fallback applies" in details(invalid({"strategy": "bluegreen", "fallback": True}))
    assert build_plan({"strategy": "ab", "fallback": True}).fallback is True
    assert build_plan({"fallback": True}).fallback is True


def test_unknown_strategy() -> None:
    text = details(invalid({"strategy": "big-bang"}))
    assert text.startswith("strategy: ") and "canary" in text


def test_unknown_option_is_refused_by_name() -> None:
    error = invalid({"stepz": [10, 100]})
    assert error.details == ["stepz: Extra inputs are not permitted"]
    assert details(invalid({"gates": {"max_latency": 2}})).startswith("gates.max_latency: ")


@pytest.mark.parametrize(
    ("gates", "field"),
    [
        ({"labels": "sometimes"}, "gates.labels"),
        ({"max_error_rate_increase": 2}, "gates.max_error_rate_increase"),
        ({"max_latency_p99_ratio": 0}, "gates.max_latency_p99_ratio"),
        ({"min_labels": 0}, "gates.min_labels"),
        ({"max_prediction_divergence": -0.1}, "gates.max_prediction_divergence"),
    ],
)
def test_invalid_gates_name_the_gate(gates: dict[str, Any], field: str) -> None:
    assert details(invalid({"gates": gates})).startswith(f"{field}: ")


@pytest.mark.parametrize(("option", "value"), [("min_requests", 0), ("failure_limit", -1), ("warmup_rows", -1)])
def test_counts_out_of_range(option: str, value: int) -> None:
    assert details(invalid({option: value})).startswith(f"{option}: ")


def test_every_problem_is_listed_and_the_message_is_readable() -> None:
    error = invalid({"interval": "soon", "min_requests": 0, "bogus": 1})
    assert error.message == "invalid rollout plan"
    assert len(error.details) == 3
    assert {d.split(":")[0] for d in error.details} == {"interval", "min_requests", "bogus"}
    assert isinstance(error, MatchdayError)
    text = str(error)
    assert text.startswith("invalid rollout plan\n") and "  - interval: not a duration: 'soon'" in text
    assert "Value error" not in text


# -- matchday.yaml defaults under the options ------------------------------------------------------


def test_options_overlay_the_files_defaults() -> None:
    defaults = {
        "steps": [5, 50, 100],
        "interval": "1m",
        "min_requests": 50,
        "gates": {"labels": "required", "min_labels": 20},
    }
    plan = build_plan({"interval": "10s", "gates": {"max_error_rate_increase": 0.05}}, defaults)
    assert plan.steps == [5, 50, 100]  # from the file
    assert plan.interval == 10.0  # the option wins
    assert plan.min_requests == 50
    # gates merge key by key
    assert plan.gates.labels == "required" and plan.gates.min_labels == 20
    assert plan.gates.max_error_rate_increase == 0.05


def test_unset_options_keep_the_files_values() -> None:
    """The CLI passes every option, None where the user gave none."""
    defaults = {"strategy": "canary", "steps": [5, 50, 100], "fallback": True, "interval": "1m"}
    options = {
        "strategy": None,
        "steps": None,
        "interval": None,
        "min_requests": None,
        "failure_limit": None,
        "deadline": None,
        "fallback": None,
        "share": None,
        "gates": None,
    }
    plan = build_plan(options, defaults)
    assert plan.steps == [5, 50, 100]
    assert plan.fallback is True
    assert plan.interval == 60.0


def test_a_different_strategy_than_the_files_drops_its_strategy_numbers() -> None:
    defaults = {"strategy": "canary", "steps": [5, 50, 100], "fallback": True, "interval": "1m"}
    plan = build_plan({"strategy": "shadow"}, defaults)
    assert plan.strategy == "shadow"
    assert plan.fallback is False and plan.share is None
    assert plan.interval == 60.0  # not strategy-specific: kept
    ab = build_plan({"strategy": "ab", "share": 10}, {"strategy": "shadow", "share": 30})
    assert ab.share == 10
    assert build_plan({"strategy": "ab"}, {"strategy": "shadow", "share": 30}).share is None


def test_a_file_without_a_strategy_is_a_canary_for_the_overlay() -> None:
    """The file's canary numbers do not follow a shadow asked for on the command line."""
    plan = build_plan({"strategy": "shadow"}, {"steps": [5, 100], "fallback": True})
    assert plan.strategy == "shadow" and plan.fallback is False


def test_same_strategy_keeps_the_files_steps() -> None:
    plan = build_plan({"strategy": "canary"}, {"strategy": "canary", "steps": [20, 100]})
    assert plan.steps == [20, 100]
    assert build_plan({"strategy": "canary"}, {"steps": [20, 100]}).steps == [20, 100]


def test_an_invalid_file_default_is_reported_like_an_option() -> None:
    error = invalid({}, {"steps": [10, 50]})
    assert "the last step must be 100" in details(error)
    assert "stepz" in details(invalid({}, {"stepz": 1}))


def test_defaults_are_not_modified() -> None:
    defaults = {"steps": [5, 100], "gates": {"labels": "off"}}
    build_plan({"gates": {"min_labels": 3}}, defaults)
    assert defaults == {"steps": [5, 100], "gates": {"labels": "off"}}


# -- shadow_first and judged_only ------------------------------------------------------------------


def test_shadow_first_is_a_duration_that_starts_a_canary_mirroring() -> None:
    plan = build_plan({"shadow_first": "30m", "steps": [10, 50, 100], "interval": "5m"})
    assert plan.shadow_first == 1800.0
    assert (plan.initial_phase(), plan.initial_weight()) == ("shadow", 0.0)  # answers nothing yet
    assert RolloutPlan(**plan.model_dump()) == plan
    plain = build_plan({})
    assert plain.shadow_first is None and (plain.initial_phase(), plain.initial_weight()) == ("step", 10)
    assert build_plan({"shadow_first": 0}).shadow_first is None  # 0: no shadow phase
    assert build_plan({"shadow_first": "0s"}).initial_phase() == "step"
    assert details(invalid({"shadow_first": "later"})).startswith("shadow_first: ")
    assert "negative" in details(invalid({"shadow_first": -5}))


def test_shadow_first_applies_to_a_canary_only() -> None:
    for strategy in ("shadow", "bluegreen", "ab"):
        assert "shadow_first applies to canary only" in details(
            invalid({"strategy": strategy, "shadow_first": "5m"})
        ), strategy
    assert [build_plan({"strategy": s}).initial_phase() for s in ("shadow", "bluegreen", "ab")] == [
        "mirroring",
        "warming",
        "split",
    ]


def test_judged_only() -> None:
    assert build_plan({}).judged_only is False
    plan = build_plan({"judged_only": True})
    assert plan.judged_only and plan.gates.labels == "optional"  # the analysis treats labels as required
    assert RolloutPlan(**plan.model_dump()) == plan
    assert build_plan({"judged_only": True, "gates": {"labels": "required"}}).judged_only


def test_judged_only_refuses_what_would_skip_a_gate_or_has_no_controller() -> None:
    error = details(invalid({"judged_only": True, "gates": {"labels": "off"}}))
    assert "judged_only needs the accuracy gate judged, so gates.labels cannot be 'off'" in error
    # the file's labels: off meets the option's judged_only
    assert "cannot be 'off'" in details(invalid({"judged_only": True}, {"gates": {"labels": "off"}}))
    assert "judged_only applies to canary only" in details(invalid({"strategy": "shadow", "judged_only": True}))


def test_a_different_strategy_than_the_files_drops_its_canary_only_options() -> None:
    defaults = {"strategy": "canary", "shadow_first": "30m", "judged_only": True}
    plan = build_plan({"strategy": "shadow"}, defaults)
    assert plan.strategy == "shadow" and plan.shadow_first is None and not plan.judged_only
    kept = build_plan({"interval": "1m"}, defaults)
    assert kept.shadow_first == 1800.0 and kept.judged_only
