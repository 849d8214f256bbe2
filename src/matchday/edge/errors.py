"""The edge part's errors: one root, derived from `MatchdayError`, so the CLI prints them as one line."""

from __future__ import annotations

from matchday.errors import MatchdayError


class EdgeError(MatchdayError):
    """Something about exporting a model for devices (or their telemetry) that the user can fix."""


class ExportError(EdgeError):
    """The model cannot become a bundle: not convertible, a converter missing, the parity gate failed."""


class ParityFailed(ExportError):
    """The converted model does not answer like the registered one on the reference rows."""


class SigningKeyError(EdgeError):
    """The server's signing key cannot be read or created."""
