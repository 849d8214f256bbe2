"""Reading a bundle on the device: the signature against a pinned key first, then every file's sha256.

Nothing of a bundle is trusted before its signature verifies: not its JSON, not its file list. A key
pinned on the device (never one shipped with the bundle) is what makes a tampered bundle unloadable.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from matchday_edge.ed25519 import parse_public_key, verify
from matchday_edge.errors import BundleRefused
from matchday_edge.manifest import FORMAT_VERSION, MANIFEST_FILE, MODEL_FILE, SIGNATURE_FILE, Manifest


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its manifest, the manifest file's sha256 (the bundle's identity), the model's bytes."""

    path: Path
    manifest: Manifest
    manifest_sha256: str
    model_bytes: bytes


def load_bundle(path: str | Path, public_key: str | bytes) -> Bundle:
    """The bundle in folder ``path``, verified against ``public_key``; `BundleRefused` says why it is not."""
    folder = Path(path)
    try:
        key = parse_public_key(public_key)
    except ValueError as exc:
        raise BundleRefused(str(exc)) from exc
    manifest_bytes = _read(folder, MANIFEST_FILE)
    signature = _read(folder, SIGNATURE_FILE)
    if not verify(key, manifest_bytes, signature):
        raise BundleRefused(
            f"the bundle in {folder} is not signed by the pinned key: its {MANIFEST_FILE} or {SIGNATURE_FILE} "
            "was changed, or it was signed by another server (pin the key `matchday edge public-key` prints)"
        )
    try:
        manifest = cast(Manifest, json.loads(manifest_bytes))
    except ValueError as exc:  # signed, so ours: but a format this runtime cannot read
        raise BundleRefused(f"{MANIFEST_FILE} is not JSON: {exc}") from exc
    if manifest.get("format") != FORMAT_VERSION:
        raise BundleRefused(
            f"the bundle's format is {manifest.get('format')!r}; this runtime reads format {FORMAT_VERSION} "
            "(upgrade matchday_edge, or export the bundle with a matching matchday)"
        )
    files = manifest.get("files") or {}
    if MODEL_FILE not in files:
        raise BundleRefused(f"the manifest lists no {MODEL_FILE}")
    problems = []
    contents: dict[str, bytes] = {}
    for name, entry in files.items():
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            problems.append(f"{name!r}: not a plain file name")
            continue
        try:
            data = (folder / name).read_bytes()
        except OSError as exc:
            problems.append(f"{name}: cannot be read ({exc.strerror or exc})")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry.get("sha256"):
            problems.append(f"{name}: sha256 {digest[:16]}... is not the signed {str(entry.get('sha256'))[:16]}...")
        contents[name] = data
    if problems:
        raise BundleRefused(f"the bundle in {folder} does not match its signed manifest", problems)
    return Bundle(folder, manifest, hashlib.sha256(manifest_bytes).hexdigest(), contents[MODEL_FILE])


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except FileNotFoundError as exc:
        raise BundleRefused(f"{folder} is not a bundle: it has no {name}") from exc
    except OSError as exc:
        raise BundleRefused(f"{folder / name} cannot be read: {exc.strerror or exc}") from exc
