"""People in the loop: the fraud model at ``machine_led_human_governed``. Its declines wait for a person
(the answer says ``pending``), a sample of the rest is audited, two simulated reviewers work the
queue over the API (approving, and overriding where the model was wrong), and their decisions come
back as labels with ``source: human``: agreement, the weighted accuracy estimate, and whether the
evidence supports trusting the model more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from rich.console import Console

from matchday.client import Client
from matchday.demo.fraud import transactions
from matchday.demo.serving import running_server
from matchday.workspace import Workspace

DEPLOYMENT = "fraud-review"
RULE = "prediction == 1"  # a decline: a person confirms it before the customer is told
MISTAKES = 0.02  # how often a simulated reviewer gets it wrong


@dataclass(frozen=True)
class Outcome:
    """What the step saw: answers held for a person, items the reviewers decided, labels people gave."""

    answers: int
    held: int
    decided: int
    human_labels: int


def run(console: Console, ws: Workspace) -> Outcome:
    ws.deployments.deploy(DEPLOYMENT, "demo-fraud@champion")
    policy = {"level": "machine_led_human_governed", "review_rule": RULE, "review_deadline": "4h", "audit_rate": 0.05}
    change = ws.automation.set(DEPLOYMENT, policy, "demo", "declines need a person until the model earns trust")
    console.print(
        f"$ matchday deploy {DEPLOYMENT} demo-fraud@champion --automation machine_led_human_governed "
        f"--review-rule '{RULE}' --review-deadline 4h --audit-rate 0.05\n"
        f"  ({change.before.level.value if change.before else 'no policy'} -> {policy['level']}: "
        "declines wait for a person, 5 % of the other answers are audited)"
    )
    with running_server(ws) as url, Client(url) as client:
        stream = transactions(1_500, seed=31)
        truth = stream.column("is_fraud").to_pylist()
        rows = stream.drop_columns(["is_fraud"]).to_pylist()
        answers: list[dict[str, Any]] = []
        for start in range(0, len(rows), 100):  # a checkout service sending batches of transactions
            answers += client.predict(DEPLOYMENT, rows[start : start + 100])["predictions"]
        truth_of = {a["request_id"]: t for a, t in zip(answers, truth, strict=True)}
        held = [a for a in answers if a["decision"] == "pending"]
        audited = [a for a in answers if a["decision"] == "final" and "review_id" in a]
        console.print(
            f"{len(answers)} transactions: {len(held)} declines held for a person (decision: pending), "
            f"{len(answers) - len(held)} final, {len(audited)} of those sampled for audit"
        )
        if held:
            first = held[0]
            console.print(
                f"the checkout service reads a held answer: GET /v1/deployments/{DEPLOYMENT}/decisions/"
                f"{first['request_id'][:8]}… -> {client.decision(DEPLOYMENT, first['request_id'])['decision']}"
            )
        decided = _work_the_queue(url, ws, truth_of, len(held) + len(audited))
        console.print(
            f"reviewers alice and bob decided {sum(decided.values())} items: {decided['approve']} approved, "
            f"{decided['override']} overridden (the model was wrong there)"
        )
        if held:
            after = client.decision(DEPLOYMENT, held[0]["request_id"])
            console.print(
                f"that held answer now: {after['decision']}, {after['outcome']} by {', '.join(after['decided_by'])}, "
                f"label {after['label']!r}"
            )
        stats = client.review_stats(DEPLOYMENT)
        if not stats["decided"]:
            console.print("nothing reached the queue in time; see `matchday review list fraud-review`")
            return Outcome(len(answers), len(held), 0, 0)
        true_accuracy = float(np.mean([a["prediction"] == truth_of[a["request_id"]] for a in answers]))
        low, high = stats["estimated_accuracy_interval"] or (None, None)
        console.print(
            f"review stats: agreement {stats['agreement']:.3f}, override rate {stats['override_rate']:.3f}, "
            f"queue depth {stats['queue_depth']}, review latency p50 {stats['review_latency_p50_seconds']:.2f}s"
        )
        console.print(
            f"accuracy of every answer, estimated from the reviewed ones (weighted by their chance of review): "
            f"{stats['estimated_accuracy']:.3f} [{low:.3f}, {high:.3f}]; true: {true_accuracy:.3f}"
        )
        sources = [row.label_source for a in answers if (row := ws.prediction_log.get(a["request_id"]))]
        console.print(
            f"{sources.count('human') + sources.count('human_rule')} logged predictions now carry a person's label "
            f"({sources.count('human_rule')} with source human_rule, held by the rule; {sources.count('human')} human, "
            "audited): windows and monitors see them"
        )
        later = client.predict(DEPLOYMENT, transactions(300, seed=32).drop_columns(["is_fraud"]).to_pylist())
        waiting = sum(a["decision"] == "pending" for a in later["predictions"])
        console.print(
            f"{waiting} declines of a later batch wait for you: the dashboard's review page (/review/{DEPLOYMENT}, "
            "keys a, o, s) or `matchday review next fraud-review --reviewer you`"
        )
        suggestion = client.suggest_automation(DEPLOYMENT)
        console.print(
            f"$ matchday automation suggest {DEPLOYMENT}: {suggestion['move']}"
            + (f" to {suggestion['to']}" if suggestion["to"] else "")
            + "".join(f"\n  - {r}" for r in suggestion["reasons"])
        )
    human = sources.count("human") + sources.count("human_rule")
    return Outcome(len(answers), len(held), sum(decided.values()), human)


def _work_the_queue(url: str, ws: Workspace, truth_of: dict[str, int], expected: int) -> dict[str, int]:
    """Two reviewers, each with a reviewer's token of their own, take turns claiming the next item until the
    ``expected`` items are decided (the queue fills as the log is written, within a second or so); each knows
    the truth, and errs now and then."""
    tokens = {
        name: ws.access.create_token(["reviewer"], name=name, created_by="demo", deployments=[DEPLOYMENT])[0]
        for name in ("alice", "bob")
    }
    clients = {name: Client(url, token=token) for name, token in tokens.items()}
    try:
        return _decide(clients, truth_of, expected)
    finally:
        for client in clients.values():
            client.close()


def _decide(clients: dict[str, Client], truth_of: dict[str, int], expected: int) -> dict[str, int]:
    rng = np.random.default_rng(7)
    counts = {"approve": 0, "override": 0}
    reviewers = list(clients)
    turn = 0
    deadline = time.monotonic() + 30
    while sum(counts.values()) < expected and time.monotonic() < deadline:
        reviewer = reviewers[turn % len(reviewers)]
        client = clients[reviewer]
        turn += 1
        item = client.next_review(DEPLOYMENT, reviewer=reviewer)
        if item is None:
            time.sleep(0.1)  # not in the queue yet
            continue
        right = truth_of[item["request_id"]]
        if rng.random() < MISTAKES:
            right = 1 - right
        if right == item["suggestion"]:
            client.decide(item["review_id"], "approve", reviewer=reviewer)
            counts["approve"] += 1
        else:
            client.decide(item["review_id"], "override", label=right, reviewer=reviewer)
            counts["override"] += 1
    return counts
