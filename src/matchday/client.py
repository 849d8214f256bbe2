"""A small Python client for a matchday server: ``Client(url).predict(...)`` and ``.feedback(...)``, and
for a training job on another machine ``.register_model(...)``, ``.set_alias(...)``, ``.deploy(...)``
and ``.start_rollout(...)`` (with an operator's token); for operators, retraining's runs (``.retrain_runs()``,
``.retrain(...)``, ``.approve_retrain(...)``...), and the registered edge devices (``.edge_devices()``)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from matchday.errors import MatchdayError


class ServerError(MatchdayError):
    """The server answered with an error; ``status`` is the HTTP status, ``details`` its list."""

    def __init__(self, status: int, message: str, details: list[Any]) -> None:
        super().__init__(f"{status}: {message}", [str(d) for d in details])
        self.status = status
        self.problems = details


class ServerUnreachable(MatchdayError):
    """No answer from the server at all: nothing listens at the URL, it timed out, or the name does not resolve."""


@contextlib.contextmanager
def _reaching(url: str) -> Iterator[None]:
    """httpx's transport errors, where they enter, as one matchday error that names the URL."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise ServerUnreachable(
            f"the matchday server at {url} did not answer in time ({type(exc).__name__})",
            ["a slow call can be given a longer Client(timeout=...)"],
        ) from exc
    except (httpx.ConnectError, httpx.UnsupportedProtocol) as exc:
        raise ServerUnreachable(
            f"cannot reach a matchday server at {url}: {exc}",
            ["is `matchday serve` running there, and is the URL's host and port right?"],
        ) from exc


