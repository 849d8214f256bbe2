"""A small V2 (Open Inference Protocol) server on the device's loopback, so a local app calls the edge
model the way it calls the cloud one: ``POST /v2/models/{deployment}/infer`` with one tensor per input
column (or one 2-D tensor of every column in order), answered with ``predict`` and ``predict_proba``.
Every prediction is buffered and synced like any other. Standard library only (``http.server``); it
binds 127.0.0.1 by default and has no authentication: it is for apps on the same device.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from matchday_edge.errors import BufferFull, EdgeError
from matchday_edge.model import EdgeModel

MAX_BODY = 16 * 2**20  # bytes: a request larger than this is refused (413)
_DATATYPES = {"integer": "INT64", "float": "FP64", "boolean": "BOOL", "string": "BYTES"}


class V2Error(EdgeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LoopbackServer:
    """``EdgeModel`` behind the V2 protocol's health, metadata and infer routes, served from a thread."""

    def __init__(self, model: EdgeModel, host: str = "127.0.0.1", port: int = 0) -> None:
        self.model = model
        self.name = model.manifest["deployment"]
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(target=self._http.serve_forever, name="edge-v2", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the routes, as plain functions of the path and body ----------------------------------
    def get(self, path: str) -> dict[str, Any]:
        if path == "/v2/health/live":
            return {"live": True}
        if path == "/v2/health/ready":
            return {"ready": True}
        if path in (f"/v2/models/{self.name}", f"/v2/models/{self.name}/versions/{self.model.version}"):
            return self.metadata()
        if path == f"/v2/models/{self.name}/ready":
            return {"name": self.name, "ready": True}
        raise V2Error(404, f"no route {path}: this device serves /v2/models/{self.name}")

    def post(self, path: str, body: Any) -> dict[str, Any]:
        if path not in (f"/v2/models/{self.name}/infer", f"/v2/models/{self.name}/versions/{self.model.version}/infer"):
            raise V2Error(404, f"no model at {path}: this device serves /v2/models/{self.name}/infer")
        rows = self.rows(body)
        scored = self.model.score(rows)
        outputs = [_tensor("predict", [p.label for p in scored], self._label_type())]
        if self.model.manifest["outputs"]["probabilities"]:
            flat = [v for p in scored for v in (p.probabilities or [])]
            width = len(self.model.classes or [])
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [len(scored), width], "data": flat})
        answer: dict[str, Any] = {
            "model_name": self.name,
            "model_version": str(self.model.version),
            "outputs": outputs,
            "parameters": {"request_ids": [p.request_id for p in scored], "seqs": [p.seq for p in scored]},
        }
        if isinstance(body, dict) and "id" in body:
            answer["id"] = body["id"]
        return answer

    def metadata(self) -> dict[str, Any]:
        outputs = [{"name": "predict", "datatype": self._label_type(), "shape": [-1]}]
        if self.model.manifest["outputs"]["probabilities"]:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(self.model.classes or [])]})
        return {
            "name": self.name,
            "versions": [str(self.model.version)],
            "platform": "matchday_edge/onnxruntime",
            "inputs": [
                {"name": s["name"], "datatype": _DATATYPES[s["type"]], "shape": [-1, 1]}
                for s in self.model.manifest["inputs"]
            ],
            "outputs": outputs,
            "parameters": {"model": self.model.name},
        }

    def rows(self, body: Any) -> list[list[Any]]:
        """The request's tensors as rows in input order: one tensor per input column, or one 2-D tensor."""
        if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
            raise V2Error(400, 'the body must be a JSON object with a non-empty "inputs" list of tensors')
        names = self.model.input_names
        tensors: dict[str, np.ndarray[Any, Any]] = {}
        for i, tensor in enumerate(body["inputs"]):
            if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or "data" not in tensor:
                raise V2Error(400, f"inputs[{i}] is not a tensor with a name and data")
            shape = tensor.get("shape")
            try:
                values = np.asarray(tensor["data"], dtype=object).reshape(shape if shape else -1)
            except (TypeError, ValueError) as exc:
                raise V2Error(400, f"inputs[{i}] ({tensor['name']}): data does not fit shape {shape}: {exc}") from exc
            tensors[tensor["name"]] = values
        if len(tensors) == 1 and next(iter(tensors)) not in names:
            matrix: np.ndarray[Any, Any] = next(iter(tensors.values()))
            if matrix.ndim != 2 or matrix.shape[1] != len(names):
                raise V2Error(400, f"one tensor of shape [rows, {len(names)}] ({', '.join(names)}) or one per input")
            return [list(row) for row in matrix.tolist()]
        missing = [n for n in names if n not in tensors]
        if missing:
            raise V2Error(400, f"inputs missing: {', '.join(missing)} (the model takes {', '.join(names)})")
        columns = [tensors[n].reshape(-1).tolist() for n in names]
        if len({len(c) for c in columns}) != 1:
            raise V2Error(400, "the input tensors hold different numbers of rows")
        return [list(row) for row in zip(*columns)]

    def _label_type(self) -> str:
        if self.model.manifest["task"] == "regression":
            return "FP64"
        classes = self.model.classes or []
        return "INT64" if classes and all(isinstance(c, int) and not isinstance(c, bool) for c in classes) else "BYTES"


def _tensor(name: str, values: list[Any], datatype: str) -> dict[str, Any]:
    return {"name": name, "datatype": datatype, "shape": [len(values)], "data": values}


def _handler(server: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self._answer(lambda: server.get(self.path.split("?", 1)[0]))

        def do_POST(self) -> None:  # noqa: N802
            def infer() -> dict[str, Any]:
                size = int(self.headers.get("Content-Length") or 0)
                if size > MAX_BODY:
                    raise V2Error(413, f"the body is {size} bytes; at most {MAX_BODY}")
                try:
                    body = json.loads(self.rfile.read(size) or b"null")
                except ValueError as exc:
                    raise V2Error(400, f"the body is not JSON: {exc}") from exc
                return server.post(self.path.split("?", 1)[0], body)

            self._answer(infer)

        def _answer(self, work: Any) -> None:
            try:
                status, answer = 200, work()
            except V2Error as exc:
                status, answer = exc.status, {"error": exc.message}
            except BufferFull as exc:  # refuse_new, and full: the app may retry after a sync
                status, answer = 503, {"error": str(exc)}
            except EdgeError as exc:  # rows that do not fit the model
                status, answer = 400, {"error": str(exc)}
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # quiet: the app's own log says what it needs
            pass

    return Handler
