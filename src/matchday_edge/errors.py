"""The root of every error the device runtime raises on purpose, and its kinds.

An app on a device catches `EdgeError` to tell a message meant for its operator (a refused bundle, a
full buffer, a server that said no) from a bug.
"""

from __future__ import annotations


class EdgeError(Exception):
    """An error whose message is meant for the device's operator; ``details`` lists every problem found."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[str] = list(details or [])

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {d}" for d in self.details)


class BundleRefused(EdgeError):
    """The bundle is not what the server signed: a bad signature, a file whose sha256 differs, a missing file."""


class InvalidRows(EdgeError):
    """Rows that do not fit the bundle's inputs (a missing column, a wrong width, a value of the wrong type)."""


class BufferError(EdgeError):
    """The telemetry buffer cannot take or give rows (another device's buffer, an unknown prediction)."""


class BufferFull(BufferError):
    """The buffer is at its bound and its policy is ``refuse_new``: sync it home to make room."""


class SyncRefused(EdgeError):
    """The server answered the sync with a 4xx: the rows stay buffered until the cause is fixed."""

    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(f"the server refused the telemetry ({status}): {message}", details)
        self.status = status
