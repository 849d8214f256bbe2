"""Schemathesis against a real `matchday serve`: the request bodies its OpenAPI document declares,
valid and invalid, never get a 5xx from predict, feedback or V2 infer (issue 13), and every status
answered is one the document declares for that operation (issue 15: with a token, access on).

Two schemas are fuzzed: the document the server publishes (generic bodies: any object per row), and
the same document with the bodies narrowed to one deployment's signature (every input named and
typed, any value the type allows: huge floats, long strings, negative zero), which is what reaches
the model. Both in schemathesis' positive and negative modes.

One server, on PostgreSQL only: the fuzz is about the HTTP layer, and its derandomized examples send
the same requests to either database. What a fuzzed body takes to the database synchronously (the
feedback keys) PostgreSQL is the stricter about (it refuses a NUL in text and a NaN in JSON, which
SQLite stores), and it is the database replicas run on. The store itself is tested on both.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from support.rollout_support import fitted
from support.server_process import ServerProcess, http

from matchday.config import Settings
from matchday.workspace import Workspace

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

FUZZED = (
    "/v1/deployments/{name}/predict",
    "/v1/deployments/{name}/feedback",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
)
EXAMPLES = 25  # per operation, schema and mode: about 400 requests in all
TYPES = {
    "float": {"type": "number"},
    "integer": {"type": "integer"},
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
}

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)]


@pytest.fixture(scope="module")
def server(store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Served with access control on: the fuzzer calls with an operator's token (issue 15)."""
    workspace = Workspace(Settings(home=tmp_path_factory.mktemp("fuzz-home"), database_url=store_url))
    try:
        model, reference = fitted("base")  # a scaled logistic regression: huge inputs overflow inside it
        workspace.registry.register("cancer", model, reference=reference)
        workspace.deployments.deploy("cancer", "cancer:1")
        token, _ = workspace.access.create_token(["operator"], name="fuzzer", created_by="test")
        with ServerProcess(workspace.settings.home, store_url) as running:
            running.token = token  # type: ignore[attr-defined]
            yield running
    finally:
        workspace.close()


def bearer(server: ServerProcess) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token}"}  # type: ignore[attr-defined]


def narrowed(document: dict[str, Any], inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The published document with the bodies narrowed to a deployment with these signature inputs."""
    out = copy.deepcopy(document)
    schemas = out["components"]["schemas"]
    row = {
        "type": "object",
        "properties": {c["name"]: TYPES[c["type"]] for c in inputs},
        "required": [c["name"] for c in inputs],
    }
    schemas["InstancesBody"]["properties"]["instances"] = {"type": "array", "items": row, "minItems": 1, "maxItems": 4}
    schemas["ColumnsBody"]["properties"]["columns"] = {"type": "array", "items": {"enum": [c["name"] for c in inputs]}}
    k = len(inputs)
    schemas["V2Input"] = {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"const": [1, k]},
            "datatype": {"enum": ["FP64", "FP32", "FP16", "INT64"]},
            "data": {"type": "array", "items": {"type": "number"}, "minItems": k, "maxItems": k},
        },
    }
    return out


def fuzz(document: dict[str, Any], url: str, headers: dict[str, str]) -> list[str]:
    """Every 5xx the fuzzed operations answer, as ``METHOD path: status body``."""
    schema = schemathesis.openapi.from_dict(document)
    found: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.lower() != "post" or operation.path not in FUZZED:
            continue
        parameters = {"name": "cancer", **({"version": "1"} if "{version}" in operation.path else {})}
        documented = document["paths"][operation.path][operation.method.lower()]["responses"]
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, path_parameters=parameters)

            @hypothesis.settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(hypothesis.HealthCheck),
            )
            @hypothesis.given(case=strategy)
            def check(case: Any) -> None:
                response = case.call(base_url=url, timeout=30, headers=headers)
                if str(response.status_code) not in documented:  # noqa: B023 (check runs in this iteration)
                    found.append(f"{case.method} {case.formatted_path}: {response.status_code} is not documented")
                if response.status_code >= 500:
                    found.append(
                        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]} "
                        f"for {case.body!r:.300}"
                    )

            check()
    return found


def test_the_openapi_document_declares_every_post_body(server: ServerProcess) -> None:
    document = http.get(f"{server.url}/openapi.json", headers=bearer(server)).json()
    posts = {path: op["post"] for path, op in document["paths"].items() if "post" in op}
    assert set(FUZZED) <= set(posts)
    for path, op in posts.items():
        (content,) = op["requestBody"]["content"].values()  # JSON, or a registry upload's multipart form
        ref = content["schema"]["$ref"]
        assert ref.rsplit("/", 1)[1] in document["components"]["schemas"], path


def test_fuzzed_bodies_never_get_a_server_error(server: ServerProcess) -> None:
    document = http.get(f"{server.url}/openapi.json", headers=bearer(server)).json()
    inputs = http.get(f"{server.url}/v2/models/cancer", timeout=60, headers=bearer(server)).json()["inputs"]
    signature = [{"name": i["name"], "type": "float"} for i in inputs]
    errors = fuzz(document, server.url, bearer(server)) + fuzz(
        narrowed(document, signature), server.url, bearer(server)
    )
    assert not errors, "\n".join(errors[:20])
    assert http.get(f"{server.url}/v2/health/ready").json() == {"ready": True}  # and the server is still up
