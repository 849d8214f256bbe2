"""The registry and deployments over HTTP (issue 15): a training job on another machine uploads a
version with an operator's token, moves an alias, deploys, and the server answers with it; what is
refused (the wrong role, a wrong sha256, a corrupt file, a reference that is not Parquet, too large a
body) is refused with a message that says why, and leaves nothing registered or stored."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from support.server_process import ServerProcess, http

from matchday.client import Client, ServerError
from matchday.workspace import Workspace

NAME = "cancer"
LIMIT = 1_000_000  # MATCHDAY_MAX_UPLOAD_BYTES of the test server


@pytest.fixture
def served(workspace: Workspace, database_url: str) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server with no model yet, and a token each for an operator ("ci"), a viewer and an admin."""
    tokens = {
        role: workspace.access.create_token([role], name="ci" if role == "operator" else role, created_by="test")[0]
        for role in ("operator", "viewer", "admin")
    }
    env = {"MATCHDAY_MAX_UPLOAD_BYTES": str(LIMIT)}
    workspace.settings.home.mkdir(parents=True, exist_ok=True)
    with ServerProcess(workspace.settings.home, database_url, env=env) as server:
        yield server, tokens


def _labelled(cancer: tuple[pd.DataFrame, pd.Series]) -> pd.DataFrame:
    X, y = cancer
    return X.assign(label=y)


