"""Consecutive shell commands of a docs page, run in one bash as a reader's terminal would run them: variables
carry over (and, with ``set -a``, to later blocks: the environment bash ends with is read back), each
command's output is kept apart, and the run stops at the first command whose exit status is not the one the
page shows. A block that has the reader type at prompts gets a terminal (`answer_prompts`)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    """A command as bash will run it: ``before`` lines set what it needs (a placeholder's value), ``status``
    is the exit status the page shows (``error``: any but 0), ``pause`` seconds follow it."""

    text: str
    status: int | str = 0
    before: tuple[str, ...] = ()
    pause: float = 0.0


@dataclass(frozen=True)
class Ran:
    """What each step did (``None`` for a step never reached), and the environment bash ended with."""

    statuses: list[int | None]
    outputs: list[str]
    env: dict[str, str] | None
    terminal: str  # what a typed block's terminal showed (its prompts)


def run_steps(steps: list[Step], *, typed: str | None, timeout: float) -> Ran:
    with tempfile.TemporaryDirectory(prefix="docs-shell-") as tmp:
        out = Path(tmp)
        script = ["set -a"]
        for n, step in enumerate(steps):
            test = "-ne 0" if step.status == "error" else f"-eq {step.status}"
            script += [
                *step.before,
                "{ " + step.text,
                "}" + ("" if typed else " </dev/null") + f' >"{out}/{n}.out" 2>&1',
                f'__docs_s=$?; echo "{n} $__docs_s" >>"{out}/status"; [ "$__docs_s" {test} ] || exit 0',
            ]
            if step.pause:
                script.append(f"sleep {step.pause}")
        script.append(f'env -0 >"{out}/env"')
        (out / "script.sh").write_text("\n".join(script) + "\n")
        argv, terminal = ["bash", str(out / "script.sh")], ""
        if typed is None:
            subprocess.run(argv, stdin=subprocess.DEVNULL, timeout=timeout, check=False)
        else:
            terminal = answer_prompts(argv, typed, timeout)
        status_file = out / "status"
        found = dict(line.split() for line in status_file.read_text().splitlines()) if status_file.exists() else {}
        statuses = [int(found[str(n)]) if str(n) in found else None for n in range(len(steps))]
        outputs = [
            (out / f"{n}.out").read_text(errors="replace") if (out / f"{n}.out").exists() else ""
            for n in range(len(steps))
        ]
        env = None
        if (out / "env").exists():
            items = (out / "env").read_bytes().split(b"\0")
            env = dict(item.decode().partition("=")[::2] for item in items if b"=" in item)
            for name in ("_", "SHLVL", "PWD", "OLDPWD"):
                env.pop(name, None)
        return Ran(statuses, outputs, env, terminal)


def answer_prompts(argv: list[str], typed: str, timeout: float) -> str:
    """Run ``argv`` on a terminal of its own and type ``typed`` at each prompt (output ending in ':'), as a
    reader would; a prompt that goes elsewhere is answered after two seconds of silence. Returns what the
    terminal showed. (Typed ahead, the answers would be lost: getpass flushes what waits on the terminal.)"""
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    deadline, tail, shown, quiet_since = time.monotonic() + timeout, b"", b"", time.monotonic()
    try:
        while process.poll() is None:
            if time.monotonic() > deadline:
                process.kill()
                raise subprocess.TimeoutExpired(argv, timeout)
            if select.select([master], [], [], 0.2)[0]:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # every end of the terminal closed: the script is ending
                    process.wait(timeout)
                    break
                tail, shown, quiet_since = (tail + chunk)[-200:], shown + chunk, time.monotonic()
            if tail.rstrip().endswith(b":") or time.monotonic() - quiet_since > 2:
                os.write(master, typed.encode() + b"\n")
                tail, quiet_since = b"", time.monotonic()
    finally:
        os.close(master)
    return shown.decode(errors="replace")
