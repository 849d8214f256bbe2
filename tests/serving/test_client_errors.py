"""The Python client says what is wrong when no server answers, instead of httpx's traceback."""

from __future__ import annotations

import socket

import pytest

import matchday
from matchday.client import ServerUnreachable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


def test_a_closed_port_is_a_matchday_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with matchday.Client(url) as client:
        for call in (client.deployments, lambda: client.predict("fraud", [{"x": 1}])):
            with pytest.raises(ServerUnreachable, match=f"cannot reach a matchday server at {url}") as caught:
                call()
            assert isinstance(caught.value, matchday.MatchdayError)
            assert "matchday serve" in str(caught.value)


def test_a_url_without_a_scheme_is_named_too() -> None:
    with matchday.Client("127.0.0.1:8000") as client, pytest.raises(ServerUnreachable, match="127.0.0.1:8000"):
        client.deployments()
