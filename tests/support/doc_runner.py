"""Run one docs page's blocks in order, as a reader would, from a fresh home in WORKDIR:
``python -m support.doc_runner PAGE WORKDIR`` (with tests/ on PYTHONPATH). Exits 0 when every block did what
the page says, else prints ``PAGE:LINE: what went wrong`` and exits 1.

Shell blocks run in bash with the venv's `matchday` on PATH (`forked_cli`'s launcher); a `matchday serve` line
starts the page's server (a real process, on a free port: `127.0.0.1:8000`, `localhost:8000` and the pages'
example hosts are rewritten to it, and a block that calls it starts it if no line did), and a `matchday worker`
line or one ending in ``&`` runs in the background until the page ends. A command must exit as the page shows
(0; the number under a following ``echo $?``; non-zero under output starting with ``error:``) and print the
first words of the output line shown under it. Python blocks share one namespace per page (their ``# ...``
output comments are not compared). YAML blocks are checked as matchday.yaml (`doc_settings`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from support import forked_cli
from support.doc_blocks import ROOT, SHELL, Block, Command, commands, read_page
from support.doc_settings import settings_problem
from support.doc_shell import Step, run_steps
from support.server_process import ServerProcess, free_port, wait_until

VENV_BIN = Path(sys.executable).parent
COMMAND_TIMEOUT = 180.0
# Where the pages point a client at a server: each means the page's server.
EXAMPLE_URLS = ("https://models.example.com", "https://matchday.example.com", "http://server:8000")
# A running server knows a new or revoked credential within half a second (docs/security.md); a reader takes
# longer than that to type the next command, so the page waits too.
CREDENTIALS = re.compile(r"matchday (tokens (create|revoke)|users (add|remove)|edge devices add)")


class BlockFailed(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")


class PageRun:
    """One page's state: its working folder and environment (this process's own), its server, its background
    commands, and the namespace its Python blocks share."""

    def __init__(self, page: Path, workdir: Path) -> None:
        self.page, self.workdir = read_page(page), workdir
        self.home = workdir / ".matchday"
        self.port = free_port()
        self.server: ServerProcess | None = None
        self.server_args: list[str] = []
        self.background: list[tuple[Command, subprocess.Popen[bytes]]] = []
        self.namespace: dict[str, object] = {"__name__": "__main__"}
        self.cli = Path(tempfile.mkdtemp(prefix="docs-cli-"))
        self.forker: subprocess.Popen[bytes] | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("MATCHDAY_") and k != "PYTHONPATH"}
        env["PATH"] = os.pathsep.join([str(self.cli), str(VENV_BIN), env.get("PATH", "")])
        env["MATCHDAY_HOME"] = str(self.home)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(workdir)

    def run(self, setups: dict[str, Callable[[PageRun], None]]) -> None:
        try:
            if self.page.problems:
                raise BlockFailed(str(self.page.path), "; ".join(self.page.problems))
            if self.page.setup:
                if self.page.setup not in setups:
                    raise BlockFailed(str(self.page.path), f"unknown setup {self.page.setup!r}")
                setups[self.page.setup](self)
            for block in self.page.runnable:
                self.run_annotated(block)
        finally:
            self.stop()

    def run_annotated(self, block: Block) -> None:
        if block.skip_reason is not None:
            print(f"{block.where}: skipped: {block.skip_reason}", flush=True)
            return
        started, known_bug = time.monotonic(), block.reason("fails")
        try:
            if block.lang in SHELL:
                self.run_shell(block)
            elif block.lang == "python":
                self.run_python(block)
            elif problem := settings_problem("\n".join(block.lines)):
                raise BlockFailed(block.where, f"not a matchday.yaml `matchday serve` starts with: {problem}")
        except BlockFailed as exc:
            if known_bug is None:
                raise
            print(f"{block.where}: failed, as annotated ({known_bug}):\n{exc}", flush=True)
            return
        if known_bug is not None:
            raise BlockFailed(block.where, "the block runs now: remove its `fails` annotation")
        print(f"{block.where}: {block.lang} ok in {time.monotonic() - started:.1f}s", flush=True)

    def stop(self) -> None:
        for _, process in self.background:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.stop_server()
        if self.forker is not None:
            self.forker.terminate()
            self.forker.wait(30)

    # the page's server, and its `matchday`

    def localize(self, text: str) -> str:
        """The page's server where the text says 127.0.0.1:8000, localhost:8000 or an example host."""
        for url in EXAMPLE_URLS:
            text = text.replace(url, f"http://127.0.0.1:{self.port}")
        text = re.sub(r"\b(127\.0\.0\.1|localhost):8000\b", f"127.0.0.1:{self.port}", text)
        return re.sub(r"--port[ =]8000\b", f"--port {self.port}", text)

    def serve(self, args: list[str] | None = None, env: dict[str, str] | None = None) -> ServerProcess:
        """`matchday serve ARGS` (again, if ARGS differ) on the page's port, without its worker unless ARGS
        ask for one (no page needs it; `--worker` or a `matchday worker` line starts one)."""
        args = list(args or [])
        if self.server is not None and args == self.server_args and not env:
            return self.server
        self.stop_server()
        workers, options, words = 1, [], iter(args)
        for word in words:
            if word in ("--host", "--port"):
                next(words, None)
            elif word == "--workers":
                workers = int(next(words, "1"))
            elif not word.startswith(("--host=", "--port=", "--workers=")):
                options.append(word)
        self.server = ServerProcess(
            self.workdir,
            f"sqlite:///{self.home / 'matchday.db'}",
            port=self.port,
            workers=workers,
            env={**os.environ, "MATCHDAY_HOME": str(self.home), **(env or {})},
            args=[o for o in options if o not in ("--worker", "--no-worker")],
            worker="--worker" in options,
        ).start(timeout=120)
        self.server_args = args
        return self.server

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def serve_if_called(self, original: str, localized: str) -> None:
        if localized != original and self.server is None:
            self.serve()

    def server_log(self) -> str:
        if self.server is None or not self.server.log.exists():
            return ""
        return f"\n--- the page's server log (last lines) ---\n{self.server.log.read_text(errors='replace')[-3000:]}"

    def start_forker(self) -> None:
        """The process `matchday` forks from (until it listens, the launcher runs the console script)."""
        if self.forker is None:
            forker = self.forker = forked_cli.start(self.cli, dict(os.environ))
            wait_until(lambda: (self.cli / "cli.sock").exists() or forker.poll() is not None, 120, "matchday")

    # blocks

    def run_python(self, block: Block) -> None:
        doctest = any(line.startswith(">>> ") for line in block.lines)
        lines = [(line[4:] if line.startswith((">>> ", "... ")) else "") if doctest else line for line in block.lines]
        source = "\n".join(lines)
        localized = self.localize(source)
        self.serve_if_called(source, localized)
        code = compile("\n" * block.line + localized, str(ROOT / block.page), "exec")  # tracebacks: the page's lines
        try:
            exec(code, self.namespace)
        except BaseException as exc:  # noqa: BLE001 - any failure of the page's code is the page's
            trace = "".join(traceback.format_exception(exc))
            raise BlockFailed(block.where, f"the Python block raised:\n{trace}{self.server_log()}") from None

    def run_shell(self, block: Block) -> None:
        for name, _, value in (a.value.partition("=") for a in block.annotations if a.key == "env"):
            os.environ[name] = value
        listed = [c for c in commands(block) if c.flat.strip() != "echo $?"]  # `echo $?`: read by `expected`
        piece: list[Command] = []
        for command in listed:
            if (command.is_serve and not command.shows_error) or command.background or command.is_worker:
                self.run_piece(block, piece)
                piece = []
                if command.is_serve:
                    self.serve(Command(self.localize(command.flat), command.line).words[2:], command.assignments)
                else:
                    self.start_background(command)
            else:
                piece.append(command)
        self.run_piece(block, piece)
        for command, process in self.background:
            if process.poll() not in (None, 0):
                raise BlockFailed(f"{block.page}:{command.line}", f"`{command.flat}` exited {process.returncode}")

    def start_background(self, command: Command) -> None:
        self.start_forker()
        log_path = self.workdir / f"background-{command.line}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                ["bash", "-c", self.localize(command.flat).rstrip().removesuffix("&")], stdout=log, stderr=log
            )
        self.background.append((command, process))
        time.sleep(3)  # long enough to fail on a bad option or a missing store
        if process.poll() not in (None, 0):
            raise BlockFailed(
                f"{self.page.path}:{command.line}",
                f"`{command.flat}` exited {process.returncode}:\n{log_path.read_text()[-3000:]}",
            )

    def run_piece(self, block: Block, piece: list[Command]) -> None:
        """Consecutive commands in one bash, checked one by one as the page shows them."""
        if not piece:
            return
        if any("matchday" in command.text for command in piece):
            self.start_forker()
        lets = [a.value.partition("=")[::2] for a in block.annotations if a.key == "let"]
        steps, defined = [], set()
        for command in piece:
            text = self.localize(command.text)
            self.serve_if_called(command.text, text)
            if command.is_serve and "--port" not in text:  # one the page shows failing: not on a port in use
                text += f" --port {free_port()}"
            before = []
            for k, (placeholder, expression) in enumerate(lets):  # `let`: the text stands for what it prints
                if placeholder in text:
                    if placeholder not in defined:
                        before.append(f"__docs_let_{k}={expression}")
                        defined.add(placeholder)
                    text = text.replace(placeholder, f"${{__docs_let_{k}}}")
            pause = 2.0 if CREDENTIALS.search(text) else 0.0
            steps.append(Step(text, expected(command, commands(block)), tuple(before), pause))
        typed = block.annotation("typed")
        timeout = COMMAND_TIMEOUT * len(piece)
        try:
            ran = run_steps(steps, typed=typed.value if typed else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BlockFailed(block.where, f"timed out after {timeout:.0f}s") from None
        for command, step, status, output in zip(piece, steps, ran.statuses, ran.outputs):
            where = f"{block.page}:{command.line}"
            if status is None:
                raise BlockFailed(where, f"`{command.flat}` did not run")
            if (status == 0) if step.status == "error" else (status != step.status):
                wanted = "a non-zero exit (it shows an error)" if step.status == "error" else f"exit {step.status}"
                raise BlockFailed(
                    where,
                    f"`{command.flat}` exited {status}, the page expects {wanted}:\n{output[-4000:]}"
                    f"{self.server_log()}",
                )
            if missing := missing_words(command, output + ran.terminal):
                raise BlockFailed(
                    where,
                    f"`{command.flat}` printed no {', '.join(missing)} "
                    f"(the page shows {command.shown[0].strip()!r}):\n{output[-4000:]}",
                )
            shown = "".join(f"\n    | {line}" for line in output.rstrip().splitlines()[-40:])
            print(f"{where}: $ {command.flat}  -> exit {status}{shown}", flush=True)
        if ran.env is not None:
            os.environ.clear()
            os.environ.update(ran.env)


def expected(command: Command, listed: list[Command]) -> int | str:
    """The exit status the page shows: the number under a following `echo $?`, "error" when the output shown
    starts with `error:`, else 0."""
    i = listed.index(command)
    after = listed[i + 1] if i + 1 < len(listed) else None
    if after is not None and after.flat.strip() == "echo $?" and after.shown:
        return int(after.shown[0].strip())
    return "error" if command.shows_error else 0


def missing_words(command: Command, output: str) -> list[str]:
    """The first words of the output line the page shows under the command that its output lacks (only where
    that line starts with a word: a table's or a progress bar's look is not compared)."""
    first = next((line.strip() for line in command.shown if line.strip()), "").lstrip("{[\"' ")
    if not first[:1].isalpha():
        return []
    said = " ".join(output.split())
    return [word for word in re.findall(r"[A-Za-z][A-Za-z_-]{3,}", first)[:4] if word not in said]


def main(argv: list[str]) -> int:
    from support.doc_setups import SETUPS

    page, workdir = Path(argv[0]), Path(argv[1]).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        PageRun(page, workdir).run(SETUPS)
    except BlockFailed as exc:
        print(f"FAILED {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
