"""Help says what each option takes and what it defaults to: `matchday rollout start --help` names its values
(DURATION, PERCENTS...) where Typer would print `<str>`, and shows the plan's defaults, the same as the plan's."""

from __future__ import annotations

import re

import pytest
from support.cli_in_process import run_in_process

from matchday.cli.rollout import GATE_DEFAULTS
from matchday.durations import parse_duration
from matchday.rollout import Gates, RolloutPlan


@pytest.fixture(scope="module")
def rollout_help() -> dict[str, str]:
    """Each option's row of `matchday rollout start --help`, a row wrapped over lines joined again."""
    shown = run_in_process(["rollout", "start", "--help"], {"COLUMNS": "200", "TERM": "dumb"})
    assert shown.returncode == 0, shown.stderr
    rows: dict[str, str] = {}
    current = ""
    for line in shown.stdout.splitlines():
        cell = line.strip().strip("│").strip()
        if cell.startswith("--") or cell.startswith("*"):
            current = cell.split()[0] if cell.startswith("--") else cell.split()[1]
            rows[current] = cell
        elif current and cell and not line.startswith(("╰", "╭")):
            rows[current] += " " + cell
    return rows


def default_of(row: str) -> str:
    found = re.search(r"\[default: \((.*)\)\]", row)
    assert found, row
    return found.group(1)


def test_rollout_start_names_what_each_option_takes(rollout_help: dict[str, str]) -> None:
    expected = {
        "--strategy": "STRATEGY",
        "--steps": "PERCENTS",
        "--interval": "DURATION",
        "--min-requests": "ROWS",
        "--failure-limit": "N",
        "--deadline": "DURATION",
        "--share": "PERCENT",
        "--gate": "NAME=VALUE",
    }
    for option, metavar in expected.items():
        assert rollout_help[option].split()[1] == metavar, rollout_help[option]
    assert {"DEPLOYMENT", "CANDIDATE"} <= set(rollout_help)
    # a type placeholder is left on the arguments only: Typer prints an argument's type whatever its metavar
    placeholders = [name for name, row in rollout_help.items() if name != "--help" and re.search(r"<\w", row)]
    assert placeholders == ["DEPLOYMENT", "CANDIDATE"]
    fallback = rollout_help["--fallback"].split()
    assert fallback[:2] == ["--fallback", "--no-fallback"] and not fallback[2].startswith("<")  # a flag takes nothing


def test_rollout_start_shows_the_plans_defaults(rollout_help: dict[str, str]) -> None:
    plan = RolloutPlan()
    assert default_of(rollout_help["--strategy"]) == plan.strategy
    assert [float(s) for s in default_of(rollout_help["--steps"]).split(",")] == plan.steps
    assert parse_duration(default_of(rollout_help["--interval"])) == plan.interval
    assert int(default_of(rollout_help["--min-requests"])) == plan.min_requests
    assert int(default_of(rollout_help["--failure-limit"])) == plan.failure_limit
    assert default_of(rollout_help["--fallback"]) == ("fallback" if plan.fallback else "no-fallback")
    assert plan.step_deadline == max(10 * plan.interval, 60.0)  # what --deadline's default says in words
    assert "10 x interval, at least 60s" in rollout_help["--deadline"]
    shares = dict(part.split() for part in default_of(rollout_help["--share"]).split(", "))
    assert RolloutPlan(strategy="shadow").shadow_share == float(shares["shadow"])
    assert RolloutPlan(strategy="ab").initial_weight() == float(shares["ab"])
    gates = dict(item.split("=") for item in GATE_DEFAULTS.split(", "))
    assert {k: str(v) for k, v in Gates().model_dump().items()} == gates
    assert " ".join(GATE_DEFAULTS.split()) in " ".join(rollout_help["--gate"].split())
