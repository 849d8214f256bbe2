"""The job's manifest (``OUTPUT/_manifest.json``): which parts are done, with which model and options.

It is rewritten after every finished part, atomically (a temporary file, fsynced, then a rename), so
a killed job, or a machine that lost power, leaves either the manifest before a part or the one after
it, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import fsspec

from matchday.batch.durable import move_durably
from matchday.batch.errors import BatchError, OutputExists, ResumeRefused

MANIFEST = "_manifest.json"
State = Literal["running", "done", "stopped", "failed"]


@dataclass
class PartDone:
    rows: int  # rows read
    scored: int
    rejected: int
    output: str  # the part's file, relative to the output folder
    rejects: str | None  # its rejects file (absolute or URL), when it had any


@dataclass
class Manifest:
    job_id: str
    model_ref: str  # as given (an alias resolves again on resume, and must give the same artifact)
    model: str
    version: int
    model_sha256: str
    options: dict[str, Any]
    options_sha256: str
    input: str
    input_sha256: str
    total_parts: int
    total_rows: int
    state: State = "running"
    reason: str | None = None
    engine: str = "local"
    started_at: str = field(default_factory=lambda: _now())
    updated_at: str = field(default_factory=lambda: _now())
    parts: dict[str, PartDone] = field(default_factory=dict)

    @property
    def rows_done(self) -> int:
        return sum(p.rows for p in self.parts.values())

    @property
    def rejected(self) -> int:
        return sum(p.rejected for p in self.parts.values())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows_done"], out["rejected"] = self.rows_done, self.rejected
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        data = dict(data)
        data.pop("rows_done", None)
        data.pop("rejected", None)
        data["parts"] = {k: PartDone(**v) for k, v in data.get("parts", {}).items()}
        return cls(**data)


def options_hash(options: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()


def read_manifest(fs: fsspec.AbstractFileSystem, folder: str) -> Manifest | None:
    path = f"{folder}/{MANIFEST}"
    if not fs.exists(path):
        return None
    try:
        with fs.open(path, "rb") as f:
            return Manifest.from_json(json.loads(f.read()))
    except (ValueError, TypeError, KeyError) as exc:
        raise BatchError(f"{path} is not a batch job's manifest ({exc}); score into another folder") from exc


def write_manifest(fs: fsspec.AbstractFileSystem, folder: str, manifest: Manifest) -> None:
    manifest.updated_at = _now()
    path = f"{folder}/{MANIFEST}"
    temporary = f"{folder}/.{MANIFEST}.{os.getpid()}.tmp"
    fs.makedirs(folder, exist_ok=True)
    with fs.open(temporary, "wb") as f:
        f.write(json.dumps(manifest.to_json(), indent=1).encode())
    move_durably(fs, temporary, path)  # fsynced before and after the rename, on a local disk


def start_or_resume(found: Manifest | None, new: Manifest, resume: bool, folder: str) -> Manifest:
    """The manifest the job goes on with: ``new`` for a fresh folder, the one found when resuming the
    same job; anything else is refused, saying why."""
    if found is None:
        return new
    if not resume:
        raise OutputExists(
            f"{folder} already holds batch job {found.job_id} ({found.state}, {len(found.parts)}/{found.total_parts} parts); "
            "use --resume to finish it, or score into another folder"
        )
    changed = []
    if found.model_sha256 != new.model_sha256:
        changed.append(
            f"the model: {found.model}:{found.version} (artifact {found.model_sha256[:12]}) then, "
            f"{new.model}:{new.version} (artifact {new.model_sha256[:12]}) now"
        )
    if found.options_sha256 != new.options_sha256:
        diff = sorted(k for k in {*found.options, *new.options} if found.options.get(k) != new.options.get(k))
        changed.append(
            "the options: " + ", ".join(f"{k} {found.options.get(k)!r} -> {new.options.get(k)!r}" for k in diff)
        )
    if found.input_sha256 != new.input_sha256:
        changed.append(f"the input {new.input}: its files or their sizes differ from when the job started")
    if changed:
        raise ResumeRefused(f"cannot resume job {found.job_id} in {folder}: it changed", changed)
    found.state, found.reason, found.engine = "running", None, new.engine
    return found


def _now() -> str:
    return datetime.now(UTC).isoformat()
