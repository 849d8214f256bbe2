"""Every part's public face names only things that exist (and the top level works as documented)."""

from __future__ import annotations

import importlib

import pytest

PARTS = [
    "matchday",
    "matchday.store",
    "matchday.registry",
    "matchday.monitoring",
    "matchday.rollout",
    "matchday.auth",
    "matchday.review",
    "matchday.retrain",
    "matchday.serving",
    "matchday.dashboard",
    "matchday.demo",
    "matchday.edge",
    "matchday_edge",
]


@pytest.mark.parametrize("module_name", PARTS)
def test_all_names_exist(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_register_and_load_through_the_top_level(tmp_path, monkeypatch, cancer, cancer_pipeline) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    import matchday

    monkeypatch.setenv("MATCHDAY_HOME", str(tmp_path))
    monkeypatch.delenv("MATCHDAY_DATABASE_URL", raising=False)
    X, y = cancer
    record = matchday.register_model("cancer", cancer_pipeline, reference=X.assign(y=y), target="y", alias="champion")
    assert record.ref == "cancer:1" and (tmp_path / "matchday.db").exists()
    model = matchday.load_model("cancer@champion")
    assert np.array_equal(model.predict(X), cancer_pipeline.predict(X))


def test_the_dashboard_has_no_sql() -> None:
    """DESIGN.md: `dashboard` has no SQL of its own; it reads through the other parts (their faces: the
    arrows test, test_architecture.py, holds that)."""
    import pathlib

    import matchday.dashboard

    root = pathlib.Path(matchday.dashboard.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            assert "sqlalchemy" not in line, f"{path}: {line}"