def _post(server: ServerProcess, token: str | None, files: dict[str, Any], sha: str | None, **fields: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if sha is not None:
        headers["X-Matchday-Sha256"] = sha
    return http.post(f"{server.url}/v1/models/{NAME}/versions", files=files, data=fields, headers=headers, timeout=60)


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _nothing_stored(workspace: Workspace) -> None:
    assert workspace.registry.list_models() == []
    blobs = workspace.settings.home / "artifacts"
    assert not blobs.exists() or not [p for p in blobs.rglob("*") if p.is_file()]
    uploads = workspace.settings.home / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []  # each upload's folder is removed


@pytest.mark.slow
def test_a_training_job_registers_aliases_deploys_and_the_server_answers(
    served: tuple[ServerProcess, dict[str, str]],
    workspace: Workspace,
    cancer: Any,
    cancer_pipeline: Any,
    tmp_path: Path,
) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    server, tokens = served
    X, y = cancer
    key = tokens["operator"].split("_")[1]
    actor = f"token:{key} (ci)"
    with Client(server.url, token=tokens["operator"]) as ci:
        # a fitted estimator: saved here with skops, as the registry saves one, then uploaded
        first = ci.register_model(
            NAME,
            cancer_pipeline,
            reference=_labelled(cancer),
            target="label",
            alias="champion",
            metrics={"auc": 0.99},
            tags={"commit": "3f2a1c"},
            description="nightly",
        )
        assert (first["version"], first["flavor"], first["aliases"], first["task"]) == (
            1,
            "sklearn",
            ["champion"],
            "classification",
        )
        assert first["metrics"] == {"auc": 0.99} and first["tags"] == {"commit": "3f2a1c"}
        assert len(first["signature"]["inputs"]) == X.shape[1]

        # a model file and a Parquet file, sent as they are: the stored bytes are the bytes sent
        better = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=1000)).fit(X, y)
        model_file, reference_file = tmp_path / "better.skops", tmp_path / "reference.parquet"
        sio.dump(better, model_file)
        _labelled(cancer).to_parquet(reference_file, index=False)
        second = ci.register_model(NAME, model_file, reference=reference_file, target="label")
        assert second["version"] == 2
        assert second["artifact_sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()

        moved = ci.set_alias(NAME, "champion", 2, reason="better on the holdout")
        assert (moved["from_version"], moved["to_version"], moved["reason"]) == (1, 2, "better on the holdout")
        deployed = ci.deploy(NAME, f"{NAME}@champion", max_batch_size=32)
        assert (deployed["previous"], deployed["model_ref"], deployed["settings"]["max_batch_size"]) == (
            None,
            f"{NAME}@champion",
            32,
        )
        again = ci.deploy(NAME, f"{NAME}@champion")
        assert again["previous"] == f"{NAME}@champion"

        answer = ci.predict(NAME, X.head(3))
        assert answer["version"] == 2 and len(answer["predictions"]) == 3
        assert [p["prediction"] for p in answer["predictions"]] == better.predict(X.head(3)).tolist()

        listed = ci.models()
        assert [(m["name"], m["latest_version"], m["aliases"]) for m in listed] == [(NAME, 2, {"champion": 2})]
        shown = ci.model(NAME)
        assert [v["version"] for v in shown["versions"]] == [1, 2]
        assert [(m["from_version"], m["to_version"]) for m in shown["alias_history"]][-1] == (1, 2)

        rollout = ci.start_rollout(NAME, f"{NAME}:1", strategy="canary")
        assert (rollout["baseline"], rollout["candidate"], rollout["state"]) == (f"{NAME}:2", f"{NAME}:1", "running")

    # what the server holds is what was sent: the artifact loads, and every change names the token
    assert workspace.registry.get_version(f"{NAME}:2").artifact_sha256 == second["artifact_sha256"]
    assert (
        workspace.registry.load(f"{NAME}:1").predict(X.head(5)).tolist() == cancer_pipeline.predict(X.head(5)).tolist()
    )
    events = workspace.rollouts.list_events(None, 50)
    kinds = {e.kind: e for e in events}
    for kind in ("model_registered", "alias_moved", "deployed", "started"):
        assert kinds[kind].actor == actor, kind
    assert kinds["deployed"].deployment == NAME
    assert any(e.kind == "model_registered" and e.data["version"] == 2 for e in events)


def test_a_viewer_may_not_upload_and_nobody_without_a_token(
    served: tuple[ServerProcess, dict[str, str]], workspace: Workspace, cancer_pipeline: Any
) -> None:
    import skops.io as sio

    server, tokens = served
    data = sio.dumps(cancer_pipeline)
    sha = hashlib.sha256(data).hexdigest()
    files = {"artifact": ("model.skops", data)}
    viewer = _post(server, tokens["viewer"], files, sha)
    assert viewer.status_code == 403 and "needs the operator role" in viewer.json()["error"]
    anonymous = _post(server, None, files, sha)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"].startswith("Bearer")
    with Client(server.url, token=tokens["viewer"]) as reader:
        assert reader.models() == []  # a viewer reads
        with pytest.raises(ServerError) as refused:
            reader.deploy(NAME, f"{NAME}:1")
        assert refused.value.status == 403
    # loading a pickle runs its code on the server: an operator may not vouch for one, an admin may
    trusted = _post(server, tokens["operator"], files, sha, trust_pickle="true")
    assert trusted.status_code == 403 and "trust_pickle needs the admin role" in trusted.json()["error"]
    _nothing_stored(workspace)


def test_a_bad_upload_is_refused_saying_why_and_nothing_is_registered(
    served: tuple[ServerProcess, dict[str, str]], workspace: Workspace, cancer: Any, cancer_pipeline: Any
) -> None:
    import skops.io as sio

    server, tokens = served
    ops = tokens["operator"]
    data = sio.dumps(cancer_pipeline)
    sha = hashlib.sha256(data).hexdigest()
    reference = ("reference.parquet", _parquet(_labelled(cancer).head(50)))

    # the bytes that arrived are not the bytes the sender hashed
    wrong = "0" * 64
    answer = _post(server, ops, {"artifact": ("model.skops", data)}, wrong, target="label")
    assert answer.status_code == 422
    assert sha in answer.json()["error"] and wrong in answer.json()["error"]
    assert answer.json()["details"][0]["field"] == "artifact"
    missing_sha = _post(server, ops, {"artifact": ("model.skops", data)}, None)
    assert missing_sha.status_code == 400 and "X-Matchday-Sha256" in missing_sha.json()["error"]

    # a file that does not load (its sha256 right: it arrived as sent), named as the sender named it
    junk = b"PK\x03\x04 not really a skops file"
    corrupt = _post(
        server, ops, {"artifact": ("broken.skops", junk), "reference": reference}, hashlib.sha256(junk).hexdigest()
    )
    assert corrupt.status_code == 422, corrupt.text
    assert corrupt.json()["details"][0]["field"] == "artifact" and "broken.skops" in corrupt.json()["error"]
    assert "/uploads/" not in corrupt.text  # the server's temporary paths are not shown

    cases = [
        ({"artifact": ("model.skops", data), "reference": reference}, {"flavor": "keras", "target": "label"}, "flavor"),
        ({"artifact": ("model.bin", data), "reference": reference}, {"target": "label"}, "artifact"),
        (
            {"artifact": ("model.skops", data), "reference": ("reference.csv", b"a,b\n1,2\n")},
            {"target": "label"},
            "reference",
        ),
        ({"artifact": ("model.skops", data), "reference": reference}, {"target": "no such column"}, "reference"),
    ]
    for files, fields, field in cases:
        refused = _post(server, ops, files, sha, **fields)
        assert refused.status_code == 422, (fields, refused.text)
        assert refused.json()["details"][0]["field"] == field, refused.json()

    for files, fields, says in [
        ({"reference": reference}, {}, '"artifact"'),
        ({"artifact": ("model.skops", data)}, {"metrics": "[1, 2]"}, '"metrics"'),
        ({"artifact": ("model.skops", data)}, {"colour": "blue"}, "unknown field 'colour'"),
    ]:
        malformed = _post(server, ops, files, sha, **fields)
        assert malformed.status_code == 400 and says in malformed.json()["error"], malformed.text

    headers = {"Authorization": f"Bearer {ops}", "X-Matchday-Sha256": sha}
    bad_name = http.post(
        f"{server.url}/v1/models/-cancer/versions", files={"artifact": ("m.skops", data)}, headers=headers
    )
    assert bad_name.status_code == 400 and "invalid model name" in bad_name.json()["error"]
    as_json = http.post(f"{server.url}/v1/models/{NAME}/versions", json={"artifact": "..."}, headers=headers)
    assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["error"]

    # too large: said from Content-Length before reading, and counted while streaming when there is none
    big = b"\0" * (LIMIT + 1)
    too_large = _post(server, ops, {"artifact": ("big.skops", big)}, hashlib.sha256(big).hexdigest())
    assert too_large.status_code == 413 and "MATCHDAY_MAX_UPLOAD_BYTES" in too_large.json()["error"]
    boundary = "matchdayboundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="artifact"; filename="big.skops"\r\n\r\n').encode()

    def chunked() -> Iterator[bytes]:
        yield head
        for _ in range(LIMIT // 65536 + 2):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = http.post(
        f"{server.url}/v1/models/{NAME}/versions",
        content=chunked(),
        headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert streamed.status_code == 413, streamed.text
    _nothing_stored(workspace)


def test_the_client_says_what_it_cannot_send_before_sending_anything() -> None:
    from matchday.registry import InvalidModel

    with Client("http://127.0.0.1:9") as nowhere:  # nothing listens there: nothing is sent
        with pytest.raises(InvalidModel, match="registered by its import path on the server"):
            nowhere.register_model(NAME, "support.flavor_callables:score")
        with pytest.raises(InvalidModel, match="no such file"):
            nowhere.register_model(NAME, "missing.skops")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_credentials_an_upload_needs_its_sha256_header(
    workspace: Workspace, database_url: str, cancer: Any, cancer_pipeline: Any
) -> None:
    """On loopback with no credential, any page the user opens could post a form to the server: an
    upload passes only with the X-Matchday-Sha256 header, which a page cannot send to another site
    unasked (a CORS preflight this server never grants). On SQLite only: the door refuses before any
    query, and an upload's registration is the training job's test's, on both databases."""
    import skops.io as sio

    data = sio.dumps(cancer_pipeline)
    workspace.settings.home.mkdir(parents=True, exist_ok=True)
    with ServerProcess(workspace.settings.home, database_url) as server:
        forged = http.post(f"{server.url}/v1/models/{NAME}/versions", files={"artifact": ("m.skops", data)})
        assert forged.status_code == 415 and "X-Matchday-Sha256" in forged.json()["error"]
        with Client(server.url, token="") as local:
            record = local.register_model(NAME, cancer_pipeline, reference=cancer[0].head(100))
        assert record["version"] == 1
    registered = [e for e in workspace.rollouts.list_events(None, 10) if e.kind == "model_registered"]
    assert [e.actor for e in registered] == ["api:127.0.0.1"]  # a local caller, by its address
