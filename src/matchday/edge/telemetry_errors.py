"""Errors of the telemetry's server side; the API's one table (`serving.errors.status_for`) answers each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matchday.edge.errors import EdgeError


class TelemetryError(EdgeError):
    """Root of the telemetry's errors (400 unless a subclass says otherwise)."""


class InvalidDevice(TelemetryError):
    """A device name or registration that cannot be made as asked."""


class DeviceNotBound(TelemetryError):
    """The caller's token is not the device's (403): only its own token, an operator or an admin may post for it."""


class WrongDeployment(TelemetryError):
    """The body names another deployment than the device is registered to (409)."""


class TooMuchTelemetry(TelemetryError):
    """More rows in one request than the protocol allows (413)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a body: where (``predictions[3].inputs.f0``), the row's ``seq`` when known, and why."""

    field: str
    problem: str
    seq: int | None = None

    def with_seq(self, seq: int | None) -> Problem:
        return Problem(self.field, self.problem, seq)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "problem": self.problem}
        if self.seq is not None:
            out["seq"] = self.seq
        return out


class InvalidTelemetry(TelemetryError):
    """A malformed body, an unknown model version, or rows that do not fit it (422); nothing was written.
    ``problems`` names each (with the row's ``seq``), as the API's answer lists them."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message, [f"{p.field}: {p.problem}" for p in problems])
        self.problems = [p.to_json() for p in problems]
