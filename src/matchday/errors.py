"""The root of every error matchday raises on purpose.

Each part derives its own root from `MatchdayError`, so the CLI and the HTTP layer can tell our
errors (a message for the user) from bugs (a traceback for us) with one ``except``.
"""

from __future__ import annotations


class MatchdayError(Exception):
    """An error whose message is meant for the user; ``details`` lists every problem found."""

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details: list[str] = list(details or [])

    def __str__(self) -> str:
        if not self.details:
            return self.message
        return self.message + "\n" + "\n".join(f"  - {d}" for d in self.details)
