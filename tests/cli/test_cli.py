"""The `matchday` command end to end: its registry and deployment commands on both databases; what is
the command line's own (a callable found through PYTHONPATH, errors and usage errors on one line, exit
codes) on SQLite, the registry's errors and what a failed registration leaves being
tests/registry/test_registry.py's, on both.

Most commands run in-process through `matchday.cli.main` (what the console script calls) inside
Typer's `CliRunner` isolation: each call gets its own argv, environment, stdin, stdout and stderr,
fresh Rich consoles and a fresh workspace, as a new process would, without ~2 s of start-up each.
`run_process` keeps the installed `matchday` script itself covered: a real process, its exit
code and what it prints to stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli_in_process import run_in_process

import matchday.workspace

MATCHDAY = str(Path(sys.executable).parent / "matchday")
TESTS = Path(__file__).parents[1]
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the command line's, not the store's


def run_process(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script in a subprocess."""
    return subprocess.run(
        [MATCHDAY, *args], env=env, capture_output=True, text=True, timeout=120, input=input, cwd=env["MATCHDAY_HOME"]
    )


def run(env: dict[str, str], *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """`matchday ARGS` in this process; the same result as `run_process`, except that the runner echoes
    a prompt's answer (``input``) to stdout."""
    assert Path.cwd() == Path(env["MATCHDAY_HOME"]), "the env fixture puts the working directory where run_process does"
    # the next call opens the database afresh, as a new process does
    return run_in_process(args, env, input=input, after=_forget_default_workspace)


def _forget_default_workspace() -> None:
    with matchday.workspace._lock:
        if matchday.workspace._default is not None:
            matchday.workspace._default.close()
            matchday.workspace._default = None


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.chdir(tmp_path)  # matchday.yaml is looked up here, as with run_process's cwd
    return {
        **os.environ,
        "MATCHDAY_HOME": str(tmp_path),
        "MATCHDAY_DATABASE_URL": database_url,
        "PYTHONPATH": str(TESTS),
        "COLUMNS": "200",
    }


@pytest.fixture
def files(tmp_path: Path, cancer, cancer_pipeline) -> dict[str, Path]:  # type: ignore[no-untyped-def]
    import skops.io as sio

    X, y = cancer
    model = tmp_path / "model.skops"
    sio.dump(cancer_pipeline, model)
    reference = tmp_path / "reference.parquet"
    X.assign(target=y).to_parquet(reference)
    csv = tmp_path / "reference.csv"
    X.iloc[:100].to_csv(csv, index=False)
    return {"model": model, "reference": reference, "csv": csv}


def expect_error(result: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit code 1 and one `error:` line on stderr, without a traceback (in-process, any other exception propagates)."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error:"), result.stderr
    assert message in " ".join(result.stderr.split()), result.stderr


@pytest.mark.slow
def test_register_list_show_alias_verify_delete(env, files) -> None:  # type: ignore[no-untyped-def]
    r = run(
        env,
        "models",
        "register",
        "cancer",
        str(files["model"]),
        "--reference",
        str(files["reference"]),
        "--target",
        "target",
        "--alias",
        "champion",
    )
    assert r.returncode == 0, r.stderr
    assert "registered cancer:1 (sklearn" in r.stdout and "as @champion" in r.stdout
    r = run(env, "models", "register", "cancer", str(files["model"]), "--reference", str(files["csv"]))
    assert r.returncode == 0, r.stderr

    listing = json.loads(run(env, "models", "list", "--json").stdout)
    assert (
        listing[0]["name"] == "cancer"
        and listing[0]["latest_version"] == 2
        and listing[0]["aliases"] == {"champion": 1}
    )
    assert "@champion→1" in run(env, "models", "list").stdout

    r = run(env, "models", "alias", "cancer", "2", "champion", "--reason", "better")
    assert r.returncode == 0 and "cancer@champion → version 2 (was 1)" in r.stdout
    shown = json.loads(run(env, "models", "show", "cancer", "--json").stdout)
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert [(m["from_version"], m["to_version"], m["reason"]) for m in shown["alias_history"]] == [
        (None, 1, "set at registration"),
        (1, 2, "better"),
    ]
    detail = run(env, "models", "show", "cancer@champion")
    assert detail.returncode == 0 and "cancer:2" in detail.stdout and "mean radius" in detail.stdout
    version = json.loads(run(env, "models", "show", "cancer:1", "--json").stdout)
    assert version["profile"]["rows"] == 569 and "target" in version["profile"]
    assert "artifact intact" in run(env, "models", "verify", "cancer@champion").stdout

    r = run(env, "models", "delete", "cancer:1", input="n\n")
    assert r.returncode == 1  # declined: nothing deleted
    assert run(env, "models", "delete", "cancer:1", "--yes").returncode == 0
    assert [v["version"] for v in json.loads(run(env, "models", "show", "cancer", "--json").stdout)["versions"]] == [2]
    assert run(env, "db", "upgrade").returncode == 0


@SQLITE_ONLY
def test_callable_from_the_command_line(env, tmp_path, mixed_frame) -> None:  # type: ignore[no-untyped-def]
    reference = tmp_path / "mixed.parquet"
    mixed_frame.to_parquet(reference)
    # a real process: the callable's module is found through PYTHONPATH, not through pytest's sys.path
    r = run_process(
        env,
        "models",
        "register",
        "rule",
        "support.flavor_callables:score",
        "--reference",
        str(reference),
        "--target",
        "label",
        "--proba",
        "support.flavor_callables:score_proba",
    )
    assert r.returncode == 0, r.stderr
    assert "callable" in r.stdout and "classification" in r.stdout


@pytest.mark.slow
@SQLITE_ONLY
def test_errors_are_one_line_and_exit_1(env, files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    ref = ["--reference", str(files["reference"]), "--target", "target"]
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    expect_error(run(env, "models", "register", "m", str(notes), *ref), "is not a model")
    expect_error(
        run(env, "models", "register", "m", str(files["model"]), *ref, "--flavor", "keras"), "unknown flavor 'keras'"
    )
    expect_error(
        run(env, "models", "register", "m", str(files["model"]), "--reference", str(files["reference"])),
        "not an input of the model: target",
    )
    expect_error(
        run(env, "models", "register", "m", str(files["model"]), "--reference", str(tmp_path / "nope.parquet")),
        "no such file",
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    expect_error(
        run(env, "models", "register", "m", str(files["model"]), "--reference", str(empty)), "could not be read"
    )
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04K\x01.")
    expect_error(run(env, "models", "register", "m", str(pickled), *ref), "--trust-pickle")
    assert json.loads(run(env, "models", "list", "--json").stdout) == []  # nothing half-written

    assert run(env, "models", "register", "m", str(files["model"]), *ref).returncode == 0
    expect_error(run(env, "models", "alias", "m", "5", "champion"), "model 'm' has no version 5 (latest is 1)")
    expect_error(run(env, "models", "show", "ghost"), "no model named 'ghost'")
    expect_error(run(env, "models", "show", "m@prod"), "has no alias 'prod'")
    expect_error(run(env, "models", "show", "m:x"), "not a model reference")

    model_sha = json.loads(run(env, "models", "show", "m:1", "--json").stdout)["artifact_sha256"]
    blob = next(p for p in (tmp_path / "artifacts").rglob(model_sha) if p.is_file())  # not the reference rows' blob
    blob.write_bytes(blob.read_bytes() + b"tampered")
    expect_error(run(env, "models", "verify", "m:1"), "was changed after registration")


def test_unreachable_database(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MATCHDAY_HOME": str(tmp_path),
        "MATCHDAY_DATABASE_URL": "postgresql+psycopg://u:pw@127.0.0.1:1/db",
    }
    result = run_process(env, "models", "list")  # the console script's exit code and stderr, as a user sees them
    expect_error(result, "cannot reach the database at postgresql+psycopg://u:***@127.0.0.1:1/db")
    assert "pw" not in result.stderr.replace("psycopg", "")


@SQLITE_ONLY
def test_a_mistyped_command_is_a_usage_error_not_a_traceback(env) -> None:  # type: ignore[no-untyped-def]
    result = run_process(env, "models", "nope")  # the console script, as a user sees it
    assert result.returncode == 2 and "No such command 'nope'" in result.stderr
    assert "Traceback" not in result.stderr
    result = run(env, "rollout", "start", "x", "y:1", "--gate", "bad")
    assert result.returncode == 2 and "expected NAME=VALUE" in result.stderr and "Traceback" not in result.stderr


def test_deploy_and_list(env, files) -> None:  # type: ignore[no-untyped-def]
    assert (
        run(
            env,
            "models",
            "register",
            "cancer",
            str(files["model"]),
            "--reference",
            str(files["reference"]),
            "--target",
            "target",
            "--alias",
            "champion",
        ).returncode
        == 0
    )
    r = run(env, "deploy", "screening", "cancer@champion", "--max-batch-size", "32")
    assert r.returncode == 0 and "deployment screening serves cancer@champion (new)" in r.stdout
    r = run(env, "deploy", "screening", "cancer:1")
    assert r.returncode == 0 and "(was cancer@champion)" in r.stdout
    listing = run(env, "deployments", "list")
    assert "screening" in listing.stdout and "cancer:1" in listing.stdout
    expect_error(run(env, "deploy", "screening", "cancer@prod"), "has no alias 'prod'")
    expect_error(run(env, "deploy", "screening", "cancer:9"), "has no version 9")
    expect_error(run(env, "deploy", "Bad Name", "cancer:1"), "invalid deployment name")
    expect_error(run(env, "deploy", "screening", "cancer"), "deploy a fixed version or an alias")
    expect_error(run(env, "deploy", "screening", "cancer:1", "--max-batch-size", "0"), "max_batch_size")
