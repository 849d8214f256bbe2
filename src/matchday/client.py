"""A small Python client for a matchday server: ``Client(url).predict(...)`` and ``.feedback(...)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from matchday.errors import MatchdayError


class ServerError(MatchdayError):
    """The server answered with an error; ``status`` is the HTTP status, ``details`` its list."""

    def __init__(self, status: int, message: str, details: list[Any]) -> None:
        super().__init__(f"{status}: {message}", [str(d) for d in details])
        self.status = status
        self.problems = details


class Client:
    """Talks to one server; use as a context manager or call `close`."""

    def __init__(self, url: str = "http://127.0.0.1:8000", *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout)

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

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return _answer(self._http.post(path, json=body))

    def _get(self, path: str) -> dict[str, Any]:
        return _answer(self._http.get(path))

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
