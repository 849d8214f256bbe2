"""How long the command line takes to start: `matchday --help` and a command's own help.

Run: .venv/bin/python benchmarks/cli_startup.py [--runs 10]

Prints the median and best of each against `python -c pass` (the interpreter alone) and a bare
Typer app of one command (the floor a Typer + Rich CLI can reach). Target (issue 14): under 0.3 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

MATCHDAY = str(Path(sys.executable).parent / "matchday")
BARE_TYPER = "import typer\napp = typer.Typer()\n@app.command()\ndef hello() -> None: ...\napp(['--help'])"


def timed(command: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("bare Typer app --help", [sys.executable, "-c", BARE_TYPER]),
        ("matchday --help", [MATCHDAY, "--help"]),
        ("matchday models --help", [MATCHDAY, "models", "--help"]),
        ("matchday serve --help", [MATCHDAY, "serve", "--help"]),
    ]
    print(f"{'command':<26} | {'median s':>8} | {'best s':>7}   ({runs} runs each)")
    for name, command in rows:
        times = timed(command, runs)
        print(f"{name:<26} | {statistics.median(times):>8.3f} | {min(times):>7.3f}")


if __name__ == "__main__":
    main()
