"""A docs page's ``yaml`` block as matchday.yaml: every key a setting, then its monitors, retraining policies
and rollout plans checked as `matchday serve` checks them before it starts (trainers are not imported: the
pages name their readers' own)."""

from __future__ import annotations

import tempfile
from pathlib import Path


def settings_problem(text: str) -> str | None:
    """Why ``text`` is not a matchday.yaml `matchday serve` would start with, or None."""
    import yaml

    from matchday.config import Settings, load_settings
    from matchday.retrain import parse_policies
    from matchday.rollout import build_plan
    from matchday.workspace import Workspace

    try:
        loaded = yaml.safe_load(text)
        if not isinstance(loaded, dict):
            return "not a mapping of settings"
        unknown = sorted(set(loaded) - set(Settings.model_fields))
        if unknown:  # load_settings passes over them: a typo would be a setting quietly lost
            return f"not settings of matchday.yaml: {', '.join(unknown)}"
        with tempfile.TemporaryDirectory(prefix="docs-yaml-") as tmp:
            path = Path(tmp) / "matchday.yaml"
            path.write_text(text)
            settings = load_settings(environ={"MATCHDAY_HOME": str(Path(tmp) / "home")}, config_file=path)
            ws = Workspace(settings)
            try:
                loop = ws.monitoring

                def monitors_of(name: str) -> list[str]:
                    return [m.name for m in loop.monitors_of(name)]

                parse_policies(settings.retrain, monitors_of, import_trainers=False)
                for plan in settings.rollouts.values():
                    build_plan({}, plan)
            finally:
                ws.close()
    except Exception as exc:  # noqa: BLE001 - any refusal is the page's
        details = "".join(f"\n  - {d}" for d in getattr(exc, "details", None) or [])
        return f"{type(exc).__name__}: {exc}{details}"
    return None
