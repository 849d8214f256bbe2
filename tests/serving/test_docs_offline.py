"""``/docs`` and ``/redoc`` work without the internet: the pages load their scripts, styles and icon
from this server (they came from a CDN, and offline ``/docs`` was a blank page)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from matchday.config import Settings
from matchday.server import create_server
from matchday.workspace import Workspace

ASSET = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The whole server's app (API and dashboard), without its lifespan: the pages need no database."""
    home = tmp_path_factory.mktemp("docs")
    ws = Workspace(Settings(home=home, database_url=f"sqlite:///{home / 'matchday.db'}"))
    yield TestClient(create_server(ws), base_url="http://127.0.0.1")
    ws.close()


def _assets(html: str) -> list[str]:
    return ASSET.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_this_server(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "cdn." not in html and "googleapis" not in html and "fastapi.tiangolo.com" not in html
    assets = _assets(html)
    assert any(a.endswith(".js") for a in assets), assets
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), f"{page} loads {url} from elsewhere"
        fetched = client.get(url)
        assert fetched.status_code == 200, url
        kind = CONTENT_TYPES[Path(url).suffix]
        assert kind in fetched.headers["content-type"], (url, fetched.headers["content-type"])
        assert len(fetched.content) > 1000, url
    assert "/openapi.json" in html


def test_swagger_ui_is_a_version_that_reads_openapi_3_1(client: TestClient) -> None:
    """FastAPI publishes OpenAPI 3.1, which Swagger UI 4 refuses to render ("Unable to render this definition")."""
    assert client.get("/openapi.json").json()["openapi"].startswith("3.1")
    script = next(a for a in _assets(client.get("/docs").text) if a.endswith("swagger-ui-bundle.js"))
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.', client.get(script).text)
    assert version is not None and int(version.group(1)) >= 5
    assert "SwaggerUIBundle" in client.get(script).text
    assert client.get("/docs/oauth2-redirect").status_code == 200
