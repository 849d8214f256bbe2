"""`matchday --help` starts fast (issue 14: under 0.3 s) because the command line imports the parts at
the command boundary. Held here by what is imported, not by a timing (benchmarks/cli_startup.py times it)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["numpy", "pyarrow", "sqlalchemy", "pandas", "scipy", "sklearn", "httpx", "fastapi", "matchday.workspace"]


def imported_by(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_the_help_imports_no_part_and_no_heavy_library() -> None:
    code = "from matchday.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert not set(HEAVY) & imported_by(code)


def test_import_matchday_is_light_and_its_names_load_on_first_use() -> None:
    assert not set(HEAVY) & imported_by("import matchday")
    assert {"matchday.workspace", "matchday.registry"} <= imported_by("import matchday\nmatchday.Workspace")
