"""Secrets at rest: API tokens as salted SHA-256 digests, passwords as scrypt (memory-hard, in the
standard library). Neither the token nor the password is ever stored or logged.

A token reads ``md_<key>_<secret>``: the prefix lets secret scanners find leaked ones, the public
key finds the stored row without a scan, and the secret (160 random bits) is checked against its
digest in constant time. A fast hash suits a random secret (nothing to guess); a password is
chosen by a person, so it gets a slow, memory-hard KDF.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "md_"
_TOKEN = re.compile(r"md_([a-z0-9]{12})_([0-9a-f]{40})")
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1  # 16 MiB per check, OWASP's scrypt floor
MIN_PASSWORD_LENGTH = 12


class WeakPassword(ValueError):
    pass


@dataclass(frozen=True)
class NewToken:
    """A token just made: ``token`` is shown once; ``key`` and ``digest`` are what is stored."""

    token: str
    key: str
    digest: str


def new_token() -> NewToken:
    key = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = secrets.token_hex(20)
    return NewToken(f"{TOKEN_PREFIX}{key}_{secret}", key, token_digest(secret, secrets.token_hex(16)))


def split_token(token: str) -> tuple[str, str] | None:
    """(key, secret) of a well-formed token, else None.

    >>> split_token("md_abcdefghijkl_" + "0" * 40)[0]
    'abcdefghijkl'
    >>> split_token("md_abc_123") is None
    True
    """
    match = _TOKEN.fullmatch(token)
    return (match.group(1), match.group(2)) if match else None


def token_digest(secret: str, salt: str) -> str:
    return f"sha256${salt}${hashlib.sha256(f'{salt}:{secret}'.encode()).hexdigest()}"


def token_matches(secret: str, digest: str) -> bool:
    """Whether ``secret`` is the one ``digest`` was made from (constant time)."""
    try:
        scheme, salt, _ = digest.split("$", 2)
    except ValueError:
        return False
    return scheme == "sha256" and hmac.compare_digest(token_digest(secret, salt), digest)


def check_password_strength(password: str, name: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"the password is too short: at least {MIN_PASSWORD_LENGTH} characters")
    if password.lower() == name.lower() or name.lower() in password.lower():
        raise WeakPassword("the password may not contain the user name")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(key)}"


def password_matches(password: str, stored: str) -> bool:
    """Whether ``password`` is the one ``stored`` was hashed from (its own cost parameters, constant time)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        found = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


def burn_password_check() -> None:
    """As long as a real check: a login for an unknown user takes as long as one for a known user."""
    _scrypt("x", b"0" * 16, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=length)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
