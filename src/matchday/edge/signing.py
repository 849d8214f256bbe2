"""The server's Ed25519 key that signs every bundle; devices pin its public half.

Created on first use under the workspace's home (``keys/edge-signing.pem``, mode 0600, never
overwritten); `cryptography` signs, the device verifies with its own pure-Python verifier.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from matchday.edge.errors import SigningKeyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class BundleSigner:
    """Signs manifests with the key in ``path`` (made there, readable by its owner only, if it is not yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @cached_property
    def _key(self) -> Ed25519PrivateKey:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if not self.path.exists():
            self._create()
        try:
            key = serialization.load_pem_private_key(self.path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise SigningKeyError(f"the edge signing key {self.path} cannot be read: {exc}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningKeyError(f"{self.path} holds a {type(key).__name__}, not an Ed25519 key")
        return key

    def _create(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            try:  # a hard link appears whole or not at all; two processes at once keep the first key
                os.link(temporary, self.path)
            except FileExistsError:
                pass
        except OSError as exc:
            raise SigningKeyError(f"cannot create the edge signing key {self.path}: {exc.strerror or exc}") from exc
        finally:
            temporary.unlink(missing_ok=True)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._key.sign(message)

    @property
    def public_key(self) -> bytes:
        """The 32 raw bytes devices pin."""
        from cryptography.hazmat.primitives import serialization

        return self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_key_hex(self) -> str:
        """What `matchday edge public-key` prints and `EdgeModel.load(public_key=...)` takes."""
        return self.public_key.hex()
