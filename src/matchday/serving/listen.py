"""Can `matchday serve` listen where it was asked to? Checked before anything is printed or started.

uvicorn finds a taken port only after the database is migrated and "serving on ..." is printed, and
then says ``[Errno 98] address already in use`` without saying who holds it. Here the address is
bound once the way uvicorn binds it (``SO_REUSEADDR``, so a port in TIME_WAIT is not "in use"), and
released for uvicorn; on Linux the holder is looked up in ``/proc`` (best effort, no dependency).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from matchday.serving.errors import PortUnavailable

PORT_RANGE = (1, 65535)  # 0 would make the OS pick a port that "serving on ..." could not name
_LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class Holder:
    """A process with the listening socket open."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})" if self.command else f"pid {self.pid}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost).

    >>> [is_loopback(h) for h in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "10.1.2.3")]
    [True, True, True, False, False]
    """
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(host: str, port: int, proc: Path = Path("/proc")) -> None:
    """Raise `PortUnavailable` unless ``host:port`` can be bound now."""
    low, high = PORT_RANGE
    if not low <= port <= high:
        raise PortUnavailable(f"port {port} is not a TCP port: choose one from {low} to {high}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortUnavailable(_why(host, port, exc, proc)) from exc


def _why(host: str, port: int, exc: OSError, proc: Path) -> str:
    if exc.errno == errno.EADDRINUSE:
        holders = listeners(port, proc)
        if holders:
            return (
                f"port {port} on {host} is in use by {', '.join(map(str, holders))}: "
                "stop it, or serve on another --port"
            )
        return f"port {port} on {host} is in use: stop what listens there, or serve on another --port"
    if exc.errno == errno.EACCES:
        return (
            f"port {port} on {host} needs privileges this user does not have (ports below 1024): choose another --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine, so port {port} cannot be listened on there (--host)"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host}:{port}: {host!r} is not a host name or address this machine resolves"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def listeners(port: int, proc: Path = Path("/proc")) -> list[Holder]:
    """The processes that hold a socket listening on ``port`` (on any address: a wildcard listener blocks
    every address), as far as ``/proc`` shows this user; empty where it shows nothing (another OS,
    another user's process)."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return []
    holders = []
    for pid_dir in _pid_dirs(proc):
        if _holds(pid_dir, inodes):
            holders.append(Holder(int(pid_dir.name), _command(pid_dir)))
    return holders


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            local_port = fields[1].rsplit(":", 1)[-1]
            if int(local_port, 16) == port and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def _pid_dirs(proc: Path) -> list[Path]:
    try:
        return [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def _holds(pid_dir: Path, inodes: set[str]) -> bool:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    try:
        for fd in os.scandir(pid_dir / "fd"):
            try:
                if os.readlink(fd.path) in wanted:
                    return True
            except OSError:
                continue
    except OSError:  # gone, or not ours to look at
        return False
    return False


def _command(pid_dir: Path, limit: int = 200) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return ""
    text = " ".join(raw.decode(errors="replace").replace("\0", " ").split())  # one line, whatever the arguments hold
    return text if len(text) <= limit else text[: limit - 1] + "…"
