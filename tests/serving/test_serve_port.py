"""`matchday serve` refuses a port it cannot listen on before it prints or starts anything, and
names the process holding a taken one (it printed "serving on ..." and then uvicorn's bare
``[Errno 98] address already in use``)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli_in_process import run_in_process
from support.server_process import free_port

from matchday.serving.listen import Holder, listeners


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MATCHDAY_HOME": str(tmp_path / "home"), "MATCHDAY_DATABASE_URL": f"sqlite:///{tmp_path / 'matchday.db'}"}


@pytest.fixture
def taken() -> Iterator[int]:
    """A port this test process listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        sock.listen()
        yield sock.getsockname()[1]


def _one_line(text: str) -> str:
    return " ".join(text.split())  # Rich wraps long lines


@pytest.mark.parametrize("port", ["99999", "0", "65536"])
def test_a_port_outside_the_tcp_range_is_refused_before_anything_is_printed(
    env: dict[str, str], port: str, tmp_path: Path
) -> None:
    result = run_in_process(["serve", "--port", port, "--no-worker"], env=env)
    assert result.returncode != 0
    assert result.stdout == ""
    assert f"port {port} is not a TCP port: choose one from 1 to 65535" in _one_line(result.stderr)
    assert not (tmp_path / "matchday.db").exists()  # nothing started: not even the database


def test_a_taken_port_is_refused_with_the_process_that_holds_it(
    env: dict[str, str], taken: int, tmp_path: Path
) -> None:
    result = run_in_process(["serve", "--host", "127.0.0.1", "--port", str(taken), "--no-worker"], env=env)
    assert result.returncode != 0
    assert "serving on" not in result.stdout and result.stdout == ""
    message = _one_line(result.stderr)
    assert f"port {taken} on 127.0.0.1 is in use by pid {os.getpid()} (" in message, message
    assert not (tmp_path / "matchday.db").exists()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="the holder is looked up in Linux's /proc")
def test_the_holder_is_found_in_proc(taken: int) -> None:
    holders = listeners(taken)
    assert [h.pid for h in holders] == [os.getpid()]
    assert "python" in holders[0].command or "pytest" in holders[0].command
    assert listeners(free_port()) == []
    assert str(Holder(7, "")) == "pid 7"
