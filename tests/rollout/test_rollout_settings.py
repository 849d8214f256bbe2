"""Rollout plans declared in matchday.yaml become the defaults of `rollout start` for their deployment."""

from __future__ import annotations

from pathlib import Path

import pytest

from matchday.config import ConfigError, load_settings
from matchday.rollout import InvalidPlan
from matchday.workspace import Workspace


def test_plans_in_matchday_yaml_are_the_defaults_and_options_override_them(tmp_path: Path, cancer) -> None:  # type: ignore[no-untyped-def]
    from sklearn.tree import DecisionTreeClassifier

    config = tmp_path / "matchday.yaml"
    config.write_text(
        "rollouts:\n"
        "  screening:\n"
        "    steps: [5, 20, 100]\n"
        "    interval: 10m\n"
        "    min_requests: 500\n"
        "    gates: {labels: required, min_labels: 300}\n"
    )
    settings = load_settings({"MATCHDAY_HOME": str(tmp_path / "home")}, config_file=config)
    assert settings.rollouts["screening"]["interval"] == "10m"
    ws = Workspace(settings)
    try:
        X, y = cancer
        for depth in (2, 3):
            ws.registry.register(
                "cancer",
                DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y),
                reference=X.assign(label=y),
                target="label",
            )
        ws.deployments.deploy("screening", "cancer:1")
        ws.deployments.deploy("other", "cancer:1")
        record = ws.rollouts.start("screening", "cancer:2", {"min_requests": 50})
        assert record.plan["steps"] == [5, 20, 100] and record.plan["interval"] == 600
        assert record.plan["min_requests"] == 50  # the command line wins
        assert record.plan["gates"]["labels"] == "required" and record.plan["gates"]["min_labels"] == 300
        assert record.plan["gates"]["max_error_rate_increase"] == 0.01  # untouched gates keep their defaults
        assert ws.rollouts.start("other", "cancer:2").plan["steps"] == [10, 25, 50, 100]  # no entry: defaults
    finally:
        ws.close()


def test_a_bad_plan_in_matchday_yaml_is_reported_when_used(tmp_path: Path, cancer) -> None:  # type: ignore[no-untyped-def]
    from sklearn.tree import DecisionTreeClassifier

    config = tmp_path / "matchday.yaml"
    config.write_text("rollouts:\n  screening:\n    steps: [50, 20]\n    interval: soon\n")
    ws = Workspace(load_settings({"MATCHDAY_HOME": str(tmp_path / "home")}, config_file=config))
    try:
        X, y = cancer
        for depth in (2, 3):
            ws.registry.register(
                "cancer",
                DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y),
                reference=X.assign(label=y),
                target="label",
            )
        ws.deployments.deploy("screening", "cancer:1")
        with pytest.raises(InvalidPlan) as caught:
            ws.rollouts.start("screening", "cancer:2")
        assert any(d.startswith("interval") and "soon" in d for d in caught.value.details)
    finally:
        ws.close()


def test_rollouts_must_be_a_mapping_of_mappings(tmp_path: Path) -> None:
    config = tmp_path / "matchday.yaml"
    config.write_text("rollouts: [canary]\n")
    with pytest.raises(ConfigError, match="rollouts"):
        load_settings({}, config_file=config)


def test_without_a_matchday_yaml_here_the_homes_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make demo` writes its monitors into its home: `matchday serve` there afterwards watches as the demo did."""
    monkeypatch.chdir(tmp_path)
    home = tmp_path / ".matchday"
    home.mkdir()
    (home / "matchday.yaml").write_text("monitoring: {count_window: 500}\n")
    assert load_settings({}).monitoring.count_window == 500
    assert load_settings({"MATCHDAY_HOME": str(tmp_path / "other")}).monitoring.count_window != 500
    (tmp_path / "matchday.yaml").write_text("monitoring: {count_window: 200}\n")  # the working directory's first
    assert load_settings({}).monitoring.count_window == 200
    named = tmp_path / "named.yaml"
    named.write_text("monitoring: {count_window: 300}\n")
    assert load_settings({"MATCHDAY_CONFIG": str(named)}).monitoring.count_window == 300
