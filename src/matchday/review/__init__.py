"""Humans in the loop: the five automation levels, which answers go to people (triage), the review
queue (leases, multi-review agreement, deadlines), and decisions that become labels."""

from matchday.review.agreement import settle
from matchday.review.automation import Automation, AutomationChange, check_policy
from matchday.review.errors import InvalidPolicy, InvalidRule, ReviewError
from matchday.review.estimates import (
    AccuracyEstimate,
    Agreement,
    Suggestion,
    agreement,
    estimate_accuracy,
    suggest,
    wilson_interval,
    wilson_lower_bound,
)
from matchday.review.levels import ORDER as LEVELS
from matchday.review.levels import AutomationLevel
from matchday.review.monitors import ReviewMonitors
from matchday.review.policy import AutomationPolicy, policy_of, window_start
from matchday.review.queue import ACTIONS, HUMAN, HUMAN_RULE, ReviewQueue, TickResult, decision_json, item_json
from matchday.review.rules import ReviewRule
from matchday.review.triage import FINAL, Triage, Verdict, audit_draw

__all__ = [
    "ACTIONS",
    "FINAL",
    "HUMAN",
    "HUMAN_RULE",
    "LEVELS",
    "AccuracyEstimate",
    "Agreement",
    "Automation",
    "AutomationChange",
    "AutomationLevel",
    "AutomationPolicy",
    "InvalidPolicy",
    "InvalidRule",
    "ReviewError",
    "ReviewMonitors",
    "ReviewQueue",
    "ReviewRule",
    "Suggestion",
    "TickResult",
    "Triage",
    "Verdict",
    "agreement",
    "audit_draw",
    "check_policy",
    "decision_json",
    "estimate_accuracy",
    "item_json",
    "policy_of",
    "settle",
    "suggest",
    "wilson_interval",
    "wilson_lower_bound",
    "window_start",
]
