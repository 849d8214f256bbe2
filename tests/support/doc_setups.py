"""The states a docs page may say it starts from (``<!-- docs-test: setup=NAME -->``), made the way the
demo makes them, through matchday's own parts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from support.doc_runner import PageRun


def demo(run: PageRun) -> None:
    """What `make demo` leaves that the pages use: demo-fraud:1 (@champion) and demo-fraud:2 (@challenger),
    its fraud pipeline trained on its synthetic transactions (seeds 0 and 1), and the deployments fraud and
    payments following demo-fraud@champion, the matchday.yaml it writes into its home and its batch step's days
    of transactions (500 rows a day here). No credential: a store of your own, as the pages say."""
    from matchday.demo import batch, config_file
    from matchday.demo.scenario import train_fraud_model
    from matchday.workspace import Workspace

    ws = Workspace()
    try:
        for seed, alias in ((0, "champion"), (1, "challenger")):
            model, train, accuracy = train_fraud_model(seed=seed)
            ws.registry.register(
                "demo-fraud", model, reference=train, target="is_fraud", alias=alias, metrics={"accuracy": accuracy}
            )
        for deployment in ("fraud", "payments"):
            ws.deployments.deploy(deployment, "demo-fraud@champion")
        config_file.write(ws)  # the demo's monitors, in its home
        days = ws.settings.home / "demo-batch" / "in"  # and its batch step's input: days of transactions
        days.mkdir(parents=True)
        batch.write_days(str(days), rows=500)
    finally:
        ws.close()


def demo_review(run: PageRun) -> None:
    """`demo`, and the review step's deployment: fraud-review at machine_led_human_governed (declines held
    for a person, 5 % of the rest audited) with a batch of answers served, its declines waiting in the queue
    (the demo leaves a later batch's declines there for you)."""
    from matchday.client import Client
    from matchday.demo import transactions
    from matchday.workspace import Workspace
    from support.server_process import wait_until

    demo(run)
    ws = Workspace()
    try:
        ws.deployments.deploy("fraud-review", "demo-fraud@champion")
        policy = {
            "level": "machine_led_human_governed",
            "review_rule": "prediction == 1",
            "review_deadline": "4h",
            "audit_rate": 0.05,
        }
        ws.automation.set("fraud-review", policy, "docs", "declines need a person until the model earns trust")
        server = run.serve()
        rows = transactions(300, seed=32).drop_columns(["is_fraud"]).to_pylist()
        with Client(server.url) as client:
            answers = client.predict("fraud-review", rows)["predictions"]
        queued = sum("review_id" in a for a in answers)
        wait_until(lambda: len(ws.review.items("fraud-review")) >= queued, 60, "the held answers in the queue")
    finally:
        ws.close()


def training_job(run: PageRun) -> None:
    """A training job's results, as docs/registry.md says: a fitted `pipeline` (the demo's fraud pipeline on its
    transactions) and its validation rows `X_valid`, `y_valid` in the Python namespace, and the same saved as
    model.skops and valid.parquet (with a label column)."""
    import skops.io

    from matchday.demo import transactions
    from matchday.demo.scenario import train_fraud_model

    pipeline, _, _ = train_fraud_model(seed=0)
    valid = transactions(2_000, seed=5).to_pandas()
    X_valid, y_valid = valid.drop(columns="is_fraud"), valid["is_fraud"]
    run.namespace.update(pipeline=pipeline, X_valid=X_valid, y_valid=y_valid)
    skops.io.dump(pipeline, run.workdir / "model.skops")
    X_valid.assign(label=y_valid).to_parquet(run.workdir / "valid.parquet")


TRAINER = """from sklearn.linear_model import LogisticRegression


def train(data):
    return LogisticRegression(max_iter=1000).fit(data.features(), data.labels())
"""


def retrain_policy(run: PageRun) -> None:
    """As docs/retraining.md says: a `cancer` deployment (scikit-learn's breast-cancer set, registered with its
    target) with a retraining policy in matchday.yaml (its trainer a module in the working folder, on
    PYTHONPATH), and an operator's token in `operator_token`."""
    import os

    import yaml
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    from matchday.workspace import Workspace

    (run.workdir / "cancer_trainer.py").write_text(TRAINER)
    os.environ["PYTHONPATH"] = str(run.workdir)
    policy = {"deployment": "cancer", "trainer": "cancer_trainer:train", "triggers": {"schedule": "7d"}}
    (run.workdir / "matchday.yaml").write_text(yaml.safe_dump({"retrain": [policy]}))
    cancer = load_breast_cancer(as_frame=True)
    model = LogisticRegression(max_iter=5000).fit(cancer.data, cancer.target)
    ws = Workspace()
    try:
        ws.registry.register("cancer", model, reference=cancer.frame, target="target", alias="champion")
        ws.deployments.deploy("cancer", "cancer@champion")
        token, _ = ws.access.create_token(["operator"], name="docs", created_by="docs")
        run.namespace["operator_token"] = token
    finally:
        ws.close()


SETUPS: dict[str, Callable[[PageRun], None]] = {
    "demo": demo,
    "demo-review": demo_review,
    "training-job": training_job,
    "retrain-policy": retrain_policy,
}
