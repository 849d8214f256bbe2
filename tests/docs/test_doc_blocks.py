"""Docs that stay true (issue 19): every shell, Python and matchday.yaml block of README.md, CONTRIBUTING.md
and docs/*.md runs, page by page, from a fresh home (or the state the page says it starts from), so a changed
command breaks the suite rather than a newcomer's afternoon. How a page runs: `support/doc_runner.py`; the
annotations a page may carry: `support/doc_blocks.py`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.doc_blocks import ROOT, RUN, commands, pages, parse_page, read_page
from support.doc_runner import expected, missing_words
from support.doc_setups import SETUPS

TESTS = Path(__file__).resolve().parents[1]
SKIP_LIMIT = 15  # blocks that cannot run in the suite (minutes-long benchmarks, `make demo`, the suite itself)
KNOWN_BUGS_LIMIT = 3
PAGE_TIMEOUT = 900
PAGES = pages()
RUNNING = [p for p in PAGES if any(b.skip_reason is None for b in read_page(p).runnable)]


SAMPLE = """# A page

<!-- docs-test: setup=demo -->
<!-- docs-test: let 0c0d…e1=$(matchday review list x --json) -->
```console
$ matchday drift a.parquet b.csv \\
    --html report.html
dataset drift: 2 of 3 columns drifted
$ echo $?
3
$ curl -s localhost:8000/v1/x -d '{
    "instances": []}'
{"error": "no rows"}
$ matchday review decide 0c0d…e1 approve --reviewer alice   # a comment
0c0d…e1: approved
$ FORWARDED_ALLOW_IPS=127.0.0.1 matchday serve --port 8000 &
$ matchday serve --host 0.0.0.0
error: refusing to listen on 0.0.0.0
```

<!-- docs-test: skip because it takes minutes -->
```sh
make demo    # the whole demo
             # then serves
```
"""


def test_a_page_parses_into_commands_with_what_they_show() -> None:
    """The harness itself: continuations, a quote running on, `echo $?`, a shown error, annotations."""
    page = parse_page(Path("sample.md"), SAMPLE)
    console, sh = page.blocks
    assert page.setup == "demo" and not page.problems
    assert console.annotation("let") and console.annotation("let").value.startswith("0c0d…e1=$(")
    assert sh.skip_reason == "it takes minutes" and [c.text for c in commands(sh)] == ["make demo    # the whole demo"]
    drift, echo, curl, decide, serve, refused = listed = commands(console)
    assert drift.text == "matchday drift a.parquet b.csv \\\n    --html report.html" and drift.line == 6
    assert expected(drift, listed) == 3 and echo.shown == ("3",)
    assert curl.shown == ('{"error": "no rows"}',) and "\n" in curl.text and expected(curl, listed) == 0
    assert decide.flat == "matchday review decide 0c0d…e1 approve --reviewer alice"
    assert serve.is_serve and serve.background and serve.assignments == {"FORWARDED_ALLOW_IPS": "127.0.0.1"}
    assert refused.is_serve and not refused.background and expected(refused, listed) == "error"
    assert missing_words(drift, "dataset drift: 0 of 3 columns drifted") == []
    assert missing_words(drift, "no dataset drift") == ["columns", "drifted"]
    assert missing_words(curl, '{"error": "no rows"}') == [] and missing_words(curl, "{}") == ["error", "rows"]


def test_annotations_are_well_formed() -> None:
    problems = [problem for p in PAGES for problem in read_page(p).problems]
    for page in map(read_page, PAGES):
        if page.setup is not None and page.setup not in SETUPS:
            problems.append(f"{page.path}: unknown setup {page.setup!r} (known: {', '.join(SETUPS)})")
        for block in page.blocks:
            if block.annotations and block.lang not in RUN:
                problems.append(f"{block.where}: annotated, but a {block.lang or 'plain'} block is not run")
            if block.skip_reason == "":
                problems.append(f"{block.where}: a skip must say why (`skip because ...`)")
    assert not problems, "\n".join(problems)


def test_few_blocks_are_skipped() -> None:
    """Skipping cannot grow silently: each skipped block is listed here with its reason."""
    skipped = [f"{b.where}: {b.skip_reason}" for p in PAGES for b in read_page(p).runnable if b.skip_reason is not None]
    assert len(skipped) <= SKIP_LIMIT, f"{len(skipped)} blocks skipped (at most {SKIP_LIMIT}):\n" + "\n".join(skipped)


def test_few_blocks_fail_for_a_known_bug() -> None:
    """A block annotated `fails` shows a reported bug: it must fail until the fix (then the page's test fails
    until the annotation goes), and there should never be many."""
    failing = [f"{b.where}: {b.reason('fails')}" for p in PAGES for b in read_page(p).runnable if b.reason("fails")]
    assert len(failing) <= KNOWN_BUGS_LIMIT, "\n".join(failing)


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNING, ids=str)
def test_page_runs(page: Path, tmp_path: Path) -> None:
    """The page's blocks in order, in a process of its own (and a process group: its servers end with it)."""
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    runner = subprocess.Popen(
        [sys.executable, "-m", "support.doc_runner", str(page), str(tmp_path / "work")],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = runner.communicate(timeout=PAGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(runner.pid, signal.SIGKILL)
        stdout, stderr = runner.communicate()
        pytest.fail(f"{page} did not finish in {PAGE_TIMEOUT}s:\n{stdout[-8000:]}\n{stderr[-4000:]}")
    assert runner.returncode == 0, f"{stdout[-8000:]}\n{stderr[-4000:]}"
