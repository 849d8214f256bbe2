"""Parsing ``NAME``, ``NAME:VERSION``, ``NAME:latest`` and ``NAME@ALIAS``."""

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
