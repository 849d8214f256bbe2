"""Parsing ``NAME``, ``NAME:VERSION``, ``NAME:latest`` and ``NAME@ALIAS``; `PinnedRef` for ``NAME:VERSION`` only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from matchday.registry.errors import InvalidModelRef, RegistryError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}\Z")
_ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,99}\Z")


MAX_VERSION = 2**31 - 1  # the store's integer column


@dataclass(frozen=True)
class ModelRef:
    """A model name with a version number, an alias, or neither (meaning the latest version)."""

    name: str
    version: int | None = None
    alias: str | None = None

    @classmethod
    def parse(cls, ref: str) -> ModelRef:
        """
        >>> ModelRef.parse("fraud:3")
        ModelRef(name='fraud', version=3, alias=None)
        >>> ModelRef.parse("fraud@champion").alias
        'champion'
        """
        text = ref.strip()
        if "@" in text:
            name, alias = text.split("@", 1)
            if not _NAME.match(name) or not _ALIAS.match(alias):
                raise InvalidModelRef(ref)
            return cls(name, alias=alias)
        if ":" in text:
            name, version = text.split(":", 1)
            if not _NAME.match(name):
                raise InvalidModelRef(ref)
            if version == "latest":
                return cls(name)
            if not (version.isascii() and version.isdigit()) or not 1 <= int(version) <= MAX_VERSION:
                raise InvalidModelRef(ref)
            return cls(name, version=int(version))
        if not _NAME.match(text):
            raise InvalidModelRef(ref)
        return cls(text)

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}:{self.version}" if self.version else self.name


@dataclass(frozen=True)
class PinnedRef:
    """One version by number (``NAME:VERSION``): what a rollout's arms, a retraining run's parent and
    candidate, and a synced device's rows name, stored as text and read back with the version an int.

    >>> PinnedRef.parse("fraud:3")
    PinnedRef(name='fraud', version=3)
    >>> str(PinnedRef("fraud", 3))
    'fraud:3'
    """

    name: str
    version: int

    def __post_init__(self) -> None:
        """The same checks as parsing: a name and a version from a device or a caller are held to them too."""
        version = self.version
        number = isinstance(version, int) and not isinstance(version, bool)
        if (
            not isinstance(self.name, str)
            or not _NAME.match(self.name)
            or not number
            or not 1 <= version <= MAX_VERSION
        ):
            raise InvalidModelRef(f"{self.name}:{version}", expected="NAME:VERSION")

    @classmethod
    def parse(cls, ref: str) -> PinnedRef:
        """``NAME:VERSION``; an alias, ``latest`` or a bare name is not pinned: `InvalidModelRef`."""
        parsed = ModelRef.parse(ref)
        if parsed.version is None:
            raise InvalidModelRef(ref, expected="NAME:VERSION")
        return cls(parsed.name, parsed.version)

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise RegistryError(
            f"invalid model name {name!r}: use letters, digits, '.', '_' or '-' (up to 200), starting with a letter or digit"
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not _ALIAS.match(alias) or alias == "latest":
        raise RegistryError(
            f"invalid alias {alias!r}: use letters, digits, '_' or '-', starting with a letter ('latest' is reserved)"
        )
    return alias
