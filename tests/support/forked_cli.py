"""`matchday` for the docs' commands without paying its imports each time (~2 s of CPU a command, most of a
docs page's cost): one process imports the command line and the libraries its commands load, then forks a
child per call that runs `matchday.cli.main` with the caller's arguments, environment, working folder and
standard streams, and exits with its code. Each call is still a process of its own, started by the page's
shell from PATH; the child is the console script's code, only already imported.

``start(folder)`` starts the forking process and writes a ``matchday`` launcher into ``folder`` (put it first
on PATH). The launcher sends its arguments and streams over a Unix socket and waits for the exit code,
passing SIGTERM and SIGINT on to the child. It runs the real console script instead when its standard input
is a terminal (a prompt for a person) or the forking process is gone; ``DOCS_TEST_EXEC_CLI=1`` always does.
"""

from __future__ import annotations

import array
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path

MATCHDAY = str(Path(sys.executable).parent / "matchday")

LAUNCHER = """#!{python} -S
import array, json, os, signal, socket, sys
REAL, PATH = {real!r}, {socket!r}
if os.environ.get("DOCS_TEST_EXEC_CLI") == "1" or os.isatty(0):
    os.execv(REAL, [REAL, *sys.argv[1:]])
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(PATH)
except OSError:
    os.execv(REAL, [REAL, *sys.argv[1:]])
body = json.dumps({{"argv": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd()}}).encode()
s.sendmsg([len(body).to_bytes(8, "big") + body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
def read(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            sys.exit("matchday: the forking process went away")
        data += chunk
    return data
child = int.from_bytes(read(4), "big")
for number in (signal.SIGTERM, signal.SIGINT):
    signal.signal(number, lambda n, _: os.kill(child, n))
sys.exit(int.from_bytes(read(4), "big", signed=True))
"""


def start(folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The forking process (in the caller's process group, so that killing the group ends it) and the
    launcher ``folder/matchday``."""
    path = folder / "cli.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "support.forked_cli", str(path)],
        env={**env, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stdin=subprocess.DEVNULL,
    )
    launcher = folder / "matchday"
    launcher.write_text(LAUNCHER.format(python=sys.executable, real=MATCHDAY, socket=str(path)))
    launcher.chmod(0o755)
    return process


def serve(path: str) -> None:
    """Import once, then fork a child per connection."""
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import sklearn.pipeline  # noqa: F401
    import skops.io  # noqa: F401

    import matchday.cli.app  # noqa: F401 - what every command imports
    import matchday.workspace  # noqa: F401 - and the parts they open

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    while True:
        conn, _ = server.accept()
        message, fds = _receive(conn)
        pid = os.fork()
        if pid == 0:
            server.close()
            _child(conn, message, fds)
        conn.close()
        for fd in fds:
            os.close(fd)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass


def _receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    fds = array.array("i")
    head, ancillary, _, _ = conn.recvmsg(8, socket.CMSG_SPACE(3 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    size, body = int.from_bytes(head, "big"), b""
    while len(body) < size:
        body += conn.recv(size - len(body))
    return json.loads(body), list(fds)


def _child(conn: socket.socket, message: dict[str, object], fds: list[int]) -> None:
    """Become `matchday ARGV` in the caller's folder, environment and streams; never returns."""
    code = 1
    try:
        conn.sendall(os.getpid().to_bytes(4, "big"))  # first: the launcher passes signals on to it
        for number, fd in enumerate(fds):
            os.dup2(fd, number)
            os.close(fd)
        os.chdir(str(message["cwd"]))
        os.environ.clear()
        os.environ.update(message["env"])  # type: ignore[arg-type]
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.argv = [MATCHDAY, *message["argv"]]  # type: ignore[misc]
        sys.modules["__main__"].__package__ = None  # Click names the program after argv[0], as for the script
        from matchday.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed pipe: nothing more to say
                pass
        try:
            conn.sendall(code.to_bytes(4, "big", signed=True))
        finally:
            os._exit(code)


if __name__ == "__main__":
    serve(sys.argv[1])
