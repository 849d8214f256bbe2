"""A content-addressed artifact store on any fsspec filesystem (a local folder by default).

Blobs live at ``<root>/sha256/<ab>/<sha256>``. Every read recomputes the hash and refuses bytes
that differ from what was recorded, so a tampered or truncated file never reaches a model loader.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
import uuid
from pathlib import Path

import fsspec

from matchday.registry.errors import ArtifactCorrupt, ArtifactMissing, InvalidModel


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack_directory(path: Path) -> bytes:
    """A deterministic tar of a directory (sorted names, no times or owners): same tree, same hash."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in sorted(p for p in path.rglob("*")):
            rel = file.relative_to(path).as_posix()
            info = tar.gettarinfo(str(file), arcname=rel)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if file.is_dir() else 0o644
            if file.is_symlink():
                raise InvalidModel(f"{file} is a symbolic link; model directories must hold plain files")
            if file.is_dir():
                tar.addfile(info)
            else:
                with file.open("rb") as fh:
                    tar.addfile(info, fh)
    return buf.getvalue()


def unpack_directory(data: bytes, target: Path) -> None:
    """Extract a tar made by `pack_directory` into ``target`` atomically (rename into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".unpack-"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(staging, filter="data")
    try:
        os.replace(staging, target)
    except OSError:  # another process unpacked the same blob first: theirs is identical
        import shutil

        shutil.rmtree(staging, ignore_errors=True)


class ArtifactStore:
    """Put bytes in, get the same bytes out, or an error saying why not."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.root = self.root.rstrip("/")

    def path_of(self, sha256: str) -> str:
        return f"{self.root}/sha256/{sha256[:2]}/{sha256}"

    def location(self, sha256: str) -> str:
        """A user-facing address of the blob (URL form for remote filesystems)."""
        path = self.path_of(sha256)
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return path if protocol in ("file", "local") else f"{protocol}://{path}"

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; returns its sha256 and whether this call wrote it (for clean-up on failure)."""
        sha = sha256_bytes(data)
        path = self.path_of(sha)
        if self.fs.exists(path):
            return sha, False
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, path)
        return sha, True

    def get(self, sha256: str) -> bytes:
        """The blob's bytes, checked against their recorded hash."""
        path = self.path_of(sha256)
        try:
            data: bytes = self.fs.cat_file(path)
        except FileNotFoundError as exc:
            raise ArtifactMissing(sha256, self.location(sha256)) from exc
        actual = sha256_bytes(data)
        if actual != sha256:
            raise ArtifactCorrupt(sha256, actual, self.location(sha256))
        return data

    def exists(self, sha256: str) -> bool:
        return bool(self.fs.exists(self.path_of(sha256)))

    def delete(self, sha256: str) -> None:
        path = self.path_of(sha256)
        if self.fs.exists(path):
            self.fs.rm_file(path)