class Client:
    """Talks to one server; use as a context manager or call `close`.

    ``token`` (default: the ``MATCHDAY_TOKEN`` environment variable) is sent as ``Authorization:
    Bearer``; a server with users or tokens answers 401 without one.
    """

    def __init__(self, url: str = "http://127.0.0.1:8000", *, token: str | None = None, timeout: float = 30.0) -> None:
        token = token if token is not None else os.environ.get("MATCHDAY_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def predict(self, deployment: str, data: Any, *, ids: Sequence[Any] | None = None) -> dict[str, Any]:
        """Score rows: a list of dicts, a dict of columns, or a DataFrame; ``ids`` are entity keys."""
        body: dict[str, Any] = {"instances": _records(data)}
        if ids is not None:
            body["ids"] = list(ids)
        return self._post(f"/v1/deployments/{deployment}/predict", body)

    def feedback(self, deployment: str, labels: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Send ground truth: ``[{"request_id": ..., "label": ...}]`` or ``[{"id": entity, "label": ...}]``."""
        return self._post(f"/v1/deployments/{deployment}/feedback", {"labels": list(labels)})

    def deployments(self) -> list[dict[str, Any]]:
        return self._get("/v1/deployments")["deployments"]

    # -- the registry and deployments (an operator's token) ------------------------------------------
    def models(self) -> list[dict[str, Any]]:
        """Every registered model with its latest version and aliases."""
        return self._get("/v1/models")["models"]

    def model(self, name: str) -> dict[str, Any]:
        """A model's versions, aliases and alias history."""
        return self._get(f"/v1/models/{_segment(name)}")

    def register_model(
        self,
        name: str,
        model: Any,
        *,
        reference: Any = None,
        target: str | None = None,
        signature: Any = None,
        flavor: str | None = None,
        trust_pickle: bool = False,
        description: str | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        alias: str | None = None,
        timeout: float = 600.0,
    ) -> dict[str, Any]:
        """Upload the next version of ``name`` to the server; the arguments are `matchday.register_model`'s.

        ``model`` is a model file (``.skops``, ``.onnx``, ``.pkl``/``.joblib`` with ``trust_pickle``), an
        MLflow model directory, or a fitted estimator or ``onnx.ModelProto``, which is saved here the way
        the registry saves one (skops). ``reference`` (a DataFrame, Table, dict of columns, or a CSV or
        Parquet file) is sent as Parquet. The artifact's sha256 goes with it and the server checks the
        bytes against it on arrival. The server registers from the file it received, so a file's trust
        rules apply (docs/registry.md); ``trust_pickle`` needs the admin role. Returns the new version
        (``version``, ``ref``, ``artifact_sha256``, ``signature``...); `ServerError` says why not.
        """
        with tempfile.TemporaryDirectory(prefix="matchday-upload-") as folder, ExitStack() as opened:
            artifact, flavor = _artifact_file(model, flavor, trust_pickle, Path(folder))
            files: dict[str, Any] = {"artifact": (artifact.name, opened.enter_context(artifact.open("rb")))}
            if reference is not None:
                table = _reference_file(reference, Path(folder))
                files["reference"] = (table.name, opened.enter_context(table.open("rb")))
            fields = {
                "flavor": flavor,
                "target": target,
                "alias": alias,
                "description": description,
                "metrics": json.dumps(metrics) if metrics is not None else None,
                "tags": json.dumps(tags) if tags is not None else None,
                "signature": _signature_json(signature),
                "trust_pickle": "true" if trust_pickle else None,
            }
            path = f"/v1/models/{_segment(name)}/versions"
            try:
                with _reaching(self.url):
                    response = self._http.post(
                        path,
                        data={k: v for k, v in fields.items() if v is not None},
                        files=files,
                        headers={"X-Matchday-Sha256": _sha256_of(artifact)},
                        timeout=httpx.Timeout(self._http.timeout.connect, read=timeout, write=timeout, pool=timeout),
                    )
            except (httpx.WriteError, httpx.RemoteProtocolError) as exc:
                raise MatchdayError(
                    f"the server closed the connection while {artifact.name} was being uploaded ({exc}): "
                    "is the upload over its MATCHDAY_MAX_UPLOAD_BYTES?"
                ) from exc
        return _answer(response)

    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None) -> dict[str, Any]:
        """Point ``name@alias`` at ``version`` (deployments that follow the alias move with it)."""
        return self._put(
            f"/v1/models/{_segment(name)}/aliases/{_segment(alias)}", {"version": version, "reason": reason}
        )

    def deploy(self, name: str, model_ref: str, *, reason: str | None = None, **settings: Any) -> dict[str, Any]:
        """Create deployment ``name`` serving ``model_ref`` (``MODEL@ALIAS`` or ``MODEL:VERSION``), or
        repoint it, as ``matchday deploy`` does; ``settings``: ``max_batch_size``, ``max_wait_ms``,
        ``max_rows``. The answer's ``previous`` is what it served before (None: it is new)."""
        body: dict[str, Any] = {"model_ref": model_ref, "reason": reason}
        if settings:
            body["settings"] = settings
        return self._put(f"/v1/deployments/{_segment(name)}", body)

    def start_rollout(self, deployment: str, candidate: str, **plan: Any) -> dict[str, Any]:
        """Start moving ``deployment`` to ``candidate`` (``MODEL:VERSION`` or ``MODEL@ALIAS``) under a plan:
        ``strategy="canary"``, ``steps=[...]``, ``gates={...}``... (docs/rollouts.md). Returns its status."""
        return self._post(f"/v1/deployments/{_segment(deployment)}/rollout", {"candidate": candidate, **plan})

    def decision(self, deployment: str, request_id: str) -> dict[str, Any]:
        """What became of an answer: ``decision`` is ``pending`` while a person reviews it, then ``final``
        with its ``outcome`` and ``label`` (docs/review.md)."""
        return self._get(f"/v1/deployments/{_segment(deployment)}/decisions/{_segment(request_id)}")

    def set_automation(self, deployment: str, level: str | None, *, reason: str, **policy: Any) -> dict[str, Any]:
        """Who decides ``deployment``'s answers: a level (None: no policy) and its review options
        (``review_rule``, ``review_deadline``, ``audit_rate``, ``reviews_required``...); an event with ``reason``."""
        return self._put(
            f"/v1/deployments/{_segment(deployment)}/automation", {"level": level, **policy, "reason": reason}
        )

    def next_review(self, deployment: str, *, reviewer: str | None = None) -> dict[str, Any] | None:
        """Claim the next item of ``deployment``'s review queue (held under a lease); None when nothing waits.
        ``reviewer`` names who reviews on a server without credentials (else the token says)."""
        body: dict[str, Any] = {"deployment": deployment}
        if reviewer is not None:
            body["reviewer"] = reviewer
        item: dict[str, Any] | None = self._post("/v1/review/next", body)["item"]
        return item

    def decide(self, review_id: str, action: str, *, label: Any = None, reviewer: str | None = None) -> dict[str, Any]:
        """``approve`` the model's answer, ``override`` it with ``label``, or ``skip`` the item."""
        body: dict[str, Any] = {"action": action}
        if label is not None:
            body["label"] = label
        if reviewer is not None:
            body["reviewer"] = reviewer
        return self._post(f"/v1/review/items/{_segment(review_id)}/decide", body)

    def review_stats(self, deployment: str) -> dict[str, Any]:
        return self._get(f"/v1/deployments/{_segment(deployment)}/review/stats")

    def suggest_automation(self, deployment: str) -> dict[str, Any]:
        return self._get(f"/v1/deployments/{_segment(deployment)}/automation/suggest")

    # -- retraining (reading: a viewer's token; run, approve, cancel: an operator's) ----------------------
    def retrain_runs(self, deployment: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """Retraining runs, newest first (of ``deployment`` only, if given)."""
        params: dict[str, Any] = {"limit": limit}
        if deployment is not None:
            params["deployment"] = deployment
        runs: list[dict[str, Any]] = self._get("/v1/retrain/runs", params)["runs"]
        return runs

    def retrain_run(self, run_id: int) -> dict[str, Any]:
        """One run in full: trigger, steps, data snapshot, evaluation, rollout (docs/retraining.md)."""
        return self._get(f"/v1/retrain/runs/{int(run_id)}")

    def retrain(self, deployment: str, *, reason: str | None = None) -> dict[str, Any]:
        """Queue a retraining run of ``deployment``'s policy now; `ServerError` 409 while one is in progress."""
        return self._post(f"/v1/deployments/{_segment(deployment)}/retrain", {"reason": reason})

    def approve_retrain(self, run_id: int, *, reason: str | None = None) -> dict[str, Any]:
        """Let a run awaiting approval roll its candidate out."""
        return self._post(f"/v1/retrain/runs/{int(run_id)}/approve", {"reason": reason})

    def cancel_retrain(self, run_id: int, *, reason: str | None = None) -> dict[str, Any]:
        """End a run (a rollout it started is rolled back)."""
        return self._post(f"/v1/retrain/runs/{int(run_id)}/cancel", {"reason": reason})

    def retrain_policy(self, deployment: str) -> dict[str, Any]:
        """``deployment``'s effective retraining policy, defaults filled in (durations in seconds)."""
        policy: dict[str, Any] = self._get(f"/v1/deployments/{_segment(deployment)}/retrain/policy")["policy"]
        return policy

    def simulate_retraining(self, deployment: str, *, since: str = "30d", until: str | None = None) -> dict[str, Any]:
        """The dry run: when the policy would have fired since ``since`` (``30d`` or an ISO time), what its
        guards would have stopped, and the labelled rows each run would have had."""
        params = {"since": since, **({"until": until} if until is not None else {})}
        return self._get(f"/v1/deployments/{_segment(deployment)}/retrain/simulate", params)

    # -- edge devices (listing: a viewer's token; a sync: the device's own token) -------------------------
    def edge_devices(self, deployment: str | None = None) -> list[dict[str, Any]]:
        """Registered edge devices (of ``deployment`` only, if given): last sync, rows and labels received."""
        params = {"deployment": deployment} if deployment is not None else None
        devices: list[dict[str, Any]] = self._get("/v1/edge/devices", params)["devices"]
        return devices

    def edge_telemetry(self, device: str, body: dict[str, Any]) -> dict[str, Any]:
        """Post one telemetry sync for ``device`` (the protocol's body; `matchday_edge` sends it itself):
        the acknowledgement, naming every prediction seq and label id the server now holds."""
        return self._post(f"/v1/edge/devices/{_segment(device)}/telemetry", body)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with _reaching(self.url):
            return _answer(self._http.post(path, json=body))

    def _put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with _reaching(self.url):
            return _answer(self._http.put(path, json=body))

    def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        with _reaching(self.url):
            return _answer(self._http.get(path, params=params))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _answer(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text}
    if response.status_code >= 400:
        raise ServerError(response.status_code, body.get("error", "error"), body.get("details", []))
    return body


def _records(data: Any) -> list[dict[str, Any]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas
        import json

        return json.loads(data.to_json(orient="records"))
    if isinstance(data, dict):
        keys = list(data)
        return [dict(zip(keys, row)) for row in zip(*(list(v) for v in data.values()))]
    return list(data)


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _artifact_file(model: Any, flavor: str | None, trust_pickle: bool, folder: Path) -> tuple[Path, str | None]:
    """The file to upload and its flavor: a model file as it is; anything else (an estimator, an ONNX
    model, an MLflow directory) packed by the registry's own code, as `matchday.register_model` packs it."""
    if isinstance(model, (str, Path)) and Path(model).is_file():
        return Path(model), flavor
    from matchday.registry import InvalidModel, pack_model

    packed = pack_model(model, flavor=flavor, trust_pickle=trust_pickle)
    if packed.flavor == "callable":
        raise InvalidModel(
            "a Python callable is registered by its import path on the server itself "
            "(`matchday models register NAME module:function` there), not uploaded"
        )
    if packed.flavor == "mlflow":
        suffix = ".tar"
    elif packed.flavor == "onnx":
        suffix = ".onnx"
    else:  # scikit-learn, LightGBM, XGBoost
        suffix = ".joblib" if packed.options.get("format") == "joblib" else ".skops"
    path = folder / f"model{suffix}"
    path.write_bytes(packed.data)
    return path, packed.flavor


def _reference_file(reference: Any, folder: Path) -> Path:
    """The reference data as a Parquet file (a Parquet file is sent as it is)."""
    if isinstance(reference, (str, Path)) and Path(reference).suffix.lower() in (".parquet", ".pq"):
        if not Path(reference).is_file():
            from matchday.registry import InvalidReference

            raise InvalidReference(f"{reference}: no such file")
        return Path(reference)
    import pyarrow.parquet as pq

    from matchday.registry import to_table

    path = folder / "reference.parquet"
    pq.write_table(to_table(reference), path)
    return path


def _signature_json(signature: Any) -> str | None:
    if signature is None:
        return None
    if hasattr(signature, "model_dump_json"):
        return str(signature.model_dump_json())
    return json.dumps(signature)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
