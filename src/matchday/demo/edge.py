"""The demo's edge step: a small fraud model for the shop's tills, exported as a signed ONNX bundle behind a
parity gate, a till that scores offline and keeps every prediction (and the chargebacks it learns of) in its
buffer, a tampered bundle refused, and one sync home once the server is up: every row lands once in the
``tills`` deployment's log (``source: edge``), where its monitors watch it with the rest."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from rich.console import Console

from matchday.demo.fraud import fraud_pipeline, transactions
from matchday.demo.serving import running_server
from matchday.edge import export_bundle
from matchday.registry import ModelNotFound
from matchday.store import EdgeDeviceNotFound
from matchday.workspace import Workspace

MODEL = "demo-fraud-edge"
DEPLOYMENT = "tills"
DEVICE = "till-7"
OFFLINE_ROWS = 400


@dataclass(frozen=True)
class Outcome:
    parity_rows: int
    offline: int
    first_sync_reason: str | None
    written: int
    already_logged: int
    labels_applied: int
    logged_from_device: int
    tamper_refused: str


def train_till_model(seed: int = 0) -> tuple[object, object]:
    """A smaller fraud pipeline for the tills: 60 shallow trees, a model that fits a till's memory and budget."""
    from sklearn.ensemble import GradientBoostingClassifier

    data = transactions(8_000, seed=seed).to_pandas()
    features = ["amount", "hour", "merchant", "country", "card_present"]
    pipeline = fraud_pipeline(seed=seed)
    pipeline.steps[-1] = ("model", GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed))
    return pipeline.fit(data[features], data["is_fraud"]), data


def run(console: Console, ws: Workspace) -> Outcome:
    home = ws.settings.home.absolute() / "demo-edge"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    try:
        ws.registry.delete(MODEL, reason="demo reset")
    except ModelNotFound:
        pass
    try:
        ws.edge_telemetry.remove(DEVICE, "demo")
    except EdgeDeviceNotFound:
        pass
    model, train = train_till_model()
    version = ws.registry.register(MODEL, model, reference=train, target="is_fraud", alias="champion")
    ws.deployments.deploy(DEPLOYMENT, f"{MODEL}@champion")
    console.print(f"registered {version.ref} for the tills and deployed it as {DEPLOYMENT}")

    console.print(f"$ matchday edge export {MODEL}@champion {home / 'bundle'} --deployment {DEPLOYMENT}")
    bundle = export_bundle(
        ws.registry, f"{MODEL}@champion", home / "bundle", signer=ws.edge_signer, deployment=DEPLOYMENT
    )
    parity = bundle.manifest["parity"]
    console.print(
        f"exported {bundle.manifest['name']}:{bundle.manifest['version']} to {bundle.path} "
        f"({', '.join(sorted(bundle.manifest['files']))}); parity on {parity['rows']:,} reference rows: labels identical, "
        f"largest probability gap {parity['max_abs_difference']:.1e} (tolerance {parity['tolerance']:.0e}); "
        f"signed with key {bundle.public_key[:16]}…"
    )
    token, _ = ws.edge_telemetry.register(DEVICE, DEPLOYMENT, "demo")
    console.print(f"$ matchday edge devices add {DEVICE} --deployment {DEPLOYMENT}   → a token for this till only")

    from matchday_edge import BundleRefused, EdgeModel

    tampered = home / "tampered"
    shutil.copytree(bundle.path, tampered)
    onnx = tampered / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    try:
        EdgeModel.load(tampered, public_key=bundle.public_key, device=DEVICE, buffer=None)
        refused = "loaded (it should not have been)"
    except BundleRefused as exc:
        refused = str(exc)
    console.print(f"a bundle with one byte changed: refused ({refused})")

    device = EdgeModel.load(bundle.path, public_key=bundle.public_key, device=DEVICE, buffer=home / f"{DEVICE}.db")
    try:
        shop = transactions(OFFLINE_ROWS, seed=23)
        rows = shop.drop_columns(["is_fraud"]).to_pylist()
        truth = shop["is_fraud"].to_pylist()
        answers = [device.score([row])[0] for row in rows]  # one at a time, as a till scores
        for answer, fraud in list(zip(answers, truth))[:100]:  # chargebacks it hears of while offline
            device.label(answer, int(fraud))
        console.print(
            f"{DEVICE} offline: {len(answers)} transactions scored on the device "
            f"({sum(bool(a.label) for a in answers)} flagged), 100 chargebacks recorded; buffered: "
            f"{device.buffer.stats() if device.buffer else None}"
        )
        nowhere = device.sync("http://127.0.0.1:9", token, timeout=1.0)
        console.print(f"sync while the server is down: nothing sent ({nowhere.reason}); every row stays buffered")
        with running_server(ws) as url:
            result = device.sync(url, token)
            console.print(
                f"sync with {url}: {result.written} predictions written, {result.already_logged} already there, "
                f"{result.labels_applied} labels joined as feedback (source edge), complete: {result.complete}"
            )
            again = device.sync(url, token)
            console.print(
                f"sync again: {again.sent_predictions} predictions to send (the buffer holds only what was not acknowledged)"
            )
        logged = sum(
            1
            for r in ws.prediction_log.recent(DEPLOYMENT, limit=OFFLINE_ROWS + 10)
            if r.routing.get("device") == DEVICE
        )
        console.print(
            f"the {DEPLOYMENT} deployment's log now holds {logged} rows from {DEVICE}, at the times the till scored them"
        )
        return Outcome(
            int(parity["rows"]),
            len(answers),
            nowhere.reason,
            result.written,
            result.already_logged,
            result.labels_applied,
            logged,
            refused,
        )
    finally:
        device.close()
