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


def test_store_imports_nothing_of_ours_but_errors() -> None:
    """DESIGN.md: `store` is the bottom layer."""
    import pathlib

    import matchday.store

    root = pathlib.Path(matchday.store.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("from matchday", "import matchday")):
                assert line.startswith(("from matchday.store", "from matchday.errors")), f"{path}: {line}"


def test_auth_imports_only_the_store_and_errors() -> None:
    """DESIGN.md: `auth` sits on `store` (and the base modules beside `errors`); serving and the dashboard ask
    it, never the other way."""
    import pathlib

    import matchday.auth

    root = pathlib.Path(matchday.auth.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("from matchday", "import matchday")):
                module = line.split()[1]
                assert module.startswith("matchday.auth") or module in (
                    "matchday.store",
                    "matchday.errors",
                    "matchday.durations",
                ), f"{path}: {line}"


def test_review_imports_only_the_faces_below_it() -> None:
    """DESIGN.md: `review` sits on store, registry and monitoring (their faces); serving asks it, never back."""
    import pathlib

    import matchday.review

    allowed = ("matchday.store", "matchday.registry", "matchday.monitoring", "matchday.errors", "matchday.durations")
    root = pathlib.Path(matchday.review.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            if line.startswith(("from matchday", "import matchday")):
                module = line.split()[1]
                assert module.startswith("matchday.review") or module in allowed, f"{path}: {line}"


def test_retrain_imports_only_the_faces_below_it() -> None:
    """DESIGN.md: `retrain` hands candidates to `rollout`; serving, the worker and the CLI ask it, never back."""
    import pathlib

    import matchday.retrain

    allowed = (
        "matchday.store",
        "matchday.registry",
        "matchday.rollout",
        "matchday.monitoring",
        "matchday.errors",
        "matchday.durations",
        "matchday.ray_cluster",
    )
    root = pathlib.Path(matchday.retrain.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            if line.lstrip().startswith(("from matchday", "import matchday")):
                module = line.split()[1]
                assert module.startswith("matchday.retrain") or module in allowed, f"{path}: {line}"


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


def test_the_dashboard_reads_through_public_faces_and_has_no_sql() -> None:
    """DESIGN.md: `dashboard` sits on top and has no SQL of its own; it imports other parts' faces only."""
    import pathlib

    import matchday.dashboard

    root = pathlib.Path(matchday.dashboard.__file__).parent
    for path in root.rglob("*.py"):
        for line in path.read_text().splitlines():
            assert "sqlalchemy" not in line, f"{path}: {line}"
            if line.startswith("from matchday.") and not line.startswith("from matchday.dashboard"):
                module = line.split()[1]
                assert module.count(".") == 1 or module == "matchday.workspace", f"{path}: {line}"
