"""Errors of the model registry. Not-found errors come from the store and are re-exported."""

from __future__ import annotations

from matchday.errors import MatchdayError


class RegistryError(MatchdayError):
    """Root of the registry's errors."""


class InvalidModel(RegistryError):
    """The thing given is not a model we can register or load (wrong path, unknown flavor...)."""


class UnknownFlavor(InvalidModel):
    def __init__(self, flavor: str, known: list[str]) -> None:
        super().__init__(f"unknown flavor {flavor!r}; known flavors: {', '.join(known)}")
        self.flavor = flavor


class UntrustedArtifact(InvalidModel):
    """Loading would run arbitrary code (pickle) or trust types the user did not approve."""


class InvalidReference(RegistryError):
    """The reference data is unreadable, empty, or does not match the model's inputs."""


class InvalidInput(RegistryError):
    """Data given to a predictor does not fit its signature."""


class ArtifactError(RegistryError):
    """The stored bytes of a model are missing or not what was registered."""


class ArtifactCorrupt(ArtifactError):
    def __init__(self, sha256: str, actual: str, where: str) -> None:
        super().__init__(
            f"artifact at {where} was changed after registration: its sha256 is {actual}, "
            f"but {sha256} was recorded; refusing to load it"
        )
        self.expected, self.actual = sha256, actual


class ArtifactMissing(ArtifactError):
    def __init__(self, sha256: str, where: str) -> None:
        super().__init__(f"artifact {sha256} is missing from the artifact store ({where})")


class InvalidModelRef(RegistryError):
    def __init__(self, ref: str, expected: str = "NAME, NAME:VERSION or NAME@ALIAS") -> None:
        super().__init__(f"not a model reference: {ref!r} (expected {expected})")
