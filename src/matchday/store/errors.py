"""Errors of the metadata store; foreign database errors become these where they enter."""

from __future__ import annotations

from matchday.errors import MatchdayError


class StoreError(MatchdayError):
    """Root of the store's errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or opened; nothing was written."""


class NotFound(StoreError):
    """Something asked for by name does not exist."""


class ModelNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"no model named {name!r} is registered")
        self.name = name


class VersionNotFound(NotFound):
    def __init__(self, name: str, version: int, latest: int | None = None) -> None:
        hint = f" (latest is {latest})" if latest else ""
        super().__init__(f"model {name!r} has no version {version}{hint}")
        self.name, self.version = name, version


class AliasNotFound(NotFound):
    def __init__(self, name: str, alias: str) -> None:
        super().__init__(f"model {name!r} has no alias {alias!r}")
        self.name, self.alias = name, alias


class Conflict(StoreError):
    """A write would break a uniqueness rule (a concurrent writer got there first)."""
