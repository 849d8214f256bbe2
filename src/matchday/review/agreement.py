"""What reviewers' decisions on one item add up to: agreement settles it, disagreement escalates it.

An item needs ``required`` independent reviews (skips do not count). When they are in and all give
the same label, it is decided. If they differ, the item is escalated: it goes back to the front of
the queue for one more reviewer, and is decided as soon as one label has a strict majority (two to
one after a split of two; three to two after a split of three ...).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from matchday.monitoring import label_text
from matchday.store import ReviewDecisionRecord, ReviewItemRecord, Settlement

ESCALATED_PRIORITY = -1  # ahead of every other item


def vote_label(item: ReviewItemRecord, decision: ReviewDecisionRecord) -> Any:
    """The label a decision gives: the model's answer when approved, the reviewer's when overridden."""
    return item.suggestion if decision.action == "approve" else decision.label


def settle(item: ReviewItemRecord, decisions: list[ReviewDecisionRecord]) -> Settlement:
    votes = [d for d in decisions if d.action != "skip"]
    if len(votes) < item.required:
        return Settlement(status=item.status)
    tally = Counter(label_text(vote_label(item, d)) for d in votes)
    (top, count), *rest = tally.most_common()
    unanimous = not rest
    if unanimous or (item.status == "escalated" and count * 2 > len(votes)):
        label = next(vote_label(item, d) for d in votes if label_text(vote_label(item, d)) == top)
        outcome = "approved" if top == label_text(item.suggestion) else "overridden"
        return Settlement(status="decided", outcome=outcome, label=label, decided_by=[d.reviewer for d in votes])
    return Settlement(status="escalated", required=len(votes) + 1, priority=ESCALATED_PRIORITY)
